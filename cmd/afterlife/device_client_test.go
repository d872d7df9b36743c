package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// deviceBinary builds the small device client once per test.
func deviceBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "afterlife-device")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/afterlife-oss/afterlife/cmd/afterlife-device").CombinedOutput(); err != nil {
		t.Fatalf("build afterlife-device: %v\n%s", err, out)
	}
	return bin
}

// TestTheDeviceClientKeepsUpdatingARealServer is a device owner's story on
// the small client against a real `afterlife serve` on each database:
// init once, then three updates with no flags at all (the state directory
// comes from AFTERLIFE_DEVICE_STATE, as the systemd unit's would), then a
// release whose health check fails is rolled back and its failure shows in
// the release's report counts on the server.
func TestTheDeviceClientKeepsUpdatingARealServer(t *testing.T) {
	bin := deviceBinary(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			args := []string{"--allow-local-repos"}
			if backend == "postgres" {
				args = append(args, "--database", testenv.Postgres(t))
			}
			srv := testenv.Serve(t, testenv.ServeOptions{Args: args})
			admin := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor"}, admin...)...)
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam 2", "--device-ids", "usb:acme:cam"}, admin...)...)
			buildID := submitRecipe(t, admin, spoofRecipe, "acme-fw 1.0.0")
			waitReproducible(t, srv, buildID, 3*time.Minute)
			publish := func(v string) string {
				var rel struct {
					ID string `json:"id"`
				}
				req := map[string]string{"build_id": buildID, "product": "acme-cam", "version": v, "channel": "stable"}
				if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, req, &rel); code != http.StatusCreated {
					t.Fatalf("publish %s: %d", v, code)
				}
				return rel.ID
			}

			state := filepath.Join(t.TempDir(), "state")
			device := func(t *testing.T, wantOK bool, args ...string) (string, string) {
				t.Helper()
				cmd := exec.Command(bin, args...)
				cmd.Env = append(os.Environ(), "AFTERLIFE_DEVICE_STATE="+state, "AFTERLIFE_REGISTRY=")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				if (err == nil) != wantOK {
					t.Fatalf("afterlife-device %s: %v, want success=%v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantOK, stdout.String(), stderr.String())
				}
				return stdout.String(), stderr.String()
			}
			device(t, true, "init", "--registry", srv.URL, "--id", "usb:acme:cam", "--accept-community-firmware", "--trust-on-first-use")
			for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
				publish(v)
				out, stderr := device(t, true, "update")
				if want := fmt.Sprintf("installed acme-cam %s", v); !strings.Contains(out, want) || !strings.Contains(out, "confirmed") {
					t.Fatalf("update %d said %q, want %q\n%s", i+1, out, want, stderr)
				}
			}
			if out, _ := device(t, true, "update"); !strings.Contains(out, "up to date (version 1.2.0)") {
				t.Fatalf("a fourth update said %q", out)
			}

			failing := publish("1.3.0")
			_, stderr := device(t, false, "update", "--health-check", "echo no video >&2; exit 1")
			if !strings.Contains(stderr, "health check failed") || !strings.Contains(stderr, "rolled back to slot") {
				t.Fatalf("the failing update said %q", stderr)
			}
			var stats struct {
				Success     int `json:"success"`
				Failure     int `json:"failure"`
				TopFailures []struct {
					Reason string `json:"reason"`
				} `json:"top_failures"`
			}
			if code := apiJSON(t, "GET", srv.URL+"/v1/releases/"+failing+"/reports", "", nil, &stats); code != http.StatusOK ||
				stats.Failure != 1 || stats.Success != 0 || len(stats.TopFailures) != 1 || !strings.Contains(stats.TopFailures[0].Reason, "no video") {
				t.Fatalf("reports of 1.3.0 = %d %+v, want one failure with the health check's reason", code, stats)
			}
			out, _ := device(t, true, "status")
			for _, want := range []string{"product       acme-cam", "1.2.0", "← active", "rolled back"} {
				if !strings.Contains(out, want) {
					t.Errorf("status lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
