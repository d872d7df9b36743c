// Package fwupdcli is "afterlife admin fwupd": the commands the keeper of
// the fwupd metadata CA runs on the offline machine that holds its key.
// They touch files only, never a server.
package fwupdcli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/registry/fwupd"
)

// Command is "afterlife admin fwupd"; now is the clock certificates are
// dated by.
func Command(now func() time.Time) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fwupd",
		Short: "Keep the fwupd metadata CA offline and issue the server's signing certificate",
		Long: `The fwupd remote's metadata is signed by a key the server holds, certified by a CA
whose key belongs offline: fwupd metadata never expires, so whoever holds the CA key
can sign metadata every opted-in device accepts for as long as it trusts the CA.

The embedded default makes the CA in KEYS/fwupd on first start and warns on every
start while ca.key is there. Move it: copy KEYS/fwupd/ca.key and ca.pem to an
offline machine, then delete ca.key from the server. Before the signing certificate
expires (two years), run "issue" on the offline machine and copy signing.key and
signing.pem into KEYS/fwupd on every replica. See docs/fwupd.md.`,
	}
	var dir, name string
	initCA := &cobra.Command{
		Use:   "init-ca",
		Short: "Make a new CA key and certificate in --dir (on the offline machine)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			made, err := fwupd.InitCA(dir, name, now())
			if err != nil {
				return err
			}
			if !made {
				return fmt.Errorf("fwupd: %s already holds a CA certificate; it is kept", filepath.Join(dir, fwupd.CACertFile))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA made: %s (keep offline) and %s (publish: the server serves it as %s)\n",
				filepath.Join(dir, fwupd.CAKeyFile), filepath.Join(dir, fwupd.CACertFile), fwupd.CAPath)
			return nil
		},
	}
	initCA.Flags().StringVar(&dir, "dir", "", "directory for ca.key and ca.pem (required)")
	initCA.Flags().StringVar(&name, "name", "afterlife", "name of the registry, in the CA's subject")
	_ = initCA.MarkFlagRequired("dir")

	var caDir, out string
	var validity time.Duration
	issue := &cobra.Command{
		Use:   "issue",
		Short: "Make a new signing key and certificate from the CA in --ca, into --out",
		Example: `  afterlife admin fwupd issue --ca /media/offline/fwupd-ca --out ./fwupd-signing
  # then copy fwupd-signing/signing.key and signing.pem into KEYS/fwupd/ on every replica`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cert, err := fwupd.IssueSigning(caDir, out, now(), validity)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signing certificate %q valid until %s: %s and %s\n", cert.Subject.CommonName,
				cert.NotAfter.Format(time.DateOnly), filepath.Join(out, fwupd.SigningKeyFile), filepath.Join(out, fwupd.SigningCert))
			return nil
		},
	}
	issue.Flags().StringVar(&caDir, "ca", "", "directory holding ca.key and ca.pem (required)")
	issue.Flags().StringVar(&out, "out", "", "directory to write signing.key, signing.pem and ca.pem to (required)")
	issue.Flags().DurationVar(&validity, "validity", fwupd.SigningValidity, "how long the signing certificate is valid")
	for _, f := range []string{"ca", "out"} {
		_ = issue.MarkFlagRequired(f)
	}
	cmd.AddCommand(initCA, issue)
	return cmd
}
