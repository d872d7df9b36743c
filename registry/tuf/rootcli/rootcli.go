// Package rootcli is the `afterlife admin root` commands: a custodian's
// key, a root proposal, its offline signatures, and publishing it. Only
// publish and (without --current) propose talk to a server; keygen, sign
// and show work on an offline machine. It holds no rule of its own: the
// proposal, signing, merging and every check are registry/tuf's.
//
// It must not link server code (a custodian's offline laptop runs it).
package rootcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// Caller makes one JSON call to the afterlife API (the CLI's client).
type Caller func(ctx context.Context, method, path string, in, out any) error

// New returns the `root` command group.
func New(call Caller, now func() time.Time) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "root",
		Short: "Hand the registry's TUF root to custodians: keygen, propose, sign offline, publish",
		Long: `The registry's TUF root can be a threshold of offline keys held by custodians
(for example 2 of 3), so that no one operator can replace the keys devices trust, and
the registry outlives any one of them.

  1. each custodian runs "afterlife admin root keygen" on their own (offline) machine
     and hands over the .pub file;
  2. an admin runs "afterlife admin root propose" with the custodians' public keys;
  3. the proposal travels to each custodian, who checks what it says and runs
     "afterlife admin root sign --key FILE proposal.json" (the current root's key
     holders sign too: TUF needs a threshold of the old root and of the new one);
  4. an admin runs "afterlife admin root publish" with the signed copies.

See docs/tuf.md, "A root held by custodians".`,
	}
	cmd.AddCommand(keygenCmd(), proposeCmd(call, now), signCmd(), showCmd(call), publishCmd(call))
	return cmd
}

func keygenCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make a custodian's ed25519 root key: FILE (private, keep offline) and FILE.pub",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errs.E(errs.Invalid, "give --out FILE")
			}
			priv, pub, id, err := tuf.GenerateCustodianKey()
			if err != nil {
				return err
			}
			if err := writeNew(out, priv, 0o600); err != nil {
				return err
			}
			if err := writeNew(out+".pub", pub, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "root key %s\nprivate key: %s (keep it offline)\npublic key:  %s.pub (give it to whoever proposes the root)\n", id, out, out)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "file for the private key; the public key goes to FILE.pub")
	return c
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return errs.E(errs.Conflict, "%s exists; not overwriting a key", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func currentRoot(ctx context.Context, call Caller, file string) ([]byte, error) {
	if file != "" {
		return os.ReadFile(file)
	}
	var raw json.RawMessage
	if err := call(ctx, http.MethodGet, "/tuf/root.json", nil, &raw); err != nil {
		return nil, fmt.Errorf("fetch the current root: %w", err)
	}
	return raw, nil
}

func proposeCmd(call Caller, now func() time.Time) *cobra.Command {
	var pubs []string
	var threshold int
	var expires time.Duration
	var current, out string
	c := &cobra.Command{
		Use:   "propose --key-pub A.pub --key-pub B.pub --key-pub C.pub --threshold 2 --out proposal.json",
		Short: "Write the next root version as a proposal: these root keys and threshold, the current online keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errs.E(errs.Invalid, "give --out FILE")
			}
			var keys []*metadata.Key
			for _, p := range pubs {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				k, err := tuf.ParseRootKey(b)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				keys = append(keys, k)
			}
			cur, err := currentRoot(cmd.Context(), call, current)
			if err != nil {
				return err
			}
			proposal, err := tuf.ProposeRoot(cur, keys, threshold, now().Add(expires))
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, proposal, 0o644); err != nil {
				return err
			}
			sum, err := tuf.DescribeRoot(proposal)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%swritten to %s: have it signed by the current root's key holders and by %d of the new root keys\n", sum, out, threshold)
			return nil
		},
	}
	c.Flags().StringArrayVar(&pubs, "key-pub", nil, "a custodian's public root key (from keygen); repeat for each")
	c.Flags().IntVar(&threshold, "threshold", 2, "how many of the root keys must sign each new root")
	c.Flags().DurationVar(&expires, "expires", 365*24*time.Hour, "how long the new root is valid")
	c.Flags().StringVar(&current, "current", "", "the current root.json (default: fetched from --server)")
	c.Flags().StringVar(&out, "out", "", "file to write the proposal to")
	return c
}

func signCmd() *cobra.Command {
	var key, out string
	c := &cobra.Command{
		Use:   "sign --key FILE PROPOSAL",
		Short: "Add your signature to a root proposal (offline); show what it says first",
		Long: `Sign a root proposal with a root key: a custodian's key from keygen, or, to move the
embedded default to custodians, the server's single root key (<keys>/tuf/root.key).
The proposal is rewritten in place (or to --out) with the signature added.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return errs.E(errs.Invalid, "give --key FILE")
			}
			proposal, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			signed, id, err := tuf.SignRootProposal(proposal, key)
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0]
			}
			if err := os.WriteFile(out, signed, 0o644); err != nil {
				return err
			}
			sum, err := tuf.DescribeRoot(signed)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%ssigned with root key %s; written to %s\n", sum, id, out)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "your private root key file")
	c.Flags().StringVar(&out, "out", "", "write the signed proposal here (default: in place)")
	return c
}

func showCmd(call Caller) *cobra.Command {
	return &cobra.Command{
		Use:   "show [FILE]",
		Short: "Show a root proposal or root file (default: the server's current root)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			b, err := currentRoot(cmd.Context(), call, file)
			if err != nil {
				return err
			}
			sum, err := tuf.DescribeRoot(b)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), sum)
			return nil
		},
	}
}

func publishCmd(call Caller) *cobra.Command {
	return &cobra.Command{
		Use:   "publish PROPOSAL...",
		Short: "Collect the signatures of signed copies of one proposal and publish the root",
		Long: `Merge the signatures of one or more signed copies of the same proposal and publish
it. The server refuses it unless a threshold of the current root's keys and a threshold
of the new root's own keys signed it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var copies [][]byte
			for _, p := range args {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				copies = append(copies, b)
			}
			merged, err := tuf.MergeRootProposals(copies...)
			if err != nil {
				return err
			}
			var resp struct {
				RootVersion int64 `json:"root_version"`
			}
			if err := call(cmd.Context(), http.MethodPost, "/v1/admin/root", map[string]json.RawMessage{"root": merged}, &resp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "root version %d published\n", resp.RootVersion)
			return nil
		},
	}
}
