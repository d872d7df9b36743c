package device_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/device"
)

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	reg, err := newTestRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.close)
	return reg
}

func deviceConfig(t *testing.T, reg *testRegistry) device.Config {
	dir := t.TempDir()
	return device.Config{
		Registry: reg.srv.URL, StateDir: filepath.Join(dir, "state"), InstallDir: filepath.Join(dir, "install"),
		DeviceID: "cam-0001", Channel: "stable",
	}
}

func initDevice(t *testing.T, reg *testRegistry, cfg device.Config) {
	t.Helper()
	if err := device.Init(context.Background(), cfg, reg.root(), false); err != nil {
		t.Fatalf("Init: %v", err)
	}
}

// firmware is an artifact big enough for a download to be cut half-way.
func firmware(version string) []byte {
	return bytes.Repeat([]byte("afterlife "+version+" firmware\n"), 20_000)
}

func TestUpdateInstallsIntoTheInactiveSlotAndRollsBack(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	var mu sync.Mutex
	var last, total int64
	cfg.Progress = func(done, n int64) { mu.Lock(); last, total = done, n; mu.Unlock() }
	initDevice(t, reg, cfg)

	if _, err := device.Current(cfg); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Current before any install: err = %v, want not_found", err)
	}
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ from, to, slot string }{{"0.9.0", "1.0.0", "a"}, {"1.0.0", "1.1.0", "b"}} {
		if step.to != "1.0.0" {
			if _, err := reg.publish(step.to, firmware(step.to), false, ""); err != nil {
				t.Fatal(err)
			}
		}
		res, err := device.Update(ctx, cfg, step.from)
		if err != nil {
			t.Fatalf("Update from %s: %v", step.from, err)
		}
		if !res.Updated || res.Version != step.to || res.Slot != step.slot {
			t.Fatalf("Update from %s = %+v, want %s in slot %s", step.from, res, step.to, step.slot)
		}
		got, err := os.ReadFile(filepath.Join(cfg.InstallDir, "current", "afterlife-cam.tar.gz"))
		if err != nil || !bytes.Equal(got, firmware(step.to)) {
			t.Fatalf("current slot does not hold %s: %v", step.to, err)
		}
		if v, err := device.Current(cfg); err != nil || v != step.to {
			t.Fatalf("Current = %q %v, want %s", v, err, step.to)
		}
	}
	mu.Lock()
	if total != int64(len(firmware("1.1.0"))) || last != total {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	mu.Unlock()
	if link, _ := os.Readlink(filepath.Join(cfg.InstallDir, "current")); link != "b" {
		t.Errorf("current -> %q, want b", link)
	}
	reports := reg.gotReports()
	if len(reports) != 2 {
		t.Fatalf("reports = %+v", reports)
	}
	install := reports[0].InstallID
	want := device.Report{DeviceID: "cam-0001", ReleaseID: "rel_1.1.0", Version: "1.1.0", Outcome: "success",
		InstallID: install, Receipt: receiptFor(sha256Hex(firmware("1.1.0")), install)}
	if len(install) != 32 || reports[1] != want {
		t.Fatalf("report = %+v, want %+v: one install id, and the receipt of the download", reports[1], want)
	}

	res, err := device.Update(ctx, cfg, "1.1.0")
	if err != nil || res.Updated {
		t.Fatalf("an up-to-date device updated: %+v %v", res, err)
	}

	if err := device.Rollback(context.Background(), cfg); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if v, _ := device.Current(cfg); v != "1.0.0" {
		t.Fatalf("after rollback Current = %q, want 1.0.0", v)
	}
	if err := device.Rollback(context.Background(), cfg); err != nil {
		t.Fatalf("rolling forward again: %v", err)
	}
	if v, _ := device.Current(cfg); v != "1.1.0" {
		t.Fatalf("after a second rollback Current = %q, want 1.1.0", v)
	}
}

func TestRollbackWithoutAnEarlierReleaseIsRefused(t *testing.T) {
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if err := device.Rollback(context.Background(), cfg); !errs.Is(err, errs.Conflict) {
		t.Fatalf("Rollback with nothing installed: err = %v, want conflict", err)
	}
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Update(context.Background(), cfg, "0.9.0"); err != nil {
		t.Fatal(err)
	}
	if err := device.Rollback(context.Background(), cfg); !errs.Is(err, errs.Conflict) {
		t.Fatalf("Rollback with one release: err = %v, want conflict", err)
	}
}

