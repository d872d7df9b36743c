package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/registry/device/cli"
)

// deviceCLI runs the device client's command line (what afterlife-device
// runs) in this process, with the state directory from
// AFTERLIFE_DEVICE_STATE, so the arguments are all the owner types.
func deviceCLI(t *testing.T, wantOK bool, args ...string) (string, string) {
	t.Helper()
	cmd := cli.Command()
	var out, errw bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errw)
	err := cmd.ExecuteContext(context.Background())
	if (err == nil) != wantOK {
		t.Fatalf("device %s: err = %v, want ok=%v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantOK, out.String(), errw.String())
	}
	if err != nil {
		errw.WriteString(err.Error())
	}
	return out.String(), errw.String()
}

func TestADeviceKeepsUpdatingWithoutRepeatedFlags(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{reportsPerHour: 100})
		state := t.TempDir()
		t.Setenv("AFTERLIFE_DEVICE_STATE", state)
		t.Setenv("AFTERLIFE_REGISTRY", "")
		rootFile := filepath.Join(t.TempDir(), "root.json")
		_, root := e.do("GET", "/tuf/1.root.json", "", nil)
		if err := os.WriteFile(rootFile, root, 0o644); err != nil {
			t.Fatal(err)
		}
		publish := func(v string) Release {
			b, _ := e.firmware(v)
			return e.publish(PublishRequest{BuildID: b, Version: v, Channel: Stable, Notes: "open firmware " + v})
		}
		deviceCLI(t, true, "init", "--registry", e.srv.URL, "--root", rootFile, "--id", "usb:1d6b:0104", "--accept-community-firmware")

		for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
			t.Run("update to "+v+" with no flags", func(t *testing.T) {
				rel := publish(v)
				out, _ := deviceCLI(t, true, "update")
				if !strings.Contains(out, "installed demo-cam "+v) || !strings.Contains(out, "confirmed") {
					t.Fatalf("update said %q", out)
				}
				if st, err := e.svc.Stats(context.Background(), rel.ID); err != nil || st.Success != 1 {
					t.Fatalf("report stats of %s = %+v %v, want one success", v, st, err)
				}
			})
		}
		t.Run("an update with nothing new says so", func(t *testing.T) {
			if out, _ := deviceCLI(t, true, "update"); !strings.Contains(out, "up to date (version 1.2.0)") {
				t.Fatalf("update said %q", out)
			}
		})
		t.Run("a failing health check rolls back and counts in the product's report rate", func(t *testing.T) {
			rel := publish("1.3.0")
			_, stderr := deviceCLI(t, false, "update", "--health-check", "echo camera stream missing >&2; exit 3")
			if !strings.Contains(stderr, "health check failed") || !strings.Contains(stderr, "rolled back to slot") {
				t.Fatalf("update said %q", stderr)
			}
			_, body := e.do("GET", "/v1/products/demo-cam/overview", "", nil)
			var ov Overview
			if err := json.Unmarshal(body, &ov); err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, r := range ov.Releases {
				if r.ID != rel.ID {
					continue
				}
				found = true
				if r.Reports.Failure != 1 || r.Reports.Success != 0 || len(r.Reports.TopFailures) != 1 ||
					!strings.Contains(r.Reports.TopFailures[0].Reason, "camera stream missing") {
					t.Fatalf("reports of 1.3.0 on the product overview = %+v, want one failure with the health check's reason", r.Reports)
				}
			}
			if !found {
				t.Fatalf("1.3.0 is not on the overview: %s", body)
			}
		})
		t.Run("the release that failed here is not installed again", func(t *testing.T) {
			if out, _ := deviceCLI(t, true, "update"); !strings.Contains(out, "failed on this device before") {
				t.Fatalf("update said %q", out)
			}
		})
		t.Run("status shows the slots, the rollback and the last check; --json for scripts", func(t *testing.T) {
			out, _ := deviceCLI(t, true, "status")
			for _, want := range []string{"product       demo-cam", "channel       stable", "1.2.0", "1.3.0", "← active", "root          version 1",
				"failed on this device", "warning: the install of 1.3.0 was rolled back"} {
				if !strings.Contains(out, want) {
					t.Errorf("status lacks %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat(filepath.Join(state, "slots", "current")); err != nil {
				t.Errorf("the slots are not in the state directory: %v", err)
			}
			out, _ = deviceCLI(t, true, "status", "--json")
			var st struct {
				Product    string `json:"product"`
				ActiveSlot string `json:"active_slot"`
				Slots      []struct {
					Slot, Version string
				} `json:"slots"`
				Warnings []string `json:"warnings"`
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			active := ""
			for _, s := range st.Slots {
				if s.Slot == st.ActiveSlot {
					active = s.Version
				}
			}
			if st.Product != "demo-cam" || active != "1.2.0" || len(st.Warnings) == 0 {
				t.Fatalf("status --json = %+v", st)
			}
		})
	})
}
