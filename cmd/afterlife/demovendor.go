package main

import (
	"context"
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

// demoHandover signs the demo vendor's handover of the demo product's
// device ids to this registry's current root, once that root carries the
// log's policy with every local builder as a witness: a device checks the
// statement's log entry under the policy of the root the statement names,
// so that root must know the witnesses that will cosign the checkpoints.
func (s *system) demoHandover(ctx context.Context, deviceIDs []string) ([]byte, error) {
	key, err := handover.LoadOrCreateKey(filepath.Join(s.cfg.Data, "demo", demoVendorKeyFile), filepath.Join(s.cfg.Data, "demo", demoVendorPubKeyFile))
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
