package fwupd

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// The files of the fwupd key directory. ca.key belongs offline: the
// embedded default makes it on first start, next to the rest, and warns on
// every start while it is there.
const (
	CAKeyFile      = "ca.key"
	CACertFile     = "ca.pem"
	SigningKeyFile = "signing.key"
	SigningCert    = "signing.pem"
)

// Validity of what IssueSigning makes, and how long before its end the
// embedded default renews it (when it holds the CA key).
const (
	caValidity      = 20 * 365 * 24 * time.Hour
	SigningValidity = 2 * 365 * 24 * time.Hour
	renewBefore     = 60 * 24 * time.Hour
)

// Signer is the registry's metadata signing key, with its certificate and
// the CA certificate that fwupd trusts.
type Signer struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	CA     *x509.Certificate
	CAPEM  []byte
	Online bool // the CA key sits beside the signing key
}

// InitCA makes a CA key and certificate in dir unless dir holds a CA
// certificate already; it reports whether it made one.
func InitCA(dir, name string, now time.Time) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("fwupd: key dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, fmt.Errorf("fwupd: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name + " fwupd metadata CA", Organization: []string{"afterlife"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return false, fmt.Errorf("fwupd: CA certificate: %w", err)
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return false, err
	}
	return true, writePEM(filepath.Join(dir, CACertFile), "CERTIFICATE", der, 0o644)
}

// IssueSigning makes a new signing key in outDir and a certificate for it
// from the CA in caDir, valid for validity from now. It is what the CA's
// custodian runs on the offline machine that holds ca.key; the embedded
// default runs it on itself.
func IssueSigning(caDir, outDir string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	caKey, err := readKey(filepath.Join(caDir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	ca, _, err := readCert(filepath.Join(caDir, CACertFile))
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fwupd: signing key: %w", err)
	}
	end := now.Add(validity)
	if end.After(ca.NotAfter) {
		end = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: strings.TrimSuffix(ca.Subject.CommonName, " CA") + " signing " + now.UTC().Format("2006-01-02"), Organization: []string{"afterlife"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     end,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("fwupd: signing certificate: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return nil, fmt.Errorf("fwupd: key dir: %w", err)
	}
	if caDir != outDir {
		b, err := os.ReadFile(filepath.Join(caDir, CACertFile))
		if err != nil {
			return nil, fmt.Errorf("fwupd: %w", err)
		}
		if err := os.WriteFile(filepath.Join(outDir, CACertFile), b, 0o644); err != nil {
			return nil, fmt.Errorf("fwupd: %w", err)
		}
	}
	if err := writeKey(filepath.Join(outDir, SigningKeyFile), key); err != nil {
		return nil, err
	}
	if err := writePEM(filepath.Join(outDir, SigningCert), "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// LoadSigner reads the signing key and certificates from dir. With makeCA
// (the first replica to serve the remote) it makes the CA when dir has
// none, warning loudly that the CA key belongs offline. While dir holds the
// CA key it issues or renews the signing certificate itself. Without a
// usable signing certificate it fails with Unavailable, naming the command
// the CA's keeper runs.
func LoadSigner(dir, name string, now time.Time, makeCA bool, log *slog.Logger) (*Signer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	made := false
	if makeCA {
		var err error
		made, err = InitCA(dir, name, now)
		if err != nil {
			return nil, err
		}
		if made {
			log.Warn("FWUPD CA KEY MADE ON THIS SERVER: whoever holds it can sign fwupd metadata that every device trusting this remote installs from, and the metadata never expires; move it to an offline machine (docs/fwupd.md, \"Keeping the CA offline\")",
				"ca_key", filepath.Join(dir, CAKeyFile))
		}
	}
	_, caErr := os.Stat(filepath.Join(dir, CAKeyFile))
	online := caErr == nil
	cert, _, err := readCert(filepath.Join(dir, SigningCert))
	if online && (errs.Is(err, errs.NotFound) || err == nil && now.Add(renewBefore).After(cert.NotAfter)) {
		if cert, err = IssueSigning(dir, dir, now, SigningValidity); err != nil {
			return nil, err
		}
		log.Info("fwupd signing certificate issued by the CA on this server", "not_after", cert.NotAfter)
	}
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err,
			"fwupd: no signing certificate; on the machine holding the CA key run: afterlife admin fwupd issue --ca DIR --out DIR, and copy %s and %s into %s",
			SigningKeyFile, SigningCert, dir)
	}
	if now.After(cert.NotAfter) {
		return nil, errs.E(errs.Unavailable, "fwupd: the signing certificate expired on %s; issue a new one with: afterlife admin fwupd issue", cert.NotAfter.Format(time.DateOnly))
	}
	key, err := readKey(filepath.Join(dir, SigningKeyFile))
	if err != nil {
		return nil, err
	}
	ca, caPEM, err := readCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "fwupd: %s is not issued by %s", SigningCert, CACertFile)
	}
	if online && !made {
		log.Warn("FWUPD CA KEY ON THIS SERVER: fwupd metadata never expires, so a thief of this key can freeze or replace what every opted-in device sees for as long as it trusts the CA; move it offline (docs/fwupd.md, \"Keeping the CA offline\")",
			"ca_key", filepath.Join(dir, CAKeyFile))
	}
	return &Signer{Cert: cert, Key: key, CA: ca, CAPEM: caPEM, Online: online}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("fwupd: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("fwupd: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("fwupd: write %s: %w", path, err)
	}
	return nil
}

func readPEM(path, typ string) ([]byte, []byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, errs.E(errs.NotFound, "fwupd: %s not found", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fwupd: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, nil, errs.E(errs.Invalid, "fwupd: %s: want a PEM %s", path, typ)
	}
	return blk.Bytes, b, nil
}

func readKey(path string) (crypto.Signer, error) {
	der, _, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "fwupd: %s", path)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errs.E(errs.Invalid, "fwupd: %s: not a signing key", path)
	}
	return s, nil
}

func readCert(path string) (*x509.Certificate, []byte, error) {
	der, raw, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "fwupd: %s", path)
	}
	return c, raw, nil
}
