// Package cli is the `afterlife mirror` command: pull a full copy of a
// registry's public data into a directory and verify such a copy offline.
// It links no server code.
package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/mirror"
)

// Command is `afterlife mirror`.
func Command() *cobra.Command {
	c := &cobra.Command{
		Use:   "mirror",
		Short: "Copy everything public of a registry into a static directory, and verify a copy offline",
		Long: `A mirror is a directory any web server can serve: devices update from it exactly as from
the origin (/tuf/, /log/ and /fwupd/ keep their paths), and owners browse a snapshot of
the public pages. See docs/mirror.md.`,
	}
	c.AddCommand(pullCmd(), verifyCmd())
	return c
}

func pullCmd() *cobra.Command {
	var from, publicURL string
	var parallel int
	var logWait time.Duration
	var verbose bool
	c := &cobra.Command{
		Use:   "pull --from URL DIR",
		Short: "Copy or refresh a mirror of the registry at --from into DIR (incremental, resumable)",
		Long: `Copies every root version, the TUF metadata the current timestamp names and every target,
released deposits (manifests, receipts, public files only), the verdicts and attestations of
the releases' builds, the transparency log's tiles and checkpoint, the fwupd remote, the
public pages and the feed. Files already present with the right digest are skipped; an
interrupted download is kept as FILE.part and resumed with Range by the next pull.
timestamp.json and the log checkpoint are written last, so the mirror never points at a
file it lacks. With --public-url, the mirror's fwupd/afterlife.conf names the mirror
(MetadataURI, and FirmwareBaseURI for the cabinets the signed metadata locates on the
origin), so fwupd uses the mirror without the origin; without it, the origin's .conf is
copied as it is.`,
		Example: `  afterlife mirror pull --from https://registry.example ./mirror
  afterlife mirror verify ./mirror --root 1.root.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return errs.E(errs.Invalid, "mirror pull: --from URL is required")
			}
			log := slog.New(slog.DiscardHandler)
			if verbose {
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			}
			res, err := mirror.Pull(cmd.Context(), mirror.PullOptions{From: from, Dir: args[0], PublicURL: publicURL, Parallel: parallel, Logger: log, LogWait: logWait})
			fmt.Fprintf(cmd.OutOrStdout(), "pulled %d files (%d already present), %d bytes in %s: %d targets, %d releases, %d deposits, log size %d\n",
				res.Files, res.Kept, res.Bytes, res.Took.Round(time.Millisecond), res.Targets, res.Releases, res.Deposits, res.LogSize)
			return err
		},
	}
	c.Flags().StringVar(&from, "from", "", "the registry's public URL")
	c.Flags().StringVar(&publicURL, "public-url", "", "where the mirror will be served: the fwupd remote's .conf in the mirror then points fwupd at the mirror (metadata and cabinets) instead of the origin")
	c.Flags().IntVar(&parallel, "parallel", 8, "files fetched at once")
	c.Flags().DurationVar(&logWait, "log-wait", 30*time.Second, "how long to wait for a witnessed log checkpoint that covers every entry the targets cite (negative: not at all)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "say what happens")
	return c
}

func verifyCmd() *cobra.Command {
	var rootFile, caFile string
	var asJSON bool
	c := &cobra.Command{
		Use:   "verify DIR --root ROOT",
		Short: "Check a mirror offline from a pinned TUF root; name every file that fails",
		Long: `Walks the root chain from the pinned root (go-tuf's metadata API), checks every metadata
signature, every target's length and sha256, every attestation's signature by its builder's
key, released deposits' manifests and receipts against their files, support-period
documents (OpenEoX, CLE) and their catalogue against the targets that sign them, and
the log: the checkpoint's signatures, every tile against the tree it signs, and that it
covers every entry the targets cite and the publication of every release they sign,
and the fwupd metadata against its Jcat
file and the cabinets it names. Reports the newest timestamp and whether it
has expired (a stale mirror says so). Exits 1 when any file fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rootFile == "" {
				return errs.E(errs.Invalid, "mirror verify: --root FILE (the TUF root you trust) is required")
			}
			pinned, err := os.ReadFile(rootFile)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "mirror verify: --root")
			}
			var ca []byte
			if caFile != "" {
				if ca, err = os.ReadFile(caFile); err != nil {
					return errs.Wrap(errs.Invalid, err, "mirror verify: --fwupd-ca")
				}
			}
			rep, err := mirror.VerifyWith(cmd.Context(), mirror.VerifyOptions{Dir: args[0], Root: pinned, FwupdCA: ca, Now: time.Now()})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(rep, "", "  ")
				fmt.Fprintln(out, string(b))
			} else {
				fresh := "fresh"
				if rep.Expired {
					fresh = "EXPIRED: this mirror is stale, devices will refuse it until it is pulled again"
				}
				fmt.Fprintf(out, "root version %d; timestamp version %d expires %s (%s)\n", rep.RootVersion, rep.Timestamp, rep.TimestampExpires.UTC().Format(time.RFC3339), fresh)
				fmt.Fprintf(out, "%d targets, %d attestations, %d deposits (%d public files), %d support-period documents, log size %d (policy from %s)\n",
					rep.Targets, rep.Attestations, rep.Deposits, rep.DepositFiles, rep.LifecycleDocs, rep.LogSize, rep.LogPolicyFrom)
				for _, f := range rep.Failures {
					fmt.Fprintf(out, "FAIL %s: %s\n", f.File, f.Reason)
				}
			}
			if !rep.OK() {
				return errs.E(errs.Invalid, "mirror verify: %d files failed", len(rep.Failures))
			}
			if !asJSON {
				fmt.Fprintln(out, "OK")
			}
			return nil
		},
	}
	c.Flags().StringVar(&rootFile, "root", "", "the TUF root metadata you trust (e.g. the 1.root.json you pinned)")
	c.Flags().StringVar(&caFile, "fwupd-ca", "", "the fwupd remote's CA certificate you trust (default: the mirrored one, which checks only that metadata and signature belong together)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}