func TestTamperedArtifactIsRefusedAndReported(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Update(ctx, cfg, "0.9.0"); err != nil {
		t.Fatal(err)
	}
	offer, err := reg.publish("1.1.0", firmware("1.1.0"), false, "")
	if err != nil {
		t.Fatal(err)
	}
	reg.tamper(offer.Target.Hashes["sha256"])

	_, err = device.Update(ctx, cfg, "1.0.0")
	if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Update with tampered bytes: err = %v, want an invalid digest", err)
	}
	if v, _ := device.Current(cfg); v != "1.0.0" {
		t.Fatalf("the slot switched to %q after a failed verification", v)
	}
	reports := reg.gotReports()
	last := reports[len(reports)-1]
	if last.Outcome != "failure" || last.ReleaseID != "rel_1.1.0" || !strings.Contains(last.Reason, "sha256") {
		t.Fatalf("last report = %+v, want a failure naming the digest", last)
	}
	parts, _ := filepath.Glob(filepath.Join(cfg.StateDir, "downloads", "*"))
	if len(parts) != 0 {
		t.Fatalf("the tampered download was kept: %v", parts)
	}
}

func TestInterruptedDownloadResumesWithRange(t *testing.T) {
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	fw := firmware("1.0.0")
	if _, err := reg.publish("1.0.0", fw, false, ""); err != nil {
		t.Fatal(err)
	}
	reg.cutFirstDownload = true
	res, err := device.Update(context.Background(), cfg, "0.9.0")
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(cfg.InstallDir, res.Slot, "afterlife-cam.tar.gz"))
	if !bytes.Equal(got, fw) {
		t.Fatal("the resumed file differs from the original")
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.ranges) != 2 || reg.ranges[0] != "" || !strings.HasPrefix(reg.ranges[1], "bytes=") || reg.ranges[1] == "bytes=0-" {
		t.Fatalf("target requests had ranges %q, want a full request then a resumed range", reg.ranges)
	}
}

func TestCommunityReleaseNeedsTheOwnersOptIn(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		initAccepts   bool
		configAccepts bool
		wantInstalled bool
	}{
		{"without an opt-in the release is refused", false, false, false},
		{"an opt-in stored at Init installs it", true, false, true},
		{"an opt-in in the config installs it", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			cfg := deviceConfig(t, reg)
			if err := device.Init(ctx, cfg, reg.root(), tc.initAccepts); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.publish("2.0.0", firmware("2.0.0"), true, "built from reverse-engineered drivers"); err != nil {
				t.Fatal(err)
			}
			cfg.AcceptCommunity = tc.configAccepts
			_, err := device.Update(ctx, cfg, "1.0.0")
			if tc.wantInstalled {
				if err != nil {
					t.Fatalf("Update: %v", err)
				}
				return
			}
			if !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), "reverse-engineered") || !strings.Contains(err.Error(), "opt-in") {
				t.Fatalf("err = %v, want a refusal explaining the opt-in and the risk notes", err)
			}
			if _, err := device.Current(cfg); !errs.Is(err, errs.NotFound) {
				t.Fatal("a refused community release was installed")
			}
		})
	}
}

func TestUnavailableRegistryIsRetriedAfterRetryAfter(t *testing.T) {
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	reg.unavailable = 1
	start := time.Now()
	res, err := device.Update(context.Background(), cfg, "0.9.0")
	if err != nil || !res.Updated {
		t.Fatalf("Update after a 503: %+v %v", res, err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %v, Retry-After asked for 1s", waited)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.updateRequests) != 2 || reg.updateRequests[1].Get("id") != "cam-0001" || reg.updateRequests[1].Get("channel") != "stable" {
		t.Fatalf("update requests = %v", reg.updateRequests)
	}
}

func TestInitTrustsOnFirstUseAndRejectsABadRoot(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	if err := device.Init(ctx, cfg, nil, false); !errs.Is(err, errs.Invalid) {
		t.Fatalf("Init without a root or TrustOnFirstUse: err = %v, want invalid", err)
	}
	cfg.TrustOnFirstUse = true
	if err := device.Init(ctx, cfg, nil, false); err != nil {
		t.Fatalf("Init on first use: %v", err)
	}
	stored, err := os.ReadFile(filepath.Join(cfg.StateDir, "root.json"))
	if err != nil || !bytes.Equal(stored, reg.root()) {
		t.Fatalf("stored root differs from 1.root.json: %v", err)
	}
	bad := bytes.Replace(reg.root(), []byte(`"consistent_snapshot":true`), []byte(`"consistent_snapshot":false`), 1)
	if err := device.Init(ctx, deviceConfig(t, reg), bad, false); !errs.Is(err, errs.Invalid) {
		t.Fatalf("Init with a root whose signature does not match: err = %v, want invalid", err)
	}
}

func TestDeviceFollowsKeyRotation(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Update(ctx, cfg, "0.9.0"); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"root", "timestamp", "targets"} {
		if err := reg.repo.Rotate(ctx, role); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.publish("1.1.0", firmware("1.1.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := device.Update(ctx, cfg, "1.0.0"); err != nil || res.Version != "1.1.0" {
		t.Fatalf("Update after rotations: %+v %v", res, err)
	}
}
