// Package cli holds the vendor and trustee commands of afterlife, built on
// the escrow's client (escrow/client): deposits, check-ins, receipts and
// quorum approvals. Like the client, it never links the escrow's server.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/escrow/client"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// Client is the escrow client for the flags' server and token, for vendor
// commands other packages add.
func Client(cmd *cobra.Command, cf *apicli.Flags) (*client.Client, error) {
	return escrowClient(cmd, cf)
}

func escrowClient(cmd *cobra.Command, cf *apicli.Flags) (*client.Client, error) {
	base, token, err := cf.Server()
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{Server: base, Token: token, HTTP: httpclient.New(httpclient.Options{}), Progress: cmd.ErrOrStderr()}), nil
}

// VendorCommand is "afterlife vendor". more adds subcommands other parts
// own (registering a product is the registry's), given the shared flags.
func VendorCommand(more ...func(*apicli.Flags) *cobra.Command) *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "vendor",
		Short: "For vendors: register products, deposit sunset packages, check in",
		Long: `For vendors ending a product: register it, deposit its specs, sources, toolchain
notes and keys into escrow (sealed and encrypted until the release policy fires),
keep dead-man policies from firing by checking in, and verify receipts offline.`,
	}
	cf.Add(cmd)

	var opts client.DepositOptions
	var yes bool
	deposit := &cobra.Command{
		Use:   "deposit --product ID --policy POLICY PATH...",
		Short: "Deposit files and directories into escrow; resumes after a dropped connection",
		Long: `Upload a sunset package: files and directories (walked in sorted order; symlinks
stored as links, never followed out of the tree). Each file is tagged spec, source,
toolchain, keys or other from its path, or from --kinds (a YAML map path: kind).

Before anything is sent, the command says what becomes public when, and on a terminal
asks to go on (--yes skips the question). The upload streams with a progress bar. If the connection drops or the command is
interrupted, run it again: it continues where the server stopped receiving, within a
file too (the part already sent is checked against your file, not sent again). On success the
server's signed receipt is written next to you (--receipt).

--policy is required: there is no default, so nothing is published by
accident. Policies, combined with '+' (any one firing releases the deposit):
  immediate                 public at once
  on=2027-06-30             on a date (or an RFC 3339 time)
  dead-man=30d,7d           if the vendor misses a check-in: every 30 days, 7 days grace
  quorum=2/3:alice,bob,carol  when 2 of the named trustees approve`,
		Example: `  afterlife vendor deposit --product acme-cam200 --policy 'dead-man=30d,7d+quorum=2/3:alice,bob,carol' ./sunset/
  afterlife vendor deposit --product acme-cam200 --policy immediate --rights '**=public' datasheet.pdf src/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := escrowClient(cmd, &cf)
			if err != nil {
				return err
			}
			opts.Paths = args
			if !yes {
				when, err := publicWhen(opts.Policy, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "This deposit of %s for product %s is sealed, encrypted and private until its policy fires.\n%s\nEverything in it becomes public then, keys included, and a deposit is never changed or deleted.\n",
					strings.Join(args, ", "), opts.Product, when)
				ok, err := apicli.Confirm(cmd, "Deposit?")
				if err != nil {
					return err
				}
				if !ok {
					return errs.E(errs.Invalid, "deposit cancelled: nothing was sent")
				}
			}
			res, err := ec.Deposit(cmd.Context(), opts)
			if err != nil {
				if errors.Is(err, context.Canceled) || errs.Is(err, errs.Unavailable) {
					return fmt.Errorf("the deposit stopped before it was committed (%w): run the same command again to resume; what the server already holds, even the beginning of a file cut short, is not sent again", err)
				}
				return err
			}
			if d := res.AlreadyCommitted; d != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "already in escrow: deposit %s of %s (%s since %s) has exactly these files and this policy; nothing was sent.\nA deposit is never changed or deleted: --again deposits a second copy.\n",
					d.ID, d.Product, d.State, apicli.Day(d.SealedAt))
				return nil
			}
			if res.Resumed {
				fmt.Fprintf(cmd.ErrOrStderr(), "resumed an earlier upload: %d file(s) were already there, %d bytes in all held by the server; sent %d more\n", res.Skipped, res.ResumedAt, res.Sent)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deposit %s committed: %d file(s), %d bytes, manifest %s\nreceipt written to %s\n",
				res.Deposit, res.Receipt.Files, res.Receipt.TotalSize, res.Receipt.ManifestDigest, res.ReceiptFile)
			return nil
		},
	}
	deposit.Flags().BoolVar(&opts.Again, "again", false, "deposit even when a committed deposit of the product has exactly these files and this policy")
	deposit.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (on a terminal the command says what becomes public when, and asks)")
	deposit.Flags().StringVar(&opts.Product, "product", "", "product id (required)")
	deposit.Flags().StringVar(&opts.Policy, "policy", "", "release policy, required: "+client.PolicyChoices)
	deposit.Flags().StringVar(&opts.KindsFile, "kinds", "", "YAML file mapping paths to kinds, overriding the inferred ones")
	deposit.Flags().StringVar(&opts.Handover, "handover", "", "a signed handover statement (afterlife vendor handover sign) the deposit carries as "+wire.HandoverFile)
	deposit.Flags().StringVar(&opts.StateFile, "state", "", "resume state file (default: one per product in the user cache dir)")
	deposit.Flags().StringVar(&opts.ReceiptFile, "receipt", "", "where to write the receipt (default DEPOSIT.receipt.json)")
	deposit.Flags().StringVar(&opts.ShippedImage, "shipped-image", "", "the file of the deposit (its path in the deposit) that holds the image you last shipped: kept private, measured against by the sealed completeness check")
	deposit.Flags().StringVar(&opts.CompletenessRecipe, "completeness-recipe", "", "the recipe file of the deposit (its path in the deposit) that rebuilds the shipped image (with --shipped-image)")
	_ = deposit.MarkFlagRequired("product")
	addDepositRightsFlags(deposit, &opts)

	var org string
	checkin := &cobra.Command{
		Use:   "checkin",
		Short: "Check in: the vendor is alive, so dead-man policies do not fire",
		Long: `Check in for the vendor organisation of your token: every dead-man deadline of its
deposits moves to now plus the policy's period. --org is needed only with an admin token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ec, err := escrowClient(cmd, &cf)
			if err != nil {
				return err
			}
			if org == "" {
				var who struct {
					Role string `json:"role"`
					Org  string `json:"org"`
				}
				if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/whoami", nil, &who); err != nil {
					return err
				}
				if who.Org == "" {
					return errs.E(errs.Invalid, "this %s token belongs to no organisation: give --org", apicli.Dash(who.Role))
				}
				org = who.Org
			}
			at, err := ec.Checkin(cmd.Context(), org)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "checked in for %s at %s\n", org, at.Local().Format(time.RFC3339))
			return nil
		},
	}
	checkin.Flags().StringVar(&org, "org", "", "vendor organisation (default: your token's)")

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
			ec, err := escrowClient(cmd, &cf)
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
	var listProduct string
	var listOut apicli.Output
	deposits := &cobra.Command{
		Use:   "deposits",
		Short: "List your deposits: state, release policy and the next deadline",
		Long: `List the deposits your token may see (a vendor's own, sealed ones included), newest first,
with the release policy and when it next fires on its own: the date of an on= rule, or the
dead-man deadline counted from the seal or your last check-in (afterlife vendor checkin
moves it). A quorum waits for its trustees and has no deadline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/deposits?product="+url.QueryEscape(listProduct), nil, &raw); err != nil {
				return err
			}
			return listOut.Print(cmd.OutOrStdout(), raw, func(tw io.Writer) error {
				var out struct {
					Deposits []wire.Deposit `json:"deposits"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("decode deposits: %w", err)
				}
				checkins := map[string]time.Time{}
				fmt.Fprintln(tw, "ID\tPRODUCT\tSTATE\tPOLICY\tNEXT DEADLINE\tFILES\tSEALED")
				for _, d := range out.Deposits {
					next := "-"
					if d.State == wire.Sealed {
						next = nextDeadline(cmd, &cf, d, checkins)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Product, d.State, d.Policy, next, d.Files, apicli.Day(d.SealedAt))
				}
				return nil
			})
		},
	}
	deposits.Flags().StringVar(&listProduct, "product", "", "only this product's deposits")
	listOut.Add(deposits)

	cmd.AddCommand(deposit, deposits, checkin, verify, receiptKey, newVendorCompletenessCmd(), newVendorCheckCmd(&cf))
	for _, m := range more {
		cmd.AddCommand(m(&cf))
	}
	return cmd
}

