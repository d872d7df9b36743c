package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
)

// productEditCommand is "afterlife vendor product edit": correcting what a
// product's registration says.
func productEditCommand(cf *apicli.Flags) *cobra.Command {
	var e editRequest
	var model, revisions, riskNotes string
	var deviceIDs []string
	cmd := &cobra.Command{
		Use:   "edit PRODUCT [--model M] [--revisions A,B] [--device-id ID]… [--risk-notes TEXT] [--reason WHY]",
		Short: "Correct a product's model name, hardware revisions, device ids or risk notes",
		Long: `Correct a product's model name, hardware revisions, device ids or risk notes.
Only the flags you give change; --device-id replaces the whole list of ids, so
name every id the product keeps. Each change is recorded, before and after, in
the product's history and in the transparency log, with --reason if given.`,
		Example: `  afterlife vendor product edit acme-cam200 --model "CAM-200 Pro"
  afterlife vendor product edit acme-cam200 --device-id usb:1d6b:0200 --device-id dt:acme,cam200 \
      --reason "the USB product id was mistyped"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			if fl.Changed("model") {
				e.Model = &model
			}
			if fl.Changed("revisions") {
				revs := splitList(revisions, ",")
				e.Revisions = &revs
			}
			if fl.Changed("device-id") {
				ids := []string{}
				for _, id := range deviceIDs {
					if id = strings.TrimSpace(id); id != "" {
						ids = append(ids, id)
					}
				}
				e.DeviceIDs = &ids
			}
			if fl.Changed("risk-notes") {
				e.RiskNotes = &riskNotes
			}
			if e.Model == nil && e.Revisions == nil && e.DeviceIDs == nil && e.RiskNotes == nil {
				return fmt.Errorf("say what to change: --model, --revisions, --device-id or --risk-notes")
			}
			var out product
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/products/"+url.PathEscape(args[0])+"/edit", e, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "product %s changed: %s, device ids %s\n", out.ID, out.Model, apicli.Dash(strings.Join(out.DeviceIDs, " ")))
			return nil
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "model name as printed on the device")
	cmd.Flags().StringVar(&revisions, "revisions", "", "hardware revisions, comma separated (replaces the list)")
	cmd.Flags().StringArrayVar(&deviceIDs, "device-id", nil, "an id devices of this model report, e.g. usb:1d6b:0104 or dt:acme,cam200; repeat the flag for each (replaces the list; --device-id '' empties it)")
	cmd.Flags().StringVar(&riskNotes, "risk-notes", "", "what owners should know before installing community firmware")
	cmd.Flags().StringVar(&e.Reason, "reason", "", "why, for the product's history")
	return cmd
}

// productRetireCommand is "afterlife vendor product retire": withdrawing
// a product registered by mistake.
func productRetireCommand(cf *apicli.Flags) *cobra.Command {
	var r retireRequest
	var yes bool
	cmd := &cobra.Command{
		Use:   "retire PRODUCT [--reason WHY] [--yes]",
		Short: "Retire a product registered by mistake (only one with no release and no deposit)",
		Long: `Retire a product registered by mistake. The registry refuses a product that
has a release (devices hold signed metadata naming it) or a sealed or released
deposit (a deposit is never deleted): move such a product to sunset instead.
A retired product gives up its device ids and fwupd GUIDs, so the right product
can claim them, and disappears from lists, search and device lookups. Its id
stays taken and its history stays in the transparency log. It cannot be undone:
on a terminal the command asks first (--yes skips the question).`,
		Example: `  afterlife vendor product retire acme-cam200-typo --reason "registered twice; the product is acme-cam200"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				ok, err := apicli.Confirm(cmd, fmt.Sprintf("Retire product %s for good? Its device ids become free and it disappears from the registry.", args[0]))
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("nothing retired")
				}
			}
			var out retired
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/products/"+url.PathEscape(args[0])+"/retire", r, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "product %s retired; its device ids are free\n", out.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&r.Reason, "reason", "", "why, for the product's history")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
