package main

import (
	"context"
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
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/handover"
)

// The demo vendor's update-signing key is generated once into the data
// directory (demo/vendor-key.pem, and the public half a device holds,
// demo/vendor-key.pub.pem); with it the demo vendor signs the handover
// statement its deposit carries.
const (
	demoVendorKeyFile    = "vendor-key.pem"
	demoVendorPubKeyFile = "vendor-key.pub.pem"
)

// demoVendorKey loads the demo vendor's key, generating it on first use.
func demoVendorKey(dataDir string) (*ecdsa.PrivateKey, error) {
	dir := filepath.Join(dataDir, "demo")
	path := filepath.Join(dir, demoVendorKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := handover.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("demo: vendor key %s: %w", path, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errs.E(errs.Invalid, "demo: vendor key %s is not an ECDSA key", path)
		}
		return ec, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("demo: vendor key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demo: vendor key: %w", err)
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
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, demoVendorPubKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, fmt.Errorf("demo: vendor public key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("demo: vendor key: %w", err)
	}
	return k, nil
}

// demoHandover signs the demo vendor's handover of the demo product's
// device ids to this registry's current root, once that root carries the
// log's policy with every local builder as a witness: a device checks the
// statement's log entry under the policy of the root the statement names,
// so that root must know the witnesses that will cosign the checkpoints.
func (s *system) demoHandover(ctx context.Context, deviceIDs []string) ([]byte, error) {
	key, err := demoVendorKey(s.cfg.Data)
	if err != nil {
		return nil, err
	}
	var root []byte
	for {
		f, err := s.parts.tuf.RootField(ctx, device.LogPolicyField)
		if err != nil {
			return nil, err
		}
		if demoPolicyComplete(f, s.cfg.LocalBuilders) || !s.cfg.TranslogInRoot {
			if root, _, err = s.parts.tuf.Meta(ctx, "root.json"); err != nil {
				return nil, err
			}
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	subject, err := handover.RootSubject(root)
	if err != nil {
		return nil, err
	}
	return handover.Sign(ctx, key, "", nil, handover.Statement{Root: subject, Predicate: handover.Predicate{
		Product: demoProduct, DeviceIDs: deviceIDs, HardwareRevisions: []string{"A", "B"},
		TakesEffect: handover.TakesEffectOnRelease, Scope: handover.ScopeUpdates,
	}})
}

// waitLogged waits until the transparency log's served (witnessed)
// checkpoint holds an entry of type typ about subject, so that a device
// that checks the log accepts it.
func (s *system) waitLogged(ctx context.Context, subject, typ string) error {
	l := s.parts.translog
	if l == nil {
		return nil
	}
	for {
		listed, err := l.EntriesAbout(ctx, subject)
		if err != nil {
			return err
		}
		_, size, err := l.Checkpoint(ctx)
		if err != nil && !errs.Is(err, errs.NotFound) {
			return err
		}
		for _, e := range listed {
			if e.Type == typ && e.Index < size {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// demoPolicyComplete reports whether a root's log policy field names at
// least n witnesses.
func demoPolicyComplete(field any, n int) bool {
	m, ok := field.(map[string]any)
	if !ok {
		return false
	}
	ws, _ := m["witnesses"].([]any)
	return len(ws) >= max(n, 1)
}
