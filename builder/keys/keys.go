// Package keys owns a builder's identity: its ed25519 key pair, the key file
// on disk (PEM, PKCS#8, mode 0600), the compact text form of a public key
// ("ed25519:<base64>") that an operator registers with the coordinator, and
// the key id that names a key in signatures and logs.
//
// It must not know about attestations, jobs or the coordinator; it must never
// overwrite an existing key file or read one that others may read.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// pemType is the PEM block type of a PKCS#8 private key.
const pemType = "PRIVATE KEY"

// publicPrefix starts the text form of a public key.
const publicPrefix = "ed25519:"

// maxKeyFile bounds what Load reads; a PEM ed25519 key is about 120 bytes.
const maxKeyFile = 16 << 10

// Generate creates a new ed25519 key and writes it to path as a PEM PKCS#8
// file with mode 0600. It refuses to overwrite an existing file (kind
// Conflict): losing a builder key means re-registering the builder. The file
// appears complete or not at all.
func Generate(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keys: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: encode: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	if err := writeNew(path, data); err != nil {
		return nil, err
	}
	return priv, nil
}

// writeNew writes data to a temporary file next to path and links it into
// place, so that a crash never leaves a half-written key and an existing
// file is never replaced.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys: create directory for %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return errs.E(errs.Conflict, "key file %s already exists; refusing to overwrite it", path)
	}
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	// CreateTemp already uses 0600; Chmod makes it independent of that detail.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errs.E(errs.Conflict, "key file %s already exists; refusing to overwrite it", path)
		}
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	return nil
}

// Load reads an ed25519 private key written by Generate. It refuses a file
// that its group or other users may read or write (kind Forbidden), like ssh
// does, and anything that is not a PEM PKCS#8 ed25519 key (kind Invalid).
func Load(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errs.Wrap(errs.NotFound, err, "key file %s does not exist", path)
		}
		return nil, fmt.Errorf("keys: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, errs.E(errs.Invalid, "key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, errs.E(errs.Forbidden,
			"key file %s has mode %04o and is accessible by group or others; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("keys: read %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, errs.E(errs.Invalid, "key file %s is larger than %d bytes; not an ed25519 key", path, maxKeyFile)
	}
	priv, err := parsePrivate(data)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return priv, nil
}

func parsePrivate(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errs.E(errs.Invalid, "not a PEM file")
	}
	if block.Type != pemType {
		return nil, errs.E(errs.Invalid, "PEM block is %q, want %q", block.Type, pemType)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errs.E(errs.Invalid, "unexpected data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "not a PKCS#8 private key")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errs.E(errs.Invalid, "key is %T, want an ed25519 key", k)
	}
	return priv, nil
}

// PublicKeyString is the compact text form of pub: "ed25519:" followed by the
// standard base64 of the 32 raw key bytes.
func PublicKeyString(pub ed25519.PublicKey) string {
	return publicPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads the text form written by PublicKeyString.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), publicPrefix)
	if !ok {
		return nil, errs.E(errs.Invalid, "public key %q: want %s<base64>", abbreviate(s), publicPrefix)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "public key %q: bad base64", abbreviate(s))
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, errs.E(errs.Invalid, "public key %q: %d bytes, want %d", abbreviate(s), len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// KeyID names pub: the hex of the first 16 bytes of the SHA-256 of the raw
// public key (32 hex digits).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// abbreviate keeps error messages short when given junk.
func abbreviate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
