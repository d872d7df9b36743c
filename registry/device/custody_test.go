package device_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// TestADeviceWalksToARootHeldByCustodians moves the registry's single-key
// root to 2 of 3 custodians, then rotates the timestamp key through a
// signed proposal; a device initialised on root version 1 follows both
// root versions and keeps updating.
func TestADeviceWalksToARootHeldByCustodians(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := device.Update(ctx, cfg, "0.9.0"); err != nil || res.Version != "1.0.0" {
		t.Fatalf("Update on root v1: %+v %v", res, err)
	}

	var files []string
	var keys []*metadata.Key
	for range 3 {
		priv, pub, _, err := tuf.GenerateCustodianKey()
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "custodian.key")
		if err := os.WriteFile(f, priv, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := tuf.ParseRootKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		files, keys = append(files, f), append(keys, k)
	}
	current, err := reg.store.GetMeta(ctx, "root.json")
	if err != nil {
		t.Fatal(err)
	}
	proposal, err := tuf.ProposeRoot(current, keys, 2, time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(p []byte, keyFiles ...string) []byte {
		for _, f := range keyFiles {
			if p, _, err = tuf.SignRootProposal(p, f); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	if _, err := reg.repo.PublishRoot(ctx, signWith(proposal, filepath.Join(reg.keyDir, "root.key"), files[0], files[1])); err != nil {
		t.Fatalf("publish the custodians' root: %v", err)
	}
	rotation, err := reg.repo.RotateOrPropose(ctx, "timestamp")
	if err != nil || rotation == nil {
		t.Fatalf("timestamp rotation under custodians: %v", err)
	}
	if _, err := reg.repo.PublishRoot(ctx, signWith(rotation, files[1], files[2])); err != nil {
		t.Fatalf("publish the rotation: %v", err)
	}
	if _, err := reg.publish("1.1.0", firmware("1.1.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := device.Update(ctx, cfg, "1.0.0"); err != nil || res.Version != "1.1.0" {
		t.Fatalf("Update after the move to custodians: %+v %v", res, err)
	}
	trusted, err := os.ReadFile(filepath.Join(cfg.StateDir, "tuf", "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := tuf.DescribeRoot(trusted)
	if err != nil || sum.Version != 3 || sum.Threshold != 2 {
		t.Fatalf("the device trusts %+v (%v), want root v3 of 2 of 3 custodians", sum, err)
	}
}
