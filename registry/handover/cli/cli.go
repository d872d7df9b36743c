// Package cli holds the handover statement's offline commands (afterlife
// vendor handover sign and verify): a vendor signs on its own machine, and
// anyone checks a statement as a device would.
package cli

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/handover"
)

// SignCommand is "handover sign"; out is where it writes the statement
// unless told (the file name a deposit carries it as).
func SignCommand(defaultOut string) *cobra.Command {
	var st handover.Statement
	var keyFile, certFile, alg, rootFile, out string
	sign := &cobra.Command{
		Use:   "sign --key KEY --root ROOT.json --product ID --device-id ID... [--cert CHAIN.pem]",
		Short: "Sign a handover statement with your devices' update key (offline)",
		Long: `Sign a handover statement naming the registry root in --root (download it from
<registry>/tuf/root.json) for the product's device ids. The key may be Ed25519, ECDSA
P-256 or RSA (at least 2048 bits), in PEM (PKCS#8, PKCS#1 or SEC 1). RSA signs with PSS
(SHA-256) unless --algorithm rsa-pkcs1v15-sha256 is given for devices that only check
PKCS#1 v1.5. When your devices trust a CA rather than the bare key, give the key's
certificate chain with --cert (the key's certificate first).`,
		Example: `  afterlife vendor handover sign --key update-key.pem --root root.json \
    --product acme-cam200 --device-id usb:1d6b:0104 --hardware-revision A --hardware-revision B`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			key, err := handover.ParsePrivateKey(keyPEM)
			if err != nil {
				return err
			}
			root, err := os.ReadFile(rootFile)
			if err != nil {
				return err
			}
			if st.Root, err = handover.RootSubject(root); err != nil {
				return err
			}
			var chain []*x509.Certificate
			if certFile != "" {
				b, err := os.ReadFile(certFile)
				if err != nil {
					return err
				}
				if chain, err = handover.ParseCertificates(b); err != nil {
					return err
				}
			}
			st.Predicate.TakesEffect, st.Predicate.Scope = handover.TakesEffectOnRelease, handover.ScopeUpdates
			env, err := handover.Sign(cmd.Context(), key, alg, chain, st)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, env, 0o644); err != nil {
				return err
			}
			fp, _ := handover.Fingerprint(key.Public())
			fmt.Fprintf(cmd.OutOrStdout(), "handover of %s (%s) to root %s (sha256 %s), signed by %s; written to %s\nadd it to a deposit: afterlife vendor deposit --handover %s ...\n",
				st.Predicate.Product, strings.Join(st.Predicate.DeviceIDs, ", "), st.Root.Name, st.Root.SHA256, fp, out, out)
			return nil
		},
	}
	sign.Flags().StringVar(&keyFile, "key", "", "your devices' update-signing private key, PEM (required)")
	sign.Flags().StringVar(&certFile, "cert", "", "the key's certificate chain, PEM, the key's certificate first")
	sign.Flags().StringVar(&alg, "algorithm", "", "ed25519, ecdsa-p256-sha256, rsa-pss-sha256 or rsa-pkcs1v15-sha256 (default: from the key; RSA takes PSS)")
	sign.Flags().StringVar(&rootFile, "root", "", "the registry's root metadata the statement names, e.g. a copy of /tuf/root.json (required)")
	sign.Flags().StringVar(&st.Predicate.Product, "product", "", "product id (required)")
	sign.Flags().StringArrayVar(&st.Predicate.DeviceIDs, "device-id", nil, "a device id handed over; repeat for each (required)")
	sign.Flags().StringArrayVar(&st.Predicate.HardwareRevisions, "hardware-revision", nil, "a hardware revision covered; repeat (default: all)")
	sign.Flags().StringVar(&out, "out", defaultOut, "where to write the signed statement")
	for _, f := range []string{"key", "root", "product", "device-id"} {
		_ = sign.MarkFlagRequired(f)
	}
	return sign
}

// VerifyCommand is "handover verify".
func VerifyCommand() *cobra.Command {
	var pubFile, caFile, at string
	verify := &cobra.Command{
		Use:   "verify FILE --key PUBLIC.pem | --ca CA.pem --at TIME",
		Short: "Check a handover statement as a device would, offline",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var trust handover.Trust
			var when time.Time
			switch {
			case pubFile != "":
				b, err := os.ReadFile(pubFile)
				if err != nil {
					return err
				}
				if trust.Key, err = handover.ParsePublicKey(b); err != nil {
					return err
				}
			case caFile != "":
				b, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				cas, err := handover.ParseCertificates(b)
				if err != nil {
					return err
				}
				trust.Roots = newCertPool(cas)
				if when, err = time.Parse(time.RFC3339, at); err != nil {
					return errs.Wrap(errs.Invalid, err, "--at: want an RFC 3339 time (the statement's log entry)")
				}
			default:
				return errs.E(errs.Invalid, "give --key or --ca")
			}
			v, err := handover.Verify(cmd.Context(), env, trust, when)
			if err != nil {
				return err
			}
			p := v.Predicate
			fmt.Fprintf(cmd.OutOrStdout(), "valid: vendor key %s (%s) hands over %s (device ids %s; hardware revisions %s) to root %s (sha256 %s)\n",
				p.VendorKey.Fingerprint, p.VendorKey.Algorithm, p.Product, strings.Join(p.DeviceIDs, ", "), orAll(p.HardwareRevisions), v.Root.Name, v.Root.SHA256)
			return nil
		},
	}
	verify.Flags().StringVar(&pubFile, "key", "", "the vendor's public key, PEM, as the devices hold it")
	verify.Flags().StringVar(&caFile, "ca", "", "the CA certificates the devices trust, PEM")
	verify.Flags().StringVar(&at, "at", "", "the time to check the certificate chain at (RFC 3339)")

	return verify
}

func orAll(revs []string) string {
	if len(revs) == 0 {
		return "all"
	}
	return strings.Join(revs, ", ")
}

func newCertPool(cas []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return pool
}
