package tuf

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// roleKey is one role's private key with what signing needs.
type roleKey struct {
	priv   ed25519.PrivateKey
	pub    *metadata.Key
	id     string
	signer signature.Signer
}

func newRoleKey(priv ed25519.PrivateKey) (*roleKey, error) {
	pub, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("tuf: public key: %w", err)
	}
	id, err := pub.ID()
	if err != nil {
		return nil, fmt.Errorf("tuf: key id: %w", err)
	}
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		return nil, fmt.Errorf("tuf: load signer: %w", err)
	}
	return &roleKey{priv: priv, pub: pub, id: id, signer: s}, nil
}

func generateRoleKey() (*roleKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tuf: generate key: %w", err)
	}
	return newRoleKey(priv)
}

// keyPath is where a role's current key lives: "<dir>/<role>.key".
func keyPath(dir, role string) string { return filepath.Join(dir, role+".key") }

// readKey loads a role key from a PEM (PKCS#8) file; a missing file is
// errs.NotFound.
func readKey(path string) (*roleKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.E(errs.NotFound, "key file %s not found", filepath.Base(path))
	}
	if err != nil {
		return nil, fmt.Errorf("tuf: read key %s: %w", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errs.E(errs.Invalid, "key file %s is not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "key file %s", path)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errs.E(errs.Invalid, "key file %s does not hold an ed25519 key", path)
	}
	return newRoleKey(priv)
}

// writeKey stores k at path with mode 0600, atomically.
func writeKey(path string, k *roleKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return fmt.Errorf("tuf: encode key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("tuf: write key %s: %w", path, err)
	}
	return nil
}

// retireKey renames "<role>.key" to the first free "<role>.key.old.<n>".
func retireKey(dir, role string) error {
	cur := keyPath(dir, role)
	for n := 1; ; n++ {
		old := fmt.Sprintf("%s.old.%d", cur, n)
		if _, err := os.Lstat(old); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tuf: retire %s key: %w", role, err)
		}
		if err := os.Rename(cur, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tuf: retire %s key: %w", role, err)
		}
		return nil
	}
}

// settleRotation finishes or abandons a rotation that stopped half-way.
// Rotate writes the new key as "<role>.key.new" before publishing the
// root that lists it; if that root made it to the store (listed reports
// the new key's id as trusted for role) the new key becomes current,
// otherwise the unpublished key is discarded.
func settleRotation(dir, role string, listed func(id string) bool) error {
	pending := keyPath(dir, role) + ".new"
	k, err := readKey(pending)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !listed(k.id) {
		if err := os.Remove(pending); err != nil {
			return fmt.Errorf("tuf: discard unpublished %s key: %w", role, err)
		}
		return nil
	}
	if err := retireKey(dir, role); err != nil {
		return err
	}
	if err := os.Rename(pending, keyPath(dir, role)); err != nil {
		return fmt.Errorf("tuf: install rotated %s key: %w", role, err)
	}
	return nil
}
