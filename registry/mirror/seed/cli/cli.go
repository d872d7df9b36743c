// Package cli is the `afterlife admin rehome` command: seeding a new
// registry from a verified mirror before its first start (package seed,
// docs/mirror.md "Taking a registry over"). It reads serve's settings and
// takes the new server's storage and parts from the binary, which opens
// them (Open); it opens no database itself.
package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/mirror/seed"
	"github.com/afterlife-oss/afterlife/registry/translog"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// Registry is the new server's storage, opened with serve's settings.
type Registry struct {
	TUF    tuf.Store // its TUF metadata
	Blobs  blob.Store
	Now    func() time.Time
	Logger *slog.Logger
	// Prepare records the new database's own keys (escrow, receipts,
	// sessions), before the copied repository makes it initialised.
	Prepare func(ctx context.Context) error
	// Wire starts the parts on the adopted repository and returns those
	// that take the imported products, builds and releases.
	Wire  func(ctx context.Context) (seed.Parts, error)
	Close func()
}

// Settings adds serve's flags to cmd and runs run with the settings they
// (and AFTERLIFE_* variables, --config) give.
type Settings func(cmd *cobra.Command, run func(*cobra.Command, config.Serve) error) *cobra.Command

// Open opens the new server's storage with those settings.
type Open func(ctx context.Context, cfg config.Serve) (Registry, error)

// New is `afterlife admin rehome`.
func New(settings Settings, open Open) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rehome",
		Short: "Carry a registry on from a verified mirror: seed a new server before its first start",
		Long: `Start a new registry from a mirror of one whose operator vanished (docs/mirror.md,
"Taking a registry over"), in three steps, with the TUF root's custodians in the middle:

  1. afterlife admin rehome propose --mirror DIR --root ROOT --out proposal.json
     verifies the mirror, makes this server's new online TUF keys (targets, snapshot,
     timestamp) in its key directory and writes the next root version listing them
     (and naming this server's new transparency log, when the root asks devices to
     check the log).
  2. The custodians sign it offline: afterlife admin root sign --key root.key proposal.json
  3. afterlife admin rehome import --mirror DIR --root ROOT COPY...
     verifies the mirror again, copies its TUF repository and targets into this
     server's empty database and blob store, publishes the signed root (every device
     walks to it from any root it holds), and imports products and releases.

Both steps hold each product of the mirror (its unsigned API copy) to its signed
support-period document (id, vendor, model, device ids) and refuse a mismatch.
Then run afterlife serve with the same settings. Both commands read serve's settings
(flags, AFTERLIFE_* variables, --config) to find the database, blobs and keys.`,
	}
	cmd.AddCommand(proposeCmd(settings), importCmd(settings, open))
	return cmd
}

func proposeCmd(settings Settings) *cobra.Command {
	var mirrorDir, rootFile, out string
	cmd := &cobra.Command{
		Use:   "propose --mirror DIR --root ROOT --out FILE",
		Short: "Verify a mirror and propose the root that lists this server's new online keys",
		Long: `Verify the mirror offline from the pinned root (as afterlife mirror verify does; any
failure refuses), hold its products to their signed support-period documents, make new
targets, snapshot and timestamp keys in KEYS/tuf (kept as <role>.key.proposed-<N> until
import publishes the root), and write root version N: the mirror's newest root with the
same root keys and threshold, these online keys, and its afterlife_log field, when it
has one, naming this server's new log instead of the old one (whose key left with the
old operator): the log's key is made now in KEYS, and the policy asks for no witness
cosignatures (quorum 0), since the new server's witnesses are not known yet. The
custodians sign the file with afterlife admin root sign.`,
		Example: `  afterlife admin rehome propose --data ./data --mirror /srv/mirror --root 1.root.json --out proposal.json`,
	}
	cmd.Flags().StringVar(&mirrorDir, "mirror", "", "the mirror directory (afterlife mirror pull)")
	cmd.Flags().StringVar(&rootFile, "root", "", "the TUF root you trust (e.g. the 1.root.json you pinned)")
	cmd.Flags().StringVar(&out, "out", "root-proposal.json", "where to write the proposal")
	return settings(cmd, func(cmd *cobra.Command, cfg config.Serve) error {
		pinned, err := inputs(mirrorDir, rootFile)
		if err != nil {
			return err
		}
		// When devices check the log, the root names this server's new
		// log: its key is made now, before the first start, which finds it.
		var named string
		newLog := func() (verify.Policy, error) {
			origin, vkey, err := translog.PrepareKey(cfg.Keys, translog.OriginFor(cfg.PublicURL))
			named = vkey
			return verify.Policy{Origin: origin, LogKey: vkey}, err
		}
		proposal, err := seed.Propose(cmd.Context(), mirrorDir, pinned, filepath.Join(cfg.Keys, "tuf"), time.Now(), newLog)
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, proposal, 0o644); err != nil {
			return fmt.Errorf("rehome propose: %w", err)
		}
		sum, err := tuf.DescribeRoot(proposal)
		if err != nil {
			return err
		}
		if named != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "devices check this server's new log from this root on: %s (no witnesses yet)\n", named)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s\nwritten to %s: the root's custodians sign it (afterlife admin root sign --key root.key %s), then: afterlife admin rehome import\n", sum, out, out)
		return nil
	})
}

