package cli

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/escrow/completeness"
	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// newVendorCompletenessCmd compares a shipped image with a rebuild, on the
// vendor's own machine.
func newVendorCompletenessCmd() *cobra.Command {
	var shipped string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "completeness --shipped IMAGE REBUILT...",
		Short: "Compare the image you last shipped with one rebuilt from your deposit (offline)",
		Long: `Before you seal a deposit, check that it is complete: build it with the recipe
you expect the community to use, then compare the outputs with the image you
last shipped. Both sides are unpacked where possible (gzip, tar, cpio "newc",
ELF sections); squashfs and other formats are compared whole. Every file is
identical, differs, missing (shipped, not rebuilt: usually a file left out of
the deposit) or extra (rebuilt, not shipped). The score is the share of the
shipped image's bytes rebuilt bit for bit, rounded down, so only a complete
rebuild scores 100 %.

REBUILT are the rebuilt files or directories; a directory contributes its
files by their paths inside it, a file its base name. Name the shipped image
so that its members line up with them (a tar of the same files, or the single
file itself). Nothing is sent anywhere. See docs/vendors-rights.md.`,
		Example: `  afterlife vendor completeness --shipped acme-thermo-2.4.1.tar ./out/`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := os.ReadFile(shipped)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "--shipped")
			}
			s, err := completeness.Unpack(filepath.Base(shipped), img, completeness.DefaultLimits)
			if err != nil {
				return err
			}
			files, err := readRebuilt(args)
			if err != nil {
				return err
			}
			rebuilt, err := completeness.Rebuilt(filepath.Base(shipped), s, files, completeness.DefaultLimits)
			if err != nil {
				return err
			}
			r := completeness.Compare(s, rebuilt)
			if asJSON {
				out := struct {
					completeness.Report
					Percent  int    `json:"percent"`
					Sentence string `json:"sentence"`
				}{r, r.Percent(), r.Sentence()}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			fmt.Fprint(cmd.OutOrStdout(), r.Text())
			return nil
		},
	}
	cmd.Flags().StringVar(&shipped, "shipped", "", "the image you last shipped (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	_ = cmd.MarkFlagRequired("shipped")
	return cmd
}

// readRebuilt reads the rebuilt files: a directory contributes its files by
// their paths in it, a file its base name.
func readRebuilt(args []string) ([]completeness.Member, error) {
	var out []completeness.Member
	add := func(name, path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "rebuilt file")
		}
		out = append(out, completeness.Member{Path: name, Data: b})
		return nil
	}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "rebuilt")
		}
		if !st.IsDir() {
			if err := add(filepath.Base(a), a); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(a, p)
			if err != nil {
				return err
			}
			return add(filepath.ToSlash(rel), p)
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newVendorCheckCmd runs the sealed completeness check on the server.
func newVendorCheckCmd(cf *apicli.Flags) *cobra.Command {
	var wait time.Duration
	var publish, show bool
	cmd := &cobra.Command{
		Use:   "check DEPOSIT",
		Short: "Have the registry's own builder rebuild a sealed deposit and measure it against the shipped image",
		Long: `The sealed completeness check of a deposit made with --shipped-image and
--completeness-recipe: the registry's own builder (never a community builder)
rebuilds the deposit with the recipe without unsealing anything, and compares
the result with the shipped image as "afterlife vendor completeness" does.
Until the deposit is released only you and the admins see the result; from
release on the score and per-class counts are public and signed, the per-file
report never is. --publish makes the score public earlier (for good).
See docs/vendors-rights.md.`,
		Example: `  afterlife vendor check dep_01J… --wait 30m
  afterlife vendor check dep_01J… --show
  afterlife vendor check dep_01J… --publish`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/deposits/" + url.PathEscape(args[0]) + "/completeness"
			var out map[string]any
			var err error
			switch {
			case publish:
				err = cf.Call(cmd.Context(), http.MethodPost, path+"/publish", nil, &out)
			case show:
				err = cf.Call(cmd.Context(), http.MethodGet, path, nil, &out)
			default:
				err = cf.Call(cmd.Context(), http.MethodPost, path, nil, &out)
			}
			if err != nil {
				return err
			}
			deadline := time.Now().Add(wait)
			for out["state"] == "running" && time.Now().Before(deadline) {
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(2 * time.Second):
				}
				if err := cf.Call(cmd.Context(), http.MethodGet, path, nil, &out); err != nil {
					return err
				}
			}
			return apicli.PrintJSON(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the check to end")
	cmd.Flags().BoolVar(&publish, "publish", false, "publish the score and counts before release (the per-file report stays private)")
	cmd.Flags().BoolVar(&show, "show", false, "show the last result without starting a check")
	cmd.MarkFlagsMutuallyExclusive("publish", "show")
	return cmd
}
