package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
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
	var showOut, listOut apicli.Output
	show := &cobra.Command{
		Use:   "show BUILD_ID",
		Short: "Show a build: its jobs, builders, output digests and verdict (with differing files)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait > 0 {
				return WaitForVerdict(cmd, &cf, args[0], wait)
			}
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/builds/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return err
			}
			return showOut.Print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
				var b buildView
				if err := json.Unmarshal(raw, &b); err != nil {
					return fmt.Errorf("decode build: %w", err)
				}
				b.table(w)
				return nil
			})
		},
	}
	show.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for a verdict")
	showOut.Add(show)
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
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/builds?"+q.Encode(), nil, &raw); err != nil {
				return err
			}
			return listOut.Print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
				var out struct {
					Builds []buildView `json:"builds"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("decode builds: %w", err)
				}
				fmt.Fprintln(w, "ID\tRECIPE\tVERSION\tPRODUCTS\tSTATE\tCREATED")
				for _, b := range out.Builds {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Name, b.Version, strings.Join(b.Products, ","), b.State, apicli.Day(b.Created))
				}
				return nil
			})
		},
	}
	listOut.Add(list)
	list.Flags().StringVar(&product, "product", "", "only builds targeting this product")
	list.Flags().StringVar(&state, "state", "", "only builds in this state (pending, reproducible, unreproducible, failed)")
	list.Flags().IntVar(&limit, "limit", 20, "how many")
	cmd.AddCommand(show, list)
	return cmd
}

// WaitForVerdict polls a build until it has a verdict or wait passes, and
// prints a short summary with the build's web address (afterlife build
// show prints the whole record); an unreproducible or failed verdict is an
// error exit.
func WaitForVerdict(cmd *cobra.Command, cf *apicli.Flags, id string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	last := ""
	for {
		var raw json.RawMessage
		if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/builds/"+url.PathEscape(id), nil, &raw); err != nil {
			return err
		}
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("decode build: %w", err)
		}
		state := buildState(out)
		if state != last {
			fmt.Fprintf(cmd.ErrOrStderr(), "build %s: %s\n", id, state)
			last = state
		}
		switch verdict.State(state) {
		case verdict.Reproducible, verdict.Unreproducible, verdict.Failed:
			var b buildView
			if err := json.Unmarshal(raw, &b); err != nil {
				return fmt.Errorf("decode build: %w", err)
			}
			base, _, err := cf.Server()
			if err != nil {
				return err
			}
			b.summary(cmd.OutOrStdout(), base)
			if verdict.State(state) == verdict.Reproducible {
				return nil
			}
			return errs.E(errs.Conflict, "build %s is %s", id, state)
		}
		if time.Now().After(deadline) {
			return errs.E(errs.Unavailable, "build %s has no verdict after %s (still %s); follow it at %s", id, wait, state, webAddress(cf, id))
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// webAddress is the build's page on the server the flags name.
func webAddress(cf *apicli.Flags, id string) string {
	base, _, _ := cf.Server()
	return base + "/builds/" + url.PathEscape(id)
}

// summary writes what a maintainer needs after a verdict: the state and
// why, what differs or was agreed, where to look, and what to do next.
func (b buildView) summary(w io.Writer, base string) {
	fmt.Fprintf(w, "build %s: %s\n", b.ID, b.State)
	fmt.Fprintf(w, "  recipe   %s %s (commit %s)\n", b.Name, b.Version, shortCommit(b.Commit))
	if b.Verdict.Reason != "" {
		fmt.Fprintf(w, "  verdict  %s\n", b.Verdict.Reason)
	}
	paths := make([]string, 0, len(b.Verdict.Outputs))
	for p := range b.Verdict.Outputs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(w, "  output   %s %s\n", p, b.Verdict.Outputs[p])
	}
	for _, d := range b.Verdict.Differences {
		fmt.Fprintf(w, "  differs  %s\n", d.Path)
	}
	for _, f := range b.Verdict.Failures {
		fmt.Fprintf(w, "  failed   %s: %s\n", apicli.Dash(f.BuilderID), f.Reason)
	}
	fmt.Fprintf(w, "  web      %s/builds/%s\n", base, url.PathEscape(b.ID))
	fmt.Fprintf(w, "  details  afterlife build show %s --output json\n", b.ID)
	if b.State == string(verdict.Reproducible) && len(b.Products) > 0 {
		fmt.Fprintf(w, "  publish  afterlife release publish --build %s --product %s\n", b.ID, b.Products[0])
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

// buildView is what the build commands' tables show of the API's build.
type buildView struct {
	ID       string    `json:"id"`
	Repo     string    `json:"repo"`
	Commit   string    `json:"commit"`
	Path     string    `json:"path"`
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Products []string  `json:"products"`
	State    string    `json:"state"`
	Quorum   int       `json:"quorum"`
	Created  time.Time `json:"created"`
	Decided  time.Time `json:"decided"`
	Verdict  struct {
		Reason      string            `json:"reason"`
		Outputs     map[string]string `json:"outputs"`
		Differences []struct {
			Path string `json:"path"`
		} `json:"differences"`
		Failures []struct {
			BuilderID string `json:"builder_id"`
			Reason    string `json:"reason"`
		} `json:"failures"`
	} `json:"verdict"`
	Jobs []struct {
		ID        string    `json:"id"`
		State     string    `json:"state"`
		BuilderID string    `json:"builder_id"`
		Operator  string    `json:"operator"`
		Attempts  int       `json:"attempts"`
		Finished  time.Time `json:"finished"`
		Cold      bool      `json:"cold"`
	} `json:"jobs"`
	Diffs []struct {
		Path string `json:"path"`
	} `json:"diffs"`
}

// table writes the build as key/value lines, then its jobs.
func (b buildView) table(w io.Writer) {
	fmt.Fprintf(w, "BUILD\t%s\n", b.ID)
	fmt.Fprintf(w, "RECIPE\t%s %s (%s@%s, %s)\n", b.Name, b.Version, b.Repo, shortCommit(b.Commit), apicli.Dash(b.Path))
	fmt.Fprintf(w, "PRODUCTS\t%s\n", strings.Join(b.Products, ", "))
	fmt.Fprintf(w, "STATE\t%s\n", b.State)
	if b.Verdict.Reason != "" {
		fmt.Fprintf(w, "VERDICT\t%s\n", b.Verdict.Reason)
	}
	fmt.Fprintf(w, "QUORUM\t%d\n", b.Quorum)
	fmt.Fprintf(w, "CREATED\t%s\n", apicli.Day(b.Created))
	fmt.Fprintf(w, "DECIDED\t%s\n", apicli.Day(b.Decided))
	for _, d := range b.Diffs {
		fmt.Fprintf(w, "DIFFERS\t%s\n", d.Path)
	}
	if len(b.Jobs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nJOB\tSTATE\tBUILDER\tOPERATOR\tATTEMPTS\tFINISHED\tCOLD")
	for _, j := range b.Jobs {
		cold := ""
		if j.Cold {
			cold = "cold witness"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.State, apicli.Dash(j.BuilderID), apicli.Dash(j.Operator), j.Attempts, apicli.Day(j.Finished), cold)
	}
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
