package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/builder/verdict"
	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// BuildCommand is "afterlife build".
func BuildCommand() *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Show builds, their jobs and verdicts",
	}
	cf.Add(cmd)
	var wait time.Duration
	show := &cobra.Command{
		Use:   "show BUILD_ID",
		Short: "Show a build: its jobs, builders, output digests and verdict (with differing files)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait > 0 {
				return WaitForVerdict(cmd, &cf, args[0], wait)
			}
			var out map[string]any
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/builds/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return apicli.PrintJSON(cmd.OutOrStdout(), out)
		},
	}
	show.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for a verdict")
	var product, state string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List recent builds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if product != "" {
				q.Set("product", product)
			}
			if state != "" {
				q.Set("state", state)
			}
			q.Set("limit", fmt.Sprint(limit))
			var out map[string]any
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/builds?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			return apicli.PrintJSON(cmd.OutOrStdout(), out)
		},
	}
	list.Flags().StringVar(&product, "product", "", "only builds targeting this product")
	list.Flags().StringVar(&state, "state", "", "only builds in this state (pending, reproducible, unreproducible, failed)")
	list.Flags().IntVar(&limit, "limit", 20, "how many")
	cmd.AddCommand(show, list)
	return cmd
}

// WaitForVerdict polls a build until it has a verdict or wait passes, and
// prints it; an unreproducible or failed verdict is an error exit.
func WaitForVerdict(cmd *cobra.Command, cf *apicli.Flags, id string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	last := ""
	for {
		var out map[string]any
		if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/builds/"+url.PathEscape(id), nil, &out); err != nil {
			return err
		}
		state := buildState(out)
		if state != last {
			fmt.Fprintf(cmd.ErrOrStderr(), "build %s: %s\n", id, state)
			last = state
		}
		switch verdict.State(state) {
		case verdict.Reproducible:
			return apicli.PrintJSON(cmd.OutOrStdout(), out)
		case verdict.Unreproducible, verdict.Failed:
			_ = apicli.PrintJSON(cmd.OutOrStdout(), out)
			return errs.E(errs.Conflict, "build %s is %s", id, state)
		}
		if time.Now().After(deadline) {
			return errs.E(errs.Unavailable, "build %s has no verdict after %s (still %s)", id, wait, state)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// buildState reads the build's state from the API answer.
func buildState(b map[string]any) string {
	if s, ok := b["state"].(string); ok {
		return s
	}
	if v, ok := b["verdict"].(map[string]any); ok {
		if s, ok := v["state"].(string); ok {
			return s
		}
	}
	return string(verdict.Pending)
}
