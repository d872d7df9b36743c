// Package cli holds the registry's commands of afterlife: releases, the
// product registration vendors make, and the admin commands of device ids
// and TUF keys. It speaks the API's JSON (wire.go) and never links the
// registry's server.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// ReleaseCommand is "afterlife release".
func ReleaseCommand() *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Publish reproducible builds as firmware releases; promote, roll out, yank, pull back and list them",
		Long: `Releases are what devices are offered. Only a build with a reproducible verdict can
become one; publishing re-signs the registry's TUF metadata. Admins may publish any
product, maintainers the products an admin allowed them on.`,
	}
	cf.Add(cmd)

	var req publishRequest
	var rolloutStages string
	var rolloutDwell time.Duration
	publish := &cobra.Command{
		Use:   "publish --build ID --product ID [--version V]",
		Short: "Publish a reproducible build as a release (channel testing unless told)",
		Example: `  afterlife release publish --build bld_… --product acme-cam200 --notes "fixes the RTSP crash"
  afterlife release publish --build bld_… --product acme-cam200 --version 1.2.1 --channel stable`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rolloutStages != "" {
				var err error
				if req.Rollout, err = device.ParseStages(rolloutStages, rolloutDwell); err != nil {
					return err
				}
			}
			var rel release
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/releases", req, &rel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s: %s %s on %s (%d of %d builders agreed)\n", rel.ID, rel.Product, rel.Version, rel.Channel, rel.Agreeing, rel.Total)
			return nil
		},
	}
	publish.Flags().StringVar(&req.BuildID, "build", "", "build with a reproducible verdict (required)")
	publish.Flags().StringVar(&req.Product, "product", "", "product id (required)")
	publish.Flags().StringVar(&req.Version, "version", "", "firmware version, e.g. 1.2.0 (default: the version in the build's recipe)")
	publish.Flags().StringVar(&req.Channel, "channel", "testing", "testing or stable")
	publish.Flags().StringVar(&req.Notes, "notes", "", "release notes")
	publish.Flags().StringVar(&req.MinVersion, "min-version", "", "oldest version that may update straight to this one")
	publish.Flags().StringVar(&rolloutStages, "rollout", "", "publish in a phased rollout with these stages, e.g. 1,10,50,100 (see release rollout)")
	publish.Flags().DurationVar(&rolloutDwell, "dwell", 24*time.Hour, "with --rollout: how long each stage but the last lasts")
	for _, f := range []string{"build", "product"} {
		_ = publish.MarkFlagRequired(f)
	}

	promote := &cobra.Command{
		Use:   "promote RELEASE_ID",
		Short: "Promote a release from testing to stable",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rel release
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/promote", nil, &rel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s is on %s\n", rel.Product, rel.Version, rel.Channel)
			return nil
		},
	}

	var reason string
	yank := &cobra.Command{
		Use:   "yank RELEASE_ID --reason TEXT",
		Short: "Yank a release: offered to no device, signed as yanked with the reason so devices running it move on",
		Long: `A yanked release stays in the signed TUF metadata, marked yanked with the reason, so devices
running it learn of the yank (also from a mirror) and move to the newest release their
channel still offers. When that release is older, the registry signs on it the permission
to go back to it from exactly the yanked version; no other downgrade is allowed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rel release
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/yank", map[string]string{"reason": reason}, &rel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s yanked\n", rel.Product, rel.Version)
			return nil
		},
	}
	yank.Flags().StringVar(&reason, "reason", "", "why: kept for the audit log and signed for devices (required)")
	_ = yank.MarkFlagRequired("reason")

	review := func(use, short, long, path, done string) *cobra.Command {
		var why string
		c := &cobra.Command{
			Use:   use + " RELEASE_ID --reason TEXT",
			Short: short,
			Long:  long,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var rel release
				if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/"+path, reviewRequest{Reason: why}, &rel); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s (channel %s)\n", rel.Product, rel.Version, done, rel.Channel)
				return nil
			},
		}
		c.Flags().StringVar(&why, "reason", "", "why, for the audit log (required)")
		_ = c.MarkFlagRequired("reason")
		return c
	}
	pullBack := review("pull-back", "Pull a release back to testing, offered to nobody (a maintainer of the product, or admin)",
		`Confirm that a release must stop being installed: it goes back to testing, is offered to no
device, its TUF targets are re-signed as pulled back, and it cannot be promoted again.
Failure reports from many networks only hold a release for review; pulling a stable release
back always takes this confirmation.`, "pull-back", "pulled back")
	resume := review("resume", "Lift a release's review hold: offered again on its channel",
		`A release is held for review when receipt-bearing failure reports from enough source
networks pass the product's policy. Resume it when the review finds nothing wrong.`, "resume", "offered again")

	var product string
	var listOut apicli.Output
	list := &cobra.Command{
		Use:   "list [--product ID]",
		Short: "List releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/releases?product="+url.QueryEscape(product), nil, &raw); err != nil {
				return err
			}
			return listOut.Print(cmd.OutOrStdout(), raw, func(tw io.Writer) error {
				var out struct {
					Releases []release `json:"releases"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("decode releases: %w", err)
				}
				return releaseTable(tw, out.Releases)
			})
		},
	}
	list.Flags().StringVar(&product, "product", "", "only this product")
	listOut.Add(list)
	cmd.AddCommand(publish, promote, yank, pullBack, resume, list, rolloutCommand(&cf))
	return cmd
}

// releaseTable writes releases as the table release list shows.
func releaseTable(tw io.Writer, releases []release) error {
	fmt.Fprintln(tw, "ID\tPRODUCT\tVERSION\tCHANNEL\tAGREE\tSTATE\tPUBLISHED")
	for _, r := range releases {
		state := "offered"
		switch {
		case r.Yanked:
			state = "yanked"
		case r.PulledBack:
			state = "pulled back"
		case r.Held:
			state = "held for review"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.Product, r.Version, r.Channel, r.Agreeing, r.Total, state, apicli.Day(r.PublishedAt))
	}
	return nil
}

// ProductCommand is "afterlife vendor product": registering a product in
// the catalog.
func ProductCommand(cf *apicli.Flags) *cobra.Command {
	var reg registration
	var revisions, deviceIDs, fwupdIDs string
	var deviceIDList []string
	cmd := &cobra.Command{
		Use:   "product",
		Short: "Register a product; edit or retire one",
		Long: `Register a product: one device model, its hardware revisions and the ids its devices
report. "product edit" corrects a registration, "product retire" withdraws one made by
mistake.`,
		Example: `  afterlife vendor product --id acme-cam200 --vendor acme --model "CAM-200" \
      --revisions A,B --device-id usb:1d6b:0104 --device-id dt:acme,cam200 --eol 2027-06-30`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg.Revisions = splitList(revisions, ",")
			reg.DeviceIDs = append(splitList(deviceIDs, ""), deviceIDList...)
			reg.FwupdIDs = splitList(fwupdIDs, "")
			var out product
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/products", reg, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "product %s registered (%s %s, status %s)\n", out.ID, out.Vendor, out.Model, out.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&reg.ID, "id", "", "product id: lowercase letters, digits and dashes (required)")
	cmd.Flags().StringVar(&reg.Vendor, "vendor", "", "vendor organisation (required)")
	cmd.Flags().StringVar(&reg.Model, "model", "", "model name as printed on the device (required)")
	cmd.Flags().StringVar(&revisions, "revisions", "", "hardware revisions, comma separated")
	// Device ids may contain commas (dt:acme,cam200): one per flag.
	cmd.Flags().StringArrayVar(&deviceIDList, "device-id", nil, "an id devices of this model report, e.g. usb:1d6b:0104 or dt:acme,cam200; repeat the flag for each")
	cmd.Flags().StringVar(&deviceIDs, "device-ids", "", "ids separated by ';' or spaces (older form of --device-id)")
	_ = cmd.Flags().MarkHidden("device-ids")
	// Instance ids may contain commas and '&' (USB\VID_1D6B&PID_0104), so they are separated like device ids.
	cmd.Flags().StringVar(&fwupdIDs, "fwupd-ids", "", "GUIDs fwupd knows the devices by, or instance ids it derives them from, separated by ';' (the fwupd remote offers community releases to them)")
	cmd.Flags().StringVar(&reg.EOL, "eol", "", "end-of-life date, YYYY-MM-DD")
	cmd.Flags().StringVar(&reg.RiskNotes, "risk-notes", "", "what owners should know before installing community firmware")
	addSupportFlags(cmd.Flags(), &reg.Support)
	for _, f := range []string{"id", "vendor", "model"} {
		_ = cmd.MarkFlagRequired(f)
	}
	cmd.AddCommand(productEditCommand(cf), productRetireCommand(cf))
	return cmd
}

func splitList(s, seps string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(seps+"; ", r) })
}

// DeviceIDsCommand is "afterlife admin device-ids".
func DeviceIDsCommand(cf *apicli.Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device-ids",
		Short: "Move device ids between products (a device id belongs to one product)",
		Long: `A device id (usb:1d6b:0104, dt:acme,cam200) names a device model and belongs to at
most one product: registering a product with an id another product holds is refused
and names the holder. An admin moves an id with reassign.`,
	}
	var to string
	reassign := &cobra.Command{
		Use:     "reassign DEVICE_ID --to PRODUCT",
		Short:   "Move a device id to a product, taking it from the product that holds it",
		Example: `  afterlife admin device-ids reassign demo:afterlife-cam --to demo-cam`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out reassigned
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/admin/device-ids/reassign", reassignRequest{DeviceID: args[0], To: to}, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "device id %s now belongs to %s (before: %s)\n", out.DeviceID, out.Product.ID, apicli.Dash(out.From))
			return nil
		},
	}
	reassign.Flags().StringVar(&to, "to", "", "the product that gets the id (required)")
	_ = reassign.MarkFlagRequired("to")
	cmd.AddCommand(reassign)
	return cmd
}

// KeysCommand is "afterlife admin keys": the TUF signing keys.
func KeysCommand(cf *apicli.Flags) *cobra.Command {
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
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/admin/keys/rotate", map[string]string{"role": args[0]}, &resp); err != nil {
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
