package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/device"
)

func TestSettingsGivenOnceAreRemembered(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	if err := device.Init(ctx, device.Config{Registry: cfg.Registry, StateDir: cfg.StateDir, InstallDir: cfg.InstallDir, DeviceID: "cam-0001"}, reg.root(), false); err != nil {
		t.Fatal(err)
	}
	bare := device.Config{StateDir: cfg.StateDir}
	t.Run("a community release is refused, naming the flag and the config key", func(t *testing.T) {
		if _, err := reg.publish("1.0.0", firmware("1.0.0"), true, "no vendor tests"); err != nil {
			t.Fatal(err)
		}
		_, err := device.Update(ctx, bare, "")
		if !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), "--accept-community-firmware") || !strings.Contains(err.Error(), "accept_community") {
			t.Fatalf("err = %v, want a refusal naming --accept-community-firmware and accept_community", err)
		}
		st, err := device.ReadStatus(ctx, bare)
		if err != nil || !hasWarning(st, "opt-in") {
			t.Fatalf("status = %+v %v, want a warning about the missing opt-in", st, err)
		}
	})
	t.Run("the opt-in given once is remembered by later updates", func(t *testing.T) {
		withOptIn := bare
		withOptIn.AcceptCommunity = true
		if res, err := device.Update(ctx, withOptIn, ""); err != nil || res.Version != "1.0.0" {
			t.Fatalf("update with the opt-in: %+v %v", res, err)
		}
		for _, v := range []string{"1.1.0", "1.2.0"} {
			if _, err := reg.publish(v, firmware(v), true, ""); err != nil {
				t.Fatal(err)
			}
			res, err := device.Update(ctx, bare, "")
			if err != nil || !res.Updated || res.Version != v {
				t.Fatalf("update to %s with nothing but the state dir: %+v %v", v, res, err)
			}
		}
	})
	t.Run("config.json says everything under the keys refusals name", func(t *testing.T) {
		var conf map[string]any
		b, err := os.ReadFile(filepath.Join(cfg.StateDir, "config.json"))
		if err != nil || json.Unmarshal(b, &conf) != nil {
			t.Fatalf("config.json: %v %s", err, b)
		}
		for k, want := range map[string]any{"registry": cfg.Registry, "install_dir": cfg.InstallDir, "device_id": "cam-0001", "accept_community": true} {
			if conf[k] != want {
				t.Errorf("config.json %s = %v, want %v", k, conf[k], want)
			}
		}
		if id, _ := conf["install_id"].(string); len(id) != 32 {
			t.Errorf("install_id = %q", id)
		}
	})
	t.Run("a second init with the same root keeps the install id and the settings it is not given", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(cfg.StateDir, "config.json"))
		if err := device.Init(ctx, device.Config{StateDir: cfg.StateDir, Channel: "testing"}, reg.root(), false); err != nil {
			t.Fatal(err)
		}
		after, _ := os.ReadFile(filepath.Join(cfg.StateDir, "config.json"))
		if string(before) == string(after) || !strings.Contains(string(after), `"channel": "testing"`) ||
			!strings.Contains(string(after), `"accept_community": true`) || !strings.Contains(string(after), cfg.Registry) {
			t.Fatalf("config after init --channel testing:\n%s", after)
		}
	})
}

func hasWarning(st *device.Status, substr string) bool {
	for _, w := range st.Warnings {
		if strings.Contains(w, substr) {
			return true
		}
	}
	return false
}