func importCmd(settings Settings, open Open) *cobra.Command {
	var mirrorDir, rootFile string
	cmd := &cobra.Command{
		Use:   "import --mirror DIR --root ROOT SIGNED-PROPOSAL...",
		Short: "Seed this server's new database and blob store from a verified mirror with the custodians' root",
		Long: `Verify the mirror again and hold its products to their signed support-period
documents, then, into a database that has never been started (it refuses one that holds
TUF metadata): copy every root version and the current TUF metadata, store every target
file, publish the custodians' signed root (the signatures of all copies given are
collected, as afterlife admin root publish does; it must be signed by a threshold of the
mirror's root keys and of its own, and list the keys propose made), which re-signs
targets, every hashed bin, snapshot and timestamp with this server's keys; then import
every product and release. Then start afterlife serve.`,
		Example: `  afterlife admin rehome import --data ./data --mirror /srv/mirror --root 1.root.json alice/proposal.json bob/proposal.json`,
	}
	cmd.Flags().StringVar(&mirrorDir, "mirror", "", "the mirror directory (afterlife mirror pull)")
	cmd.Flags().StringVar(&rootFile, "root", "", "the TUF root you trust (e.g. the 1.root.json you pinned)")
	settings(cmd, func(cmd *cobra.Command, cfg config.Serve) error {
		ctx := cmd.Context()
		pinned, err := inputs(mirrorDir, rootFile)
		if err != nil {
			return err
		}
		signed, err := signedCopies(cmd.Flags().Args())
		if err != nil {
			return err
		}
		reg, err := open(ctx, cfg)
		if err != nil {
			return err
		}
		defer reg.Close()
		if _, err := reg.TUF.GetMeta(ctx, "timestamp.json"); err == nil {
			return errs.E(errs.Conflict, "rehome import: the database %s holds a TUF repository already: seed a new one, before its first start", cfg.DatabaseURL())
		} else if !errs.Is(err, errs.NotFound) {
			return err
		}
		if err := reg.Prepare(ctx); err != nil {
			return err
		}
		tufLog := reg.Logger.With("part", "tuf")
		res, err := seed.AdoptTUF(ctx, seed.TUFOptions{Dir: mirrorDir, Root: pinned, Signed: signed, Store: reg.TUF, Blobs: reg.Blobs,
			KeyDir: filepath.Join(cfg.Keys, "tuf"), Now: reg.Now, Logger: tufLog})
		if err != nil {
			return err
		}
		parts, err := reg.Wire(ctx)
		if err != nil {
			return err
		}
		rec, err := seed.Records(ctx, mirrorDir, res.Signed, parts)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "root version %d published: %d metadata files, %d targets, %d products, %d releases, %d builds imported; start afterlife serve\n",
			res.RootVersion, res.Metadata, res.Targets, rec.Products, rec.Releases, rec.Builds)
		return nil
	})
	cmd.Args = cobra.MinimumNArgs(1)
	return cmd
}

func signedCopies(args []string) ([]byte, error) {
	if len(args) == 0 {
		return nil, errs.E(errs.Invalid, "rehome import: give the custodians' signed copies of the proposal")
	}
	var copies [][]byte
	for _, a := range args {
		b, err := os.ReadFile(a)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "rehome import")
		}
		copies = append(copies, b)
	}
	return tuf.MergeRootProposals(copies...)
}

func inputs(mirrorDir, rootFile string) ([]byte, error) {
	if mirrorDir == "" || rootFile == "" {
		return nil, errs.E(errs.Invalid, "rehome: --mirror DIR and --root FILE (the TUF root you trust) are required")
	}
	pinned, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "rehome: --root")
	}
	return pinned, nil
}
