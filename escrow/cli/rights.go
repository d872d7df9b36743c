package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/escrow/client"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// addDepositRightsFlags gives "vendor deposit" its rights flags: --rights
// PATTERN=CLASS (repeatable, in order) and --grant FILE.
func addDepositRightsFlags(deposit *cobra.Command, opts *client.DepositOptions) {
	var rules []string
	var grantFile string
	deposit.Long += `

Rights: each file gets a class by --rights PATTERN=CLASS (repeatable; the last
matching rule wins; * within a path element, ** any number of elements):
  public      published when the deposit is released
  build-only  a build input: served only to builders, in a job whose recipe
              declares it; never to the public
  private     never leaves escrow except to you and the registry's admins
A file no rule names is private, so a deposit without --rights publishes
nothing. --grant FILE is your licence or written permission; it is shown with
the deposit and quoted on the page of every build that used build-only files. The receipt
lists the rules and how many files fall in each class.`
	deposit.Example += `
  afterlife vendor deposit --product acme-cam200 --policy on=2027-06-30 \
      --rights '**=public' --rights 'drivers/**=build-only' --rights 'keys/**=private' \
      --grant PERMISSION.txt ./sunset/`
	deposit.Flags().StringArrayVar(&rules, "rights", nil, "a rights rule PATTERN=CLASS (public, build-only, private); repeat it, the last match wins; unnamed files are private")
	deposit.Flags().StringVar(&grantFile, "grant", "", "a text file with your licence or written permission for the public and build-only files")
	run := deposit.RunE
	deposit.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Rights = nil
		for _, r := range rules {
			rule, err := manifest.ParseRightsRule(r)
			if err != nil {
				return fmt.Errorf("--rights: %w", err)
			}
			opts.Rights = append(opts.Rights, rule)
		}
		if grantFile != "" {
			b, err := os.ReadFile(grantFile)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "--grant")
			}
			opts.Grant = string(b)
		}
		return run(cmd, args)
	}
}