func TestAFailingHealthCheckRollsBackAndReportsTheReason(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	healthy := filepath.Join(t.TempDir(), "healthy")
	// The check passes while the file exists and names the version.
	cfg.HealthCheckCommand = `test "$(cat ` + healthy + `)" = "$AFTERLIFE_VERSION"`
	for _, v := range []string{"1.0.0"} {
		if _, err := reg.publish(v, firmware(v), false, ""); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(healthy, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if res, err := device.Update(ctx, cfg, ""); err != nil || !res.Updated {
			t.Fatalf("healthy update to %s: %+v %v", v, res, err)
		}
	}
	bare := device.Config{StateDir: cfg.StateDir}
	if _, err := reg.publish("1.1.0", firmware("1.1.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	t.Run("an unhealthy release is rolled back and reported with the download's receipt", func(t *testing.T) {
		res, err := device.Update(ctx, bare, "")
		if !errs.Is(err, errs.Internal) || !strings.Contains(err.Error(), "health check failed") || !strings.Contains(err.Error(), "rolled back to slot a") {
			t.Fatalf("err = %v, want a rollback to slot a after the health check", err)
		}
		if res == nil || !res.RolledBack || res.Updated {
			t.Fatalf("result = %+v", res)
		}
		if v, _ := device.Current(bare); v != "1.0.0" {
			t.Fatalf("current = %s after the rollback, want 1.0.0", v)
		}
		reps := reg.gotReports()
		last := reps[len(reps)-1]
		if last.Outcome != device.OutcomeFailure || last.Version != "1.1.0" || !strings.Contains(last.Reason, "health check failed") || !last.RolledBack ||
			last.Receipt != receiptFor(sha256Hex(firmware("1.1.0")), last.InstallID) {
			t.Fatalf("last report = %+v, want a rolled-back failure of 1.1.0 with the reason and the download's receipt", last)
		}
	})
	t.Run("the failed release is not installed again, and status says why", func(t *testing.T) {
		n := len(reg.gotReports())
		res, err := device.Update(ctx, bare, "")
		if err != nil || res.Updated || !strings.Contains(res.Skipped, "failed on this device") {
			t.Fatalf("second update: %+v %v, want the failed release skipped", res, err)
		}
		if len(reg.gotReports()) != n {
			t.Fatal("skipping a failed release sent a report")
		}
		st, err := device.ReadStatus(ctx, bare)
		if err != nil {
			t.Fatal(err)
		}
		if st.ActiveSlot != "a" || st.Slots[0].Version != "1.0.0" || st.Slots[1].Version != "1.1.0" || st.Pending != nil ||
			st.LastInstall == nil || st.LastInstall.Outcome != "rolled back" || !hasWarning(st, "rolled back") ||
			st.LastCheck == nil || !strings.Contains(st.LastCheck.Answer, "failed on this device") || st.RootVersion != 1 {
			t.Fatalf("status = %+v", st)
		}
	})
	t.Run("a newer release that passes the check is installed and confirmed", func(t *testing.T) {
		if _, err := reg.publish("1.2.0", firmware("1.2.0"), false, ""); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(healthy, []byte("1.2.0"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := device.Update(ctx, bare, "")
		if err != nil || !res.Updated || res.Version != "1.2.0" || res.Slot != "b" {
			t.Fatalf("update: %+v %v", res, err)
		}
		st, _ := device.ReadStatus(ctx, bare)
		if st.LastInstall.Outcome != "confirmed" || st.Pending != nil {
			t.Fatalf("status = %+v", st)
		}
	})
	t.Run("a check that does not answer within the deadline rolls back", func(t *testing.T) {
		if _, err := reg.publish("1.3.0", firmware("1.3.0"), false, ""); err != nil {
			t.Fatal(err)
		}
		hanging := bare
		hanging.ConfirmDeadline = 300 * time.Millisecond
		hanging.HealthCheck = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		_, err := device.Update(ctx, hanging, "")
		if !errs.Is(err, errs.Internal) || !strings.Contains(err.Error(), "did not pass within 300ms") {
			t.Fatalf("err = %v, want a rollback after the deadline", err)
		}
		if v, _ := device.Current(bare); v != "1.2.0" {
			t.Fatalf("current = %s, want 1.2.0", v)
		}
	})
	t.Run("status says what the device knows, and warns of expired metadata", func(t *testing.T) {
		later := bare
		later.Now = func() time.Time { return time.Now().Add(400 * 24 * time.Hour) }
		st, err := device.ReadStatus(ctx, later)
		if err != nil {
			t.Fatal(err)
		}
		if st.DeviceID != "cam-0001" || st.Channel != "stable" || st.Product != "demo-cam" || st.MetadataExpires.IsZero() || !hasWarning(st, "expired") {
			t.Fatalf("status = %+v", st)
		}
	})
}

// simBootloader is a bootloader that follows the boot contract on a GRUB
// environment block, as a grub.cfg or a U-Boot script would: every boot
// of a slot on trial counts, and past bootlimit it boots the fallback.
type simBootloader struct {
	t   *testing.T
	env device.GRUBEnvFile
}

// boot returns the slot it boots.
func (b simBootloader) boot() string {
	b.t.Helper()
	ctx := context.Background()
	env, err := b.env.Load(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	if env["upgrade_available"] == "1" {
		count, limit := atoi(env["bootcount"])+1, atoi(env["bootlimit"])
		set := map[string]string{"bootcount": itoa(count)}
		if count > limit {
			set = map[string]string{"afterlife_slot": env["afterlife_fallback"], "upgrade_available": "0", "bootcount": "0"}
		}
		if err := b.env.Set(ctx, set); err != nil {
			b.t.Fatal(err)
		}
		if env, err = b.env.Load(ctx); err != nil {
			b.t.Fatal(err)
		}
	}
	return env["afterlife_slot"]
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

func TestTheBootContractWithASimulatedBootloader(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// bootsBeforeClient is how many boots of the new slot fail before
		// the client runs (the slot hangs or panics); -1: never comes up.
		bootsBeforeClient int
		healthy           bool
		wantSlot          string
		wantOutcome       string
		wantReason        string
	}{
		{"a slot that boots and passes its health check is confirmed and stays", 0, true, "b", "success", ""},
		{"a slot that boots on the second try is still confirmed", 1, true, "b", "success", ""},
		{"a slot that boots but fails its health check falls back", 0, false, "a", "failure", "health check failed"},
		{"a slot that never boots is given up by the bootloader after bootlimit boots", -1, true, "a", "failure", "did not boot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			cfg := deviceConfig(t, reg)
			envFile := filepath.Join(t.TempDir(), "grubenv")
			cfg.Boot = device.BootSettings{Kind: device.BootGRUBEnv, EnvFile: envFile}
			cfg.RebootCommand = "true" // the test plays the reboot
			initDevice(t, reg, cfg)
			boot := simBootloader{t: t, env: device.GRUBEnvFile{Path: envFile}}
			bare := device.Config{StateDir: cfg.StateDir}
			for i, v := range []string{"1.0.0", "2.0.0"} {
				if _, err := reg.publish(v, firmware(v), false, ""); err != nil {
					t.Fatal(err)
				}
				res, err := device.Update(ctx, bare, "")
				if err != nil || !res.Pending {
					t.Fatalf("update to %s: %+v %v, want it pending a reboot", v, res, err)
				}
				if i == 0 {
					// The first install has nothing to fall back to.
					if slot := boot.boot(); slot != "a" {
						t.Fatalf("booted %s", slot)
					}
					if res, err := device.Update(ctx, bare, ""); err != nil || res.Updated {
						t.Fatalf("first start after the first install: %+v %v", res, err)
					}
				}
			}
			// The device reboots into slot b, on trial.
			fails := tc.bootsBeforeClient
			if fails < 0 {
				fails = 3 // bootlimit 3: the fourth boot falls back
			}
			for range fails {
				if slot := boot.boot(); slot != "b" {
					t.Fatalf("a failed boot booted %s, want b while on trial", slot)
				}
			}
			slot := boot.boot()
			if tc.bootsBeforeClient < 0 && slot != "a" {
				t.Fatalf("after bootlimit failed boots the bootloader booted %s, want a", slot)
			}
			check := bare
			check.HealthCheck = func(context.Context) error {
				if !tc.healthy {
					return errors.New("the camera stream does not start")
				}
				return nil
			}
			// The client starts on the booted slot and settles the install.
			_, err := device.Update(ctx, check, "")
			if tc.wantOutcome == "success" && err != nil {
				t.Fatalf("start after the reboot: %v", err)
			}
			if tc.wantOutcome == "failure" && (err == nil || !strings.Contains(err.Error(), tc.wantReason)) {
				t.Fatalf("start after the reboot: %v, want a rollback because %s", err, tc.wantReason)
			}
			for range 5 {
				if got := boot.boot(); got != tc.wantSlot {
					t.Fatalf("after the trial the bootloader boots %s, want %s", got, tc.wantSlot)
				}
			}
			if link, _ := os.Readlink(filepath.Join(cfg.InstallDir, "current")); link != tc.wantSlot {
				t.Fatalf("current -> %s, want %s", link, tc.wantSlot)
			}
			reps := reg.gotReports()
			last := reps[len(reps)-1]
			if last.Version != "2.0.0" || last.Outcome != tc.wantOutcome || !strings.Contains(last.Reason, tc.wantReason) || last.Receipt == "" {
				t.Fatalf("last report = %+v, want %s for 2.0.0 with a receipt", last, tc.wantOutcome)
			}
		})
	}
}

func TestRunKeepsTheDeviceUpdated(t *testing.T) {
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- device.Run(ctx, device.Config{StateDir: cfg.StateDir}, device.RunOptions{Interval: 20 * time.Millisecond})
	}()
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		if _, err := reg.publish(v, firmware(v), false, ""); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, func() error {
			if got, _ := device.Current(cfg); got != v {
				return errors.New("running " + got + ", want " + v)
			}
			return nil
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestTheWaitBetweenChecks(t *testing.T) {
	o := device.RunOptions{Interval: time.Hour, Jitter: 6 * time.Minute, RetryMin: 30 * time.Second, RetryMax: time.Hour}
	for _, tc := range []struct {
		name       string
		failures   int
		retryAfter time.Duration
		r          float64
		want       time.Duration
	}{
		{"after a good check the interval, at its lowest jitter", 0, 0, 0, 54 * time.Minute},
		{"after a good check the interval, at its middle", 0, 0, 0.5, time.Hour},
		{"after one failure half to all of the first backoff", 1, 0, 0, 15 * time.Second},
		{"after three failures the backoff has doubled twice", 3, 0, 0.999999, 2 * time.Minute},
		{"the backoff stops growing at its maximum", 40, 0, 0.5, 45 * time.Minute},
		{"Retry-After longer than the backoff wins", 1, 10 * time.Minute, 0.5, 10 * time.Minute},
		{"Retry-After shorter than the interval changes nothing", 0, time.Minute, 0.5, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := device.NextWait(o, tc.failures, tc.retryAfter, tc.r)
			if d := got - tc.want; d > time.Millisecond || d < -time.Millisecond {
				t.Fatalf("wait = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOneProcessAtATimeChangesTheDevice(t *testing.T) {
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	started := make(chan struct{})
	first := cfg
	first.HealthCheck = func(context.Context) error { close(started); <-release; return nil }
	done := make(chan error, 1)
	go func() {
		_, err := device.Update(context.Background(), first, "")
		done <- err
	}()
	<-started
	if _, err := device.Update(context.Background(), device.Config{StateDir: cfg.StateDir}, ""); !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "another afterlife-device process") {
		t.Fatalf("a second update while the first checks its slot: %v, want a conflict", err)
	}
	if err := device.Rollback(context.Background(), device.Config{StateDir: cfg.StateDir}); !errs.Is(err, errs.Conflict) {
		t.Fatalf("a rollback while an update runs: %v, want a conflict", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the first update: %v", err)
	}
	if res, err := device.Update(context.Background(), device.Config{StateDir: cfg.StateDir}, ""); err != nil || res.Updated {
		t.Fatalf("an update after the first one ended: %+v %v", res, err)
	}
}
