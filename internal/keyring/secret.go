package keyring

import (
	"fmt"
	"os"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
)

// LoadOrCreateSecret reads a 32-byte secret file, creating it on first start.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("keyring: %s: %w", path, err)
	}
	b = []byte(ids.Secret(32))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("keyring: write %s: %w", path, err)
	}
	return b, nil
}

// LoadSecret reads a 32-byte secret file; a missing one is errs.NotFound.
func LoadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, errs.Wrap(errs.NotFound, err, "keyring: %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %s: %w", path, err)
	}
	if len(b) < 32 {
		return nil, errs.E(errs.Invalid, "keyring: %s holds %d bytes; a secret key has at least 32", path, len(b))
	}
	return b, nil
}
