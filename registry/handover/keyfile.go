package handover

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// LoadOrCreateKey loads an ECDSA P-256 signing key from path (PEM, PKCS#8),
// generating it on first use and writing its public half to pubPath. It is
// for demonstrations and tests: a real vendor signs with the key its
// devices already trust.
func LoadOrCreateKey(path, pubPath string) (*ecdsa.PrivateKey, error) {
	dir := filepath.Dir(path)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("handover: key %s: %w", path, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errs.E(errs.Invalid, "handover: key %s is not an ECDSA key", path)
		}
		return ec, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("handover: key %s: %w", path, err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("handover: key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, fmt.Errorf("handover: public key %s: %w", pubPath, err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("handover: key %s: %w", path, err)
	}
	return k, nil
}
