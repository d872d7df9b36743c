package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes"
)

func newRecipeCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "recipe",
		Short: "Check and submit recipes (afterlife.yaml) that turn escrow material into firmware",
		Long: `A recipe is an afterlife.yaml file in a git repository: what it builds, from which
released escrow files and pinned git sources, with which toolchain and steps.
See docs/recipes.md for the format.`,
	}
	cf.add(cmd)

	var maxTimeout, maxMemory string
	maxCPUs := recipes.DefaultMaxima.CPUs
	lint := &cobra.Command{
		Use:   "lint FILE",
		Short: "Check a recipe file; every problem is named with its line and field",
		Long: `Check a recipe file; every problem is named with its line and field.

Limits above a build farm's maxima are errors, as the server refuses them at
submission: by default the maxima of a server with default settings
(serve --max-build-timeout, --max-build-memory, --max-build-cpus); give a
farm's own with the --max-* flags.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			m := recipes.Maxima{CPUs: maxCPUs}
			if m.Timeout, err = recipes.ParseDuration(maxTimeout); err != nil {
				return errs.Wrap(errs.Invalid, err, "--max-timeout")
			}
			if m.Memory, err = recipes.ParseByteSize(maxMemory); err != nil {
				return errs.Wrap(errs.Invalid, err, "--max-memory")
			}
			report, ok := recipes.LintReport(data, args[0], m)
			fmt.Fprint(cmd.OutOrStdout(), report)
			if !ok {
				return errs.E(errs.Invalid, "%s has errors", args[0])
			}
			return nil
		},
	}

	lint.Flags().StringVar(&maxTimeout, "max-timeout", recipes.DefaultMaxima.Timeout.String(), "the farm's longest build (serve --max-build-timeout)")
	lint.Flags().StringVar(&maxMemory, "max-memory", recipes.DefaultMaxima.Memory.String(), "the farm's most memory per build (serve --max-build-memory)")
	lint.Flags().IntVar(&maxCPUs, "max-cpus", recipes.DefaultMaxima.CPUs, "the farm's most CPUs per build (serve --max-build-cpus)")

	schema := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of afterlife.yaml, for editors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(recipes.Schema())
			return err
		},
	}

	var repo, ref, path string
	var wait time.Duration
	submit := &cobra.Command{
		Use:   "submit",
		Short: "Submit a recipe: the server pins the commit, validates it and queues its builds",
		Long: `Submit a recipe. The server fetches the repository, resolves --ref to a full commit
and pins it, validates the recipe, checks that every escrow input exists and is
released, and queues one job per required builder. Submitting the same commit again
returns the same build.`,
		Example: `  afterlife recipe submit --repo https://git.example/cam-firmware.git --ref v1.0.0
  afterlife recipe submit --repo https://git.example/fw.git --ref main --path boards/cam200/afterlife.yaml --wait 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out map[string]any
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/recipes", map[string]string{"repo": repo, "ref": ref, "path": path}, &out); err != nil {
				return err
			}
			id, _ := out["build_id"].(string)
			fmt.Fprintf(cmd.ErrOrStderr(), "build %s queued (commit %v)\n", id, out["commit"])
			if wait == 0 || id == "" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			return waitForVerdict(cmd, &cf, id, wait)
		},
	}
	submit.Flags().StringVar(&repo, "repo", "", "git repository URL (required)")
	submit.Flags().StringVar(&ref, "ref", "", "branch, tag or commit to pin (required)")
	submit.Flags().StringVar(&path, "path", "", "recipe path inside the repository (default afterlife.yaml)")
	submit.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the verdict, e.g. 30m")
	_ = submit.MarkFlagRequired("repo")
	_ = submit.MarkFlagRequired("ref")

	cmd.AddCommand(lint, schema, submit)
	return cmd
}

func newBuildCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Show builds, their jobs and verdicts",
	}
	cf.add(cmd)
	var wait time.Duration
	show := &cobra.Command{
		Use:   "show BUILD_ID",
		Short: "Show a build: its jobs, builders, output digests and verdict (with differing files)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait > 0 {
				return waitForVerdict(cmd, &cf, args[0], wait)
			}
			var out map[string]any
			if err := cf.call(cmd.Context(), http.MethodGet, "/v1/builds/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
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
			if err := cf.call(cmd.Context(), http.MethodGet, "/v1/builds?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	list.Flags().StringVar(&product, "product", "", "only builds targeting this product")
	list.Flags().StringVar(&state, "state", "", "only builds in this state (pending, reproducible, unreproducible, failed)")
	list.Flags().IntVar(&limit, "limit", 20, "how many")
	cmd.AddCommand(show, list)
	return cmd
}

// waitForVerdict polls a build until it has a verdict or wait passes, and
// prints it; an unreproducible or failed verdict is an error exit.
func waitForVerdict(cmd *cobra.Command, cf *clientFlags, id string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	last := ""
	for {
		var out map[string]any
		if err := cf.call(cmd.Context(), http.MethodGet, "/v1/builds/"+url.PathEscape(id), nil, &out); err != nil {
			return err
		}
		state := buildState(out)
		if state != last {
			fmt.Fprintf(cmd.ErrOrStderr(), "build %s: %s\n", id, state)
			last = state
		}
		switch state {
		case "reproducible":
			return printJSON(cmd.OutOrStdout(), out)
		case "unreproducible", "failed":
			_ = printJSON(cmd.OutOrStdout(), out)
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
	return "pending"
}
