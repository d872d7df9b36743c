// Package cli is "afterlife log": fetching the transparency log's
// checkpoint, proofs and policy, and checking them offline. It links no
// server code.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// Command is `afterlife log …`: fetching the transparency log's
// checkpoint, proofs and policy, and checking them offline.
func Command() *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Read the transparency log and check its proofs offline (docs/transparency.md)",
		Long: `The transparency log records every handover event (products, deposits, releases)
in a Merkle tree whose checkpoints independent witnesses cosign. These commands
fetch its checkpoint, proof bundles and consistency proofs, and verify them
offline against a witness policy.`,
		Example: `  afterlife log policy > policy.json          # then check it against what others see
  afterlife log checkpoint > old.checkpoint
  afterlife log proof 12 > entry12.proof
  afterlife log verify --policy policy.json --bundle entry12.proof
  afterlife log checkpoint > new.checkpoint
  afterlife log consistency 40 57 > 40-57.proof
  afterlife log verify --policy policy.json --old old.checkpoint --new new.checkpoint --consistency 40-57.proof`,
	}
	cf.Add(cmd)

	raw := func(path string) *cobra.Command {
		return &cobra.Command{
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return fetchRaw(cmd.Context(), &cf, path, cmd.OutOrStdout())
			},
		}
	}
	checkpoint := raw("/log/checkpoint")
	checkpoint.Use, checkpoint.Short = "checkpoint", "Print the newest checkpoint that meets the server's witness policy, with its cosignatures"

	proof := &cobra.Command{
		Use:   "proof INDEX",
		Short: "Print a proof bundle (C2SP tlog-proof, with the entry) of one entry against the newest checkpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := strconv.ParseUint(args[0], 10, 63); err != nil {
				return errs.E(errs.Invalid, "index %q: want a number", args[0])
			}
			return fetchRaw(cmd.Context(), &cf, "/v1/log/entries/"+args[0]+"/proof", cmd.OutOrStdout())
		},
	}
	consistency := &cobra.Command{
		Use:   "consistency OLD_SIZE NEW_SIZE",
		Short: "Print a consistency proof between two checkpoint sizes, one base64 hash a line",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if _, err := strconv.ParseUint(a, 10, 63); err != nil {
					return errs.E(errs.Invalid, "size %q: want a number", a)
				}
			}
			return fetchRaw(cmd.Context(), &cf, "/v1/log/consistency?old="+args[0]+"&size="+args[1], cmd.OutOrStdout())
		},
	}
	policy := &cobra.Command{
		Use:   "policy",
		Short: "Print the log's key, witnesses and quorum as the server states them (a policy file for verify)",
		Long: `Print the policy the server serves its checkpoints under. It comes from the log
itself, so it is only as trustworthy as the log: compare it with a copy you
obtained another way (devices get theirs from signed TUF root metadata).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var info struct {
				Policy verify.Policy `json:"policy"`
			}
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/log", nil, &info); err != nil {
				return err
			}
			return apicli.PrintJSON(cmd.OutOrStdout(), info.Policy)
		},
	}

	var policyFile, checkpointFile, oldFile, newFile, proofFile string
	var bundles []string
	verifyCmd := &cobra.Command{
		Use:   "verify --policy FILE [--checkpoint FILE] [--bundle FILE]... [--old FILE --new FILE --consistency FILE]",
		Short: "Check, offline, a checkpoint against a witness policy, entries' proof bundles, and the consistency of two checkpoints",
		Long: `Check, without the network:
  --checkpoint   the log's signature and witnesses' cosignatures against the policy
                 (k of n witnesses, counting distinct operators)
  --bundle       a proof bundle: its checkpoint against the policy and the entry's inclusion
  --old/--new/--consistency
                 that the new checkpoint (which must meet the policy) extends the old one
                 (which must carry the log's signature): the log was only appended to
Every check prints one line; the command fails on the first that does not hold.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			var pol verify.Policy
			b, err := os.ReadFile(policyFile)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "--policy is required: a file from afterlife log policy, checked")
			}
			if err := json.Unmarshal(b, &pol); err != nil {
				return errs.Wrap(errs.Invalid, err, "policy %s", policyFile)
			}
			checked := 0
			if checkpointFile != "" {
				cp, err := readCheckpoint(pol, checkpointFile, true)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "ok: checkpoint %s: size %d, signed by the log, cosigned by %d operators (%v)\n", checkpointFile, cp.Size, len(cp.Operators), cp.Operators)
				checked++
			}
			for _, f := range bundles {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("bundle %s: %w", f, err)
				}
				got, err := pol.Bundle(b)
				if err != nil {
					return fmt.Errorf("bundle %s: %w", f, err)
				}
				fmt.Fprintf(out, "ok: entry %d is in the log at size %d: %s\n", got.Index, got.Checkpoint.Size, got.Entry)
				checked++
			}
			if oldFile != "" || newFile != "" || proofFile != "" {
				if oldFile == "" || newFile == "" || proofFile == "" {
					return errs.E(errs.Invalid, "--old, --new and --consistency go together")
				}
				old, err := readCheckpoint(pol, oldFile, false)
				if err != nil {
					return err
				}
				cur, err := readCheckpoint(pol, newFile, true)
				if err != nil {
					return err
				}
				b, err := os.ReadFile(proofFile)
				if err != nil {
					return fmt.Errorf("consistency proof %s: %w", proofFile, err)
				}
				p, err := verify.ParseProofLines(b)
				if err != nil {
					return err
				}
				if err := verify.Consistency(old, cur, p); err != nil {
					return err
				}
				fmt.Fprintf(out, "ok: the checkpoint of size %d extends the one of size %d\n", cur.Size, old.Size)
				checked++
			}
			if checked == 0 {
				return errs.E(errs.Invalid, "nothing to check: give --checkpoint, --bundle or --old/--new/--consistency")
			}
			return nil
		},
	}
	verifyCmd.Flags().StringVar(&policyFile, "policy", "", "policy file (JSON: origin, log_key, witnesses, quorum)")
	verifyCmd.Flags().StringVar(&checkpointFile, "checkpoint", "", "checkpoint file to check against the policy")
	verifyCmd.Flags().StringArrayVar(&bundles, "bundle", nil, "proof bundle file (repeatable)")
	verifyCmd.Flags().StringVar(&oldFile, "old", "", "the older checkpoint")
	verifyCmd.Flags().StringVar(&newFile, "new", "", "the newer checkpoint")
	verifyCmd.Flags().StringVar(&proofFile, "consistency", "", "consistency proof from --old's size to --new's")

	var origin string
	keygen := &cobra.Command{
		Use:   "keygen FILE",
		Short: "Make the log's signing key (translog.key, mode 0600) for key directories replicas cannot write, and print its public key",
		Long: `Make the transparency log's signing key before the first start of a log, for
deployments whose key directory is read-only (a Kubernetes Secret, a systemd
credential): put the file in every replica's key directory as translog.key.
--origin must be what the log will be called: the public URL's host and path,
without the scheme, followed by /log (serve names a new log that way).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if origin == "" {
				return errs.E(errs.Invalid, "--origin is required, e.g. registry.example.org/log")
			}
			skey, vkey, err := note.GenerateKey(rand.Reader, origin)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.WriteString(skey + "\n"); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return nil
		},
	}
	keygen.Flags().StringVar(&origin, "origin", "", "the log's origin, e.g. registry.example.org/log")

	cmd.AddCommand(checkpoint, proof, consistency, policy, verifyCmd, keygen)
	return cmd
}

func readCheckpoint(pol verify.Policy, path string, withPolicy bool) (verify.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return verify.Checkpoint{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	var cp verify.Checkpoint
	if withPolicy {
		cp, err = pol.Checkpoint(b)
	} else {
		cp, err = pol.LogSigned(b)
	}
	if err != nil {
		return cp, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return cp, nil
}

// fetchRaw copies a text answer of the server to w.
func fetchRaw(ctx context.Context, cf *apicli.Flags, path string, w io.Writer) error {
	base, _, err := cf.Server()
	if err != nil {
		return err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "GET %s", path)
	}
	resp, err := httpclient.New(httpclient.Options{RetryMax: 4}).Do(req)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "cannot reach %s", base)
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode >= 400 {
		return httpclient.DecodeError(resp, "GET "+path)
	}
	_, err = io.Copy(w, io.LimitReader(resp.Body, 16<<20))
	return err
}
