package cli

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
)

// addSupportFlags adds the support period's flags to a command that
// declares one (vendor product, vendor support).
func addSupportFlags(fs *pflag.FlagSet, s *support) {
	const form = "RFC 3339 date-time, YYYY-MM-DD or tba"
	fs.StringVar(&s.GeneralAvailability, "general-availability", "", "when the product went on sale ("+form+")")
	fs.StringVar(&s.EndOfSales, "end-of-sales", "", "the last day it can be ordered ("+form+")")
	fs.StringVar(&s.EndOfSecuritySupport, "end-of-security-support", "", "the last day you commit to security fixes ("+form+")")
	fs.StringVar(&s.EndOfLife, "end-of-life", "", "the last day of any support ("+form+")")
}

// SupportCommand is "afterlife vendor support": declare a product's
// support period.
func SupportCommand(cf *apicli.Flags) *cobra.Command {
	var s support
	cmd := &cobra.Command{
		Use:   "support PRODUCT [--general-availability D] [--end-of-sales D] [--end-of-security-support D] [--end-of-life D]",
		Short: "Declare or change a product's support period (logged; published as OpenEoX and a lifecycle event stream)",
		Long: `Declare a product's support period: general availability, end of sales, end of
security support and end of life, each an RFC 3339 date-time, a date (YYYY-MM-DD, that
day at 00:00 UTC) or "tba". The declaration replaces the previous one (give every date
you want kept) and is recorded in the product's event log. The registry publishes it,
signed, as an OpenEoX document (/v1/products/PRODUCT/lifecycle/openeox.json) and a
lifecycle event stream (/v1/products/PRODUCT/lifecycle/cle.json). See docs/vendors.md.`,
		Example: `  afterlife vendor support acme-cam200 --general-availability 2021-03-01 \
    --end-of-sales 2026-12-31 --end-of-security-support 2029-06-30 --end-of-life tba`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out product
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/products/"+url.PathEscape(args[0])+"/support", s, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "support period of %s declared:\n", out.ID)
			for _, r := range [][2]string{
				{"general availability", out.Support.GeneralAvailability},
				{"end of sales", out.Support.EndOfSales},
				{"end of security support", out.Support.EndOfSecuritySupport},
				{"end of life", out.Support.EndOfLife},
			} {
				if r[1] == "" {
					r[1] = "not declared"
				}
				fmt.Fprintf(w, "  %-24s %s\n", r[0], r[1])
			}
			return nil
		},
	}
	addSupportFlags(cmd.Flags(), &s)
	return cmd
}

// EndingSoonCommand is "afterlife vendor ending-soon".
func EndingSoonCommand(cf *apicli.Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "ending-soon",
		Short: "List your products near the end of security support with nothing in escrow (admins: every vendor's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Products []struct {
					Product              string `json:"product"`
					Vendor               string `json:"vendor"`
					EndOfSecuritySupport string `json:"end_of_security_support"`
					Days                 int    `json:"days"`
				} `json:"products"`
				WindowDays int `json:"window_days"`
			}
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/lifecycle/ending-soon", nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(out.Products) == 0 {
				fmt.Fprintf(w, "no product ends security support within %d days without a deposit\n", out.WindowDays)
				return nil
			}
			for _, p := range out.Products {
				when := fmt.Sprintf("in %d days", p.Days)
				if p.Days < 0 {
					when = fmt.Sprintf("%d days ago", -p.Days)
				}
				fmt.Fprintf(w, "%s (%s): security support ends %s (%s), nothing deposited\n", p.Product, p.Vendor, p.EndOfSecuritySupport, when)
			}
			return nil
		},
	}
}
