package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/escrow/client"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/registry/catalog"
)

func (f *clientFlags) escrowClient(cmd *cobra.Command) (*client.Client, error) {
	c, err := f.client()
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{Server: c.base, Token: c.token, HTTP: httpclient.New(httpclient.Options{}), Progress: cmd.ErrOrStderr()}), nil
}

func newVendorCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "vendor",
		Short: "For vendors: register products, deposit sunset packages, check in",
		Long: `For vendors ending a product: register it, deposit its specs, sources, toolchain
notes and keys into escrow (sealed and encrypted until the release policy fires),
keep dead-man policies from firing by checking in, and verify receipts offline.`,
	}
	cf.add(cmd)

	var reg catalog.Registration
	var revisions, deviceIDs string
	product := &cobra.Command{
		Use:   "product",
		Short: "Register a product",
		Example: `  afterlife vendor product --id acme-cam200 --vendor acme --model "CAM-200" \
      --revisions A,B --device-ids usb:1d6b:0104,dt:acme,cam200 --eol 2027-06-30`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg.Revisions = splitList(revisions, ",")
			reg.DeviceIDs = splitList(deviceIDs, "")
			var out catalog.Product
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/products", reg, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "product %s registered (%s %s, status %s)\n", out.ID, out.Vendor, out.Model, out.Status)
			return nil
		},
	}
	product.Flags().StringVar(&reg.ID, "id", "", "product id: lowercase letters, digits and dashes (required)")
	product.Flags().StringVar(&reg.Vendor, "vendor", "", "vendor organisation (required)")
	product.Flags().StringVar(&reg.Model, "model", "", "model name as printed on the device (required)")
	product.Flags().StringVar(&revisions, "revisions", "", "hardware revisions, comma separated")
	// Device ids may contain commas (dt:acme,cam200), so they are separated by spaces or semicolons too.
	product.Flags().StringVar(&deviceIDs, "device-ids", "", "ids devices report, separated by ';' (e.g. usb:1d6b:0104;dt:acme,cam200)")
	product.Flags().StringVar(&reg.EOL, "eol", "", "end-of-life date, YYYY-MM-DD")
	product.Flags().StringVar(&reg.RiskNotes, "risk-notes", "", "what owners should know before installing community firmware")
	addSupportFlags(product.Flags(), &reg.Support)
	for _, f := range []string{"id", "vendor", "model"} {
		_ = product.MarkFlagRequired(f)
	}

	var opts client.DepositOptions
	deposit := &cobra.Command{
		Use:   "deposit --product ID --policy POLICY PATH...",
		Short: "Deposit files and directories into escrow; resumes after a dropped connection",
		Long: `Upload a sunset package: files and directories (walked in sorted order; symlinks
stored as links, never followed out of the tree). Each file is tagged spec, source,
toolchain, keys or other from its path, or from --kinds (a YAML map path: kind).

The upload streams with a progress bar. If the connection drops or the command is
interrupted, run it again: finished files are not sent again. On success the
server's signed receipt is written next to you (--receipt).

--policy is required: there is no default, so nothing is published by
accident. Policies, combined with '+' (any one firing releases the deposit):
  immediate                 public at once
  on=2027-06-30             on a date (or an RFC 3339 time)
  dead-man=30d,7d           if the vendor misses a check-in: every 30 days, 7 days grace
  quorum=2/3:alice,bob,carol  when 2 of the named trustees approve`,
		Example: `  afterlife vendor deposit --product acme-cam200 --policy 'dead-man=30d,7d+quorum=2/3:alice,bob,carol' ./sunset/
  afterlife vendor deposit --product acme-cam200 --policy immediate datasheet.pdf src/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := cf.escrowClient(cmd)
			if err != nil {
				return err
			}
			opts.Paths = args
			res, err := ec.Deposit(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if res.Resumed {
				fmt.Fprintf(cmd.ErrOrStderr(), "resumed an earlier upload: %d file(s) were already there\n", res.Skipped)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deposit %s committed: %d file(s), %d bytes, manifest %s\nreceipt written to %s\n",
				res.Deposit, res.Receipt.Files, res.Receipt.TotalSize, res.Receipt.ManifestDigest, res.ReceiptFile)
			return nil
		},
	}
	deposit.Flags().StringVar(&opts.Product, "product", "", "product id (required)")
	deposit.Flags().StringVar(&opts.Policy, "policy", "", "release policy, required: "+client.PolicyChoices)
	deposit.Flags().StringVar(&opts.KindsFile, "kinds", "", "YAML file mapping paths to kinds, overriding the inferred ones")
	deposit.Flags().StringVar(&opts.Handover, "handover", "", "a signed handover statement (afterlife vendor handover sign) the deposit carries as "+wire.HandoverFile)
	deposit.Flags().StringVar(&opts.StateFile, "state", "", "resume state file (default: one per product in the user cache dir)")
	deposit.Flags().StringVar(&opts.ReceiptFile, "receipt", "", "where to write the receipt (default DEPOSIT.receipt.json)")
	_ = deposit.MarkFlagRequired("product")

	var org string
	checkin := &cobra.Command{
		Use:   "checkin",
		Short: "Check in: the vendor is alive, so dead-man policies do not fire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ec, err := cf.escrowClient(cmd)
			if err != nil {
				return err
			}
			at, err := ec.Checkin(cmd.Context(), org)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "checked in for %s at %s\n", org, at.Local().Format(time.RFC3339))
			return nil
		},
	}
	checkin.Flags().StringVar(&org, "org", "", "vendor organisation (required)")
	_ = checkin.MarkFlagRequired("org")

	var keyFile string
	verify := &cobra.Command{
		Use:   "verify-receipt RECEIPT --key KEYFILE",
		Short: "Verify a deposit receipt offline against the registry's receipt key",
		Long: `Check a receipt's signature offline. The key file holds the registry's receipt public
key, as served at /v1/escrow/receipt-key (save it once, from a connection you trust).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := client.VerifyReceiptFile(args[0], keyFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "receipt valid: deposit %s of %s, %d file(s), %d bytes, manifest %s, sealed %s\n",
				r.Deposit, r.Product, r.Files, r.TotalSize, r.ManifestDigest, r.CommittedAt.Local().Format(time.RFC3339))
			return nil
		},
	}
	verify.Flags().StringVar(&keyFile, "key", "", "the registry's receipt public key file (required)")
	_ = verify.MarkFlagRequired("key")

	receiptKey := &cobra.Command{
		Use:   "receipt-key",
		Short: "Print the registry's receipt public key (save it for offline verification)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ec, err := cf.escrowClient(cmd)
			if err != nil {
				return err
			}
			k, err := ec.ReceiptKey(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), receipt.FormatPublicKey(k))
			return nil
		},
	}
	cmd.AddCommand(product, deposit, checkin, verify, receiptKey, newVendorHandoverCmd(&cf), newVendorSupportCmd(&cf), newVendorEndingSoonCmd(&cf))
	return cmd
}

func newTrusteeCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "trustee",
		Short: "For trustees: make a signing key and approve quorum releases",
	}
	cf.add(cmd)
	keygen := &cobra.Command{
		Use:   "keygen FILE",
		Short: "Create an ed25519 signing key; give the printed public key to an admin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := client.GenerateKey(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", pub)
			fmt.Fprintf(cmd.ErrOrStderr(), "key written to %s; register the public key above with: afterlife trustee add NAME --public-key '%s' (admin)\n", args[0], pub)
			return nil
		},
	}
	var pubKey string
	add := &cobra.Command{
		Use:   "add NAME --public-key KEY",
		Short: "Register a trustee (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/trustees", map[string]string{"name": args[0], "public_key": pubKey}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trustee %s registered\n", args[0])
			return nil
		},
	}
	add.Flags().StringVar(&pubKey, "public-key", "", "the trustee's public key as printed by keygen (required)")
	_ = add.MarkFlagRequired("public-key")
	var name, keyFile string
	approve := &cobra.Command{
		Use:   "approve DEPOSIT_ID --name NAME --key FILE",
		Short: "Sign and send your approval of a quorum release",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := cf.escrowClient(cmd)
			if err != nil {
				return err
			}
			key, err := client.LoadKey(keyFile)
			if err != nil {
				return err
			}
			res, err := ec.Approve(cmd.Context(), args[0], name, key)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
	approve.Flags().StringVar(&name, "name", "", "your trustee name (required)")
	approve.Flags().StringVar(&keyFile, "key", "", "your signing key file (required)")
	_ = approve.MarkFlagRequired("name")
	_ = approve.MarkFlagRequired("key")
	cmd.AddCommand(keygen, add, approve)
	return cmd
}

func splitList(s, seps string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(seps+"; ", r) })
}
