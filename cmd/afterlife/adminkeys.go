package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

func newKeysCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the registry's TUF signing keys"}
	rotate := &cobra.Command{
		Use:   "rotate ROLE",
		Short: "Rotate a TUF role's key: root, targets, snapshot or timestamp",
		Long: `Generate a new signing key for a TUF role and re-sign what depends on it.

Rotating root writes a new root version signed by both the old and the new root key,
so devices holding an older root update through the chain of root versions. The root
key must be present in the server's key directory for this; keep it offline the rest
of the time (see docs/tuf.md). Old key files are kept as <role>.key.old.N.`,
		Example: `  afterlife admin keys rotate timestamp
  afterlife admin keys rotate root`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"root", "targets", "snapshot", "timestamp"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/admin/keys/rotate", map[string]string{"role": args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s key rotated; metadata re-signed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(rotate)
	return cmd
}