// TrusteeCommand is "afterlife trustee".
func TrusteeCommand() *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "trustee",
		Short: "For trustees: make a signing key and approve quorum releases",
	}
	cf.Add(cmd)
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
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/trustees", map[string]string{"name": args[0], "public_key": pubKey}, nil); err != nil {
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
			ec, err := escrowClient(cmd, &cf)
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
			return apicli.PrintJSON(cmd.OutOrStdout(), res)
		},
	}
	approve.Flags().StringVar(&name, "name", "", "your trustee name (required)")
	approve.Flags().StringVar(&keyFile, "key", "", "your signing key file (required)")
	_ = approve.MarkFlagRequired("name")
	_ = approve.MarkFlagRequired("key")
	cmd.AddCommand(keygen, add, approve)
	return cmd
}

// nextDeadline says when a sealed deposit's policy next fires on its own,
// reading the org's last check-in once per org (into checkins).
func nextDeadline(cmd *cobra.Command, cf *apicli.Flags, d wire.Deposit, checkins map[string]time.Time) string {
	p, err := policy.Parse(d.Policy)
	if err != nil {
		return "-"
	}
	last, ok := checkins[d.Org]
	if !ok && p.DeadMan != nil {
		var c struct {
			At string `json:"at"`
		}
		if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/vendors/"+url.PathEscape(d.Org)+"/checkin", nil, &c); err == nil && c.At != "" {
			last, _ = time.Parse(time.RFC3339Nano, c.At)
		}
		checkins[d.Org] = last
	}
	at, rule := p.NextDeadline(d.SealedAt, last)
	if at.IsZero() {
		if p.Quorum != nil {
			return "when trustees approve"
		}
		return "-"
	}
	return apicli.Day(at) + " (" + rule + ")"
}

