package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
)

// HandoverCommand is "afterlife vendor handover": a deposit's statement,
// its state and its revocation; offline adds the commands that sign and
// check a statement without a server (registry/handover/cli).
func HandoverCommand(cf *apicli.Flags, offline ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "handover",
		Short: "Hand your devices' signing authority to the community root: sign, check, revoke a statement",
		Long: `A handover statement is your update-signing key (the one your devices already trust)
vouching for this registry's TUF root: an in-toto statement with the afterlife handover
predicate, in a DSSE envelope. Sign it, add it to a deposit with
"afterlife vendor deposit --handover FILE", and it takes effect when the deposit is
released. See docs/handover.md.`,
	}

	status := &cobra.Command{
		Use:   "status DEPOSIT_ID",
		Short: "Show what a deposit's handover statement claims and whether it is in force",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := escrowClient(cmd, cf)
			if err != nil {
				return err
			}
			h, err := ec.Handover(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return apicli.PrintJSON(cmd.OutOrStdout(), h)
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke DEPOSIT_ID",
		Short: "Revoke a sealed deposit's handover statement: it never takes effect, its device ids are free again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := escrowClient(cmd, cf)
			if err != nil {
				return err
			}
			h, err := ec.RevokeHandover(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "handover statement of deposit %s revoked; device ids %s are free again\n", h.Deposit, strings.Join(h.DeviceIDs, ", "))
			return nil
		},
	}
	cmd.AddCommand(offline...)
	cmd.AddCommand(status, revoke)
	return cmd
}
