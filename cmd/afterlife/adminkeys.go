package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"
)

func newKeysCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the registry's TUF signing keys"}
	var proposalOut string
	rotate := &cobra.Command{
		Use:   "rotate ROLE",
		Short: "Rotate a TUF role's key: root, targets, snapshot or timestamp",
		Long: `Generate a new signing key for a TUF role and re-sign what depends on it.

Rotating root writes a new root version signed by both the old and the new root key,
so devices holding an older root update through the chain of root versions. The root
key must be present in the server's key directory for this; keep it offline the rest
of the time (see docs/tuf.md). Old key files are kept as <role>.key.old.N.

When the root is held by custodians (afterlife admin root), or its one key is offline,
the server cannot sign the new root alone: rotating targets, snapshot or timestamp then
writes the next root version as a proposal (--proposal-out) for the root's key holders
to sign with "afterlife admin root sign" and an admin to publish with
"afterlife admin root publish". The new key takes over when that root is published.`,
		Example: `  afterlife admin keys rotate timestamp
  afterlife admin keys rotate root
  afterlife admin keys rotate targets --proposal-out rotate-targets.json`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"root", "targets", "snapshot", "timestamp"},
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp struct {
				Proposal json.RawMessage `json:"proposal"`
			}
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/admin/keys/rotate", map[string]string{"role": args[0]}, &resp); err != nil {
				return err
			}
			if len(resp.Proposal) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s key rotated; metadata re-signed\n", args[0])
				return nil
			}
			if err := os.WriteFile(proposalOut, resp.Proposal, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "the root is held by custodians: the new %s key waits for root proposal %s;\nhave it signed (afterlife admin root sign) and publish it (afterlife admin root publish)\n", args[0], proposalOut)
			return nil
		},
	}
	rotate.Flags().StringVar(&proposalOut, "proposal-out", "root-proposal.json", "where a rotation that needs the custodians writes its root proposal")
	cmd.AddCommand(rotate)
	return cmd
}