// publicWhen says in words when a deposit under policy text p becomes
// public, each rule on a line.
func publicWhen(p string, now time.Time) (string, error) {
	pol, err := policy.Parse(p)
	if err != nil {
		return "", err
	}
	var lines []string
	if pol.Immediate {
		lines = append(lines, "It becomes public as soon as the upload is committed.")
	}
	if !pol.On.IsZero() {
		lines = append(lines, "It becomes public on "+pol.On.UTC().Format("Monday 2 January 2006 at 15:04 UTC")+".")
	}
	if d := pol.DeadMan; d != nil {
		lines = append(lines, fmt.Sprintf("It becomes public if your organisation does not check in (afterlife vendor checkin) for %s plus %s of grace: first on %s unless you check in.",
			policy.Span(d.Every), policy.Span(d.Grace), pol.DeadManDeadlineFrom(now).UTC().Format("2 January 2006 15:04 UTC")))
	}
	if q := pol.Quorum; q != nil {
		lines = append(lines, fmt.Sprintf("It becomes public when %d of the trustees %s approve.", q.K, strings.Join(q.Trustees, ", ")))
	}
	if len(lines) > 1 {
		lines = append([]string{"Whichever comes first:"}, lines...)
	}
	return strings.Join(lines, "\n"), nil
}
