// Package cli holds the recipe commands of afterlife: lint and schema,
// which work offline, and submit. It never links server code.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes"
)

// WaitForVerdict waits up to wait for the verdict of build id, printing it;
// the farm's commands provide it (builder/cli).
type WaitForVerdict func(cmd *cobra.Command, cf *apicli.Flags, id string, wait time.Duration) error

// TryCommand makes "afterlife recipe try" with the recipe command's
// server flags; the farm's commands provide it (builder/cli), since a try
// runs the builder's own build code.
type TryCommand func(cf *apicli.Flags) *cobra.Command

// RecipeCommand is "afterlife recipe"; a submission --wait waits with
// waitForVerdict, and try is its try command.
func RecipeCommand(waitForVerdict WaitForVerdict, try TryCommand) *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "recipe",
		Short: "Check, try and submit recipes (afterlife.yaml) that turn escrow material into firmware",
		Long: `A recipe is an afterlife.yaml file in a git repository: what it builds, from which
released escrow files and pinned git sources, with which toolchain and steps.
See docs/recipes.md for the format.`,
	}
	cf.Add(cmd)

	var maxTimeout, maxMemory string
	maxCPUs := recipes.DefaultMaxima.CPUs
	lint := &cobra.Command{
		Use:   "lint FILE",
		Short: "Check a recipe file; every problem is named with its line and field",
		Long: `Check a recipe file; every problem is named with its line and field.

A step that runs an SBOM generator the recipe does not declare under tools
is an error; lint also reads the scripts next to FILE that the steps name.
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
			l := recipes.LintFiles(data, args[0], m, os.DirFS(filepath.Dir(args[0])))
			fmt.Fprint(cmd.OutOrStdout(), l.Report())
			if !l.OK() {
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
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/recipes", map[string]string{"repo": repo, "ref": ref, "path": path}, &out); err != nil {
				return err
			}
			id, _ := out["build_id"].(string)
			base, _, err := cf.Server()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "build %s queued (commit %v): %s/builds/%s\n", id, out["commit"], base, id)
			if wait == 0 || id == "" {
				return apicli.PrintJSON(cmd.OutOrStdout(), out)
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

	var listOut apicli.Output
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the recipes your token submitted and the state of their builds, newest first",
		Long: `List the recipes your token submitted (from the command line or the web page), each with
its build and the build's state; afterlife build show BUILD_ID shows a build in full.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, fmt.Sprintf("/v1/builds?mine=true&limit=%d", limit), nil, &raw); err != nil {
				return err
			}
			return listOut.Print(cmd.OutOrStdout(), raw, func(tw io.Writer) error {
				var out struct {
					Builds []submission `json:"builds"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("decode builds: %w", err)
				}
				if len(out.Builds) == 0 {
					fmt.Fprintln(tw, "You have not submitted a recipe yet: afterlife recipe submit --repo URL --ref REF")
					return nil
				}
				fmt.Fprintln(tw, "BUILD\tRECIPE\tVERSION\tREPOSITORY\tCOMMIT\tSTATE\tSUBMITTED")
				for _, b := range out.Builds {
					commit := b.Commit
					if len(commit) > 12 {
						commit = commit[:12]
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Name, b.Version, b.Repo, commit, b.State, apicli.Day(b.Created))
				}
				return nil
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 50, "how many")
	listOut.Add(list)

	var under, kinds string
	inputs := &cobra.Command{
		Use:   "inputs DEPOSIT_ID",
		Short: "Print a released deposit's files as a recipe's inputs.escrow block, digests filled in",
		Long: `Print the files of a released escrow deposit as the inputs.escrow block of afterlife.yaml:
each file's digest, and "as", where it appears under /inputs/escrow/ in the sandbox (its
path in the deposit, under --under when given). Paste the block into the recipe and drop
the files it does not need. Only released deposits can be inputs; links are left out.`,
		Example: `  afterlife recipe inputs dep_06h4xm… --kind source,toolchain >> afterlife.yaml
  afterlife recipe inputs dep_06h4xm… --under vendor`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d releasedDeposit
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/deposits/"+url.PathEscape(args[0]), nil, &d); err != nil {
				return err
			}
			if d.State != "released" {
				return errs.E(errs.Conflict, "deposit %s is %s: only released files can be recipe inputs", d.ID, d.State)
			}
			return writeInputs(cmd.OutOrStdout(), d, under, splitKinds(kinds))
		},
	}
	inputs.Flags().StringVar(&under, "under", "", "a directory under /inputs/escrow/ for the files (default: their deposit paths as they are)")
	inputs.Flags().StringVar(&kinds, "kind", "", "only files of these kinds, comma separated: spec, source, toolchain, keys, other")

	cmd.AddCommand(lint, schema, try(&cf), submit, list, inputs)
	return cmd
}

// submission is one submitted recipe's build, as GET /v1/builds writes it.
type submission struct {
	ID      string    `json:"id"`
	Repo    string    `json:"repo"`
	Commit  string    `json:"commit"`
	Path    string    `json:"path"`
	Name    string    `json:"name"`
	Version string    `json:"version"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
}

// releasedDeposit is what recipe inputs reads of GET /v1/deposits/:id.
type releasedDeposit struct {
	ID         string    `json:"id"`
	Product    string    `json:"product"`
	State      string    `json:"state"`
	ReleasedAt time.Time `json:"released_at,omitzero"`
	Manifest   []struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
		Kind   string `json:"kind"`
		Link   string `json:"link"`
	} `json:"manifest,omitempty"`
}

func splitKinds(s string) map[string]bool {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	out := map[string]bool{}
	for _, k := range strings.Split(s, ",") {
		out[strings.TrimSpace(k)] = true
	}
	return out
}

// writeInputs prints d's files as an inputs.escrow block of afterlife.yaml.
func writeInputs(w io.Writer, d releasedDeposit, under string, kinds map[string]bool) error {
	under = strings.Trim(under, "/")
	fmt.Fprintf(w, "# deposit %s of product %s, released %s\n", d.ID, d.Product, d.ReleasedAt.UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "inputs:")
	fmt.Fprintln(w, "  escrow:")
	n := 0
	for _, e := range d.Manifest {
		if e.Link != "" || e.SHA256 == "" || (kinds != nil && !kinds[e.Kind]) {
			continue
		}
		as := e.Path
		if under != "" {
			as = under + "/" + as
		}
		q, err := json.Marshal(as) // a JSON string is a YAML double-quoted scalar
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "    - digest: sha256:%s\n      as: %s # %s, %d bytes\n", e.SHA256, q, e.Kind, e.Size)
		n++
	}
	if n == 0 {
		return errs.E(errs.NotFound, "deposit %s has no files of the kinds asked for", d.ID)
	}
	return nil
}
