package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/examples"
	"github.com/afterlife-oss/afterlife/web/browsertest"
)

// builderCache keeps the local builders' Go caches between test runs, so
// only the first run cross-compiles the standard library for ARM.
func builderCache(t *testing.T) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "afterlife", "builder-cache")
}

// afterlife runs the real binary and returns its standard output.
func afterlife(t *testing.T, wantOK bool, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if (err == nil) != wantOK {
		t.Fatalf("afterlife %s: err=%v, want success=%v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantOK, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func apiJSON(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// waitForDemo waits until the demo's release is published.
func waitForDemo(t *testing.T, srv *testenv.Server) {
	t.Helper()
	testenv.Eventually(t, 12*time.Minute, func() error {
		_, err := os.Stat(filepath.Join(srv.Data, "demo.done"))
		if err == nil {
			return nil
		}
		if srv.Exited() || strings.Contains(srv.LogTail(), "demo seeding failed") {
			return testenv.GiveUp(fmt.Errorf("the demo did not finish\n%s", srv.LogTail()))
		}
		return fmt.Errorf("the demo is not done (%v)\n%s", err, srv.LogTail())
	})
}

type release struct {
	ID           string `json:"id"`
	InstallNotes string `json:"install_notes"`
	BuildID      string `json:"build_id"`
	Version      string `json:"version"`
	Agreeing     int    `json:"agreeing"`
	Artifacts    []struct {
		Name, Kind, Digest string
	} `json:"artifacts"`
}

func TestDemoStoryEndToEnd(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--demo", "--allow-local-repos", "--builder-cache", builderCache(t))
			srv := testenv.Serve(t, opts)
			waitForDemo(t, srv)

			var rels []release
			var list struct {
				Releases []release `json:"releases"`
			}
			apiJSON(t, "GET", srv.URL+"/v1/releases?product=demo-cam", "", nil, &list)
			rels = list.Releases
			if len(rels) != 1 || rels[0].Version != "1.0.0" || rels[0].Agreeing < 2 {
				t.Fatalf("releases of demo-cam: %+v; want one 1.0.0 that 2 builders agree on", rels)
			}
			if !strings.Contains(rels[0].InstallNotes, "SD card") {
				t.Errorf("the release does not carry the recipe's install notes: %q", rels[0].InstallNotes)
			}
			var firmware string
			for _, a := range rels[0].Artifacts {
				if a.Kind == "firmware" {
					firmware = a.Digest
				}
			}

			state, install := t.TempDir(), filepath.Join(t.TempDir(), "device")
			// The device holds only the demo vendor's key, generated into
			// the data directory: it trusts the root the vendor handed over.
			out, _ := afterlife(t, true, "device", "init", "--registry", srv.URL, "--state", state, "--product", "demo-cam", "--id", "demo:afterlife-cam",
				"--vendor-key", filepath.Join(srv.Data, "demo", "vendor-key.pub.pem"))
			if !strings.Contains(out, "handed over by vendor key") {
				t.Fatalf("device init --vendor-key said %q", out)
			}
			if page := string(get(t, srv.URL+"/products/demo-cam")); !strings.Contains(page, "Signing authority handed over by vendor key <code>sha256:") || !strings.Contains(page, ">log entry ") {
				t.Errorf("the demo product page does not show the handover line with its log entry")
			}
			_, stderr := afterlife(t, false, "device", "update", "--registry", srv.URL, "--state", state,
				"--id", "demo:afterlife-cam", "--current", "0", "--install-to", install)
			if !strings.Contains(stderr, "opt-in") {
				t.Fatalf("an update without the opt-in was not refused for that reason: %s", stderr)
			}
			out, _ = afterlife(t, true, "device", "update", "--registry", srv.URL, "--state", state,
				"--id", "demo:afterlife-cam", "--current", "0", "--install-to", install, "--accept-community-firmware")
			if !strings.Contains(out, "installed demo-cam 1.0.0") {
				t.Fatalf("device update said %q", out)
			}
			got := sha256File(t, filepath.Join(install, "current", "afterlife-cam.tar.gz"))
			if "sha256:"+got != firmware {
				t.Fatalf("installed firmware has sha256 %s, the release says %s", got, firmware)
			}
			out, _ = afterlife(t, true, "device", "update", "--registry", srv.URL, "--state", state,
				"--id", "demo:afterlife-cam", "--current", "1.0.0", "--install-to", install)
			if !strings.Contains(out, "up to date") {
				t.Fatalf("second update said %q, want up to date", out)
			}

			t.Run("the release CLI lists the release and refuses to publish its version twice", func(t *testing.T) {
				out, _ := afterlife(t, true, "release", "list", "--product", "demo-cam", "--server", srv.URL)
				if !strings.Contains(out, rels[0].ID) || !strings.Contains(out, "stable") {
					t.Fatalf("release list:\n%s", out)
				}
				_, stderr := afterlife(t, false, "release", "publish", "--build", rels[0].BuildID, "--product", "demo-cam",
					"--version", "1.0.0", "--server", srv.URL, "--token", srv.Token)
				if !strings.Contains(stderr, "already has a release") {
					t.Fatalf("a second publish of 1.0.0 said %q", stderr)
				}
			})

			t.Run("operations metrics are exported", func(t *testing.T) {
				resp, err := http.Get(srv.URL + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, m := range []string{
					"afterlife_farm_queue_depth", `afterlife_farm_verdicts_total{verdict="reproducible"}`, "afterlife_farm_lease_expiries_total",
					"afterlife_scrub_failures_total", "afterlife_registry_update_checks_total", "afterlife_registry_downloads_total",
				} {
					if !strings.Contains(string(body), m) {
						t.Errorf("/metrics has no %s", m)
					}
				}
			})

			if name == "sqlite and disk" {
				t.Run("a backup restored into an empty dir serves the same release", func(t *testing.T) {
					backup := filepath.Join(t.TempDir(), "backup")
					afterlife(t, true, "admin", "backup", "--data", srv.Data, backup)
					restored := filepath.Join(t.TempDir(), "restored")
					afterlife(t, true, "admin", "restore", "--data", restored, backup)
					srv2 := testenv.Serve(t, testenv.ServeOptions{Data: restored, Args: []string{"--local-builders", "0"}})
					var again struct {
						Releases []release `json:"releases"`
					}
					apiJSON(t, "GET", srv2.URL+"/v1/releases?product=demo-cam", "", nil, &again)
					if len(again.Releases) != 1 || again.Releases[0].ID != rels[0].ID {
						t.Fatalf("restored releases %+v, want %s", again.Releases, rels[0].ID)
					}
					fresh := filepath.Join(t.TempDir(), "device")
					out, _ := afterlife(t, true, "device", "update", "--registry", srv2.URL, "--state", state,
						"--id", "demo:afterlife-cam", "--current", "0", "--install-to", fresh, "--accept-community-firmware")
					if !strings.Contains(out, "installed demo-cam 1.0.0") {
						t.Fatalf("a device trusting the original root could not update from the restored server: %q", out)
					}
				})
			}

			t.Run("a vendor cannot squat the demo's device id", func(t *testing.T) { testDeviceIDSquatting(t, srv, state) })
			t.Run("forged install reports cannot pull firmware back", func(t *testing.T) { testForgedReports(t, srv, rels[0]) })

			t.Run("a device holding the old root still updates after key rotation", func(t *testing.T) {
				for _, role := range []string{"timestamp", "root"} {
					afterlife(t, true, "admin", "keys", "rotate", role, "--server", srv.URL, "--token", srv.Token)
				}
				fresh := filepath.Join(t.TempDir(), "device")
				out, _ := afterlife(t, true, "device", "update", "--registry", srv.URL, "--state", state,
					"--id", "demo:afterlife-cam", "--current", "0", "--install-to", fresh, "--accept-community-firmware")
				if !strings.Contains(out, "installed demo-cam 1.0.0") {
					t.Fatalf("update after rotation said %q", out)
				}
			})

			if name != "sqlite and disk" {
				return
			}
			t.Run("a tampered artifact in the blob store is refused by the device", func(t *testing.T) {
				hexd := strings.TrimPrefix(firmware, "sha256:")
				path := filepath.Join(srv.Data, "blobs", "sha256", hexd[:2], hexd)
				orig, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				bad := bytes.Clone(orig)
				bad[len(bad)/2] ^= 0xff
				os.WriteFile(path, bad, 0o644)
				defer os.WriteFile(path, orig, 0o644)
				fresh := filepath.Join(t.TempDir(), "device")
				_, stderr := afterlife(t, false, "device", "update", "--registry", srv.URL, "--state", state,
					"--id", "demo:afterlife-cam", "--current", "0", "--install-to", fresh, "--accept-community-firmware")
				if _, err := os.Lstat(filepath.Join(fresh, "current")); err == nil {
					t.Fatalf("a tampered artifact was installed (%s)", stderr)
				}
				if !strings.Contains(strings.ToLower(stderr), "sha256") && !strings.Contains(strings.ToLower(stderr), "hash") {
					t.Fatalf("the refusal does not say the digest is wrong: %s", stderr)
				}
			})

			t.Run("owners, vendors and maintainers use the web in a real browser", func(t *testing.T) {
				testWebJourneys(t, srv)
			})
		})
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func testWebJourneys(t *testing.T, srv *testenv.Server) {
	afterlife(t, true, "admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor", "--server", srv.URL, "--token", srv.Token)
	vendor, _ := afterlife(t, true, "admin", "token", "create", "--name", "acme-web", "--role", "vendor", "--org", "acme", "--server", srv.URL, "--token", srv.Token)
	maint, _ := afterlife(t, true, "admin", "token", "create", "--name", "maintainer-web", "--role", "maintainer", "--server", srv.URL, "--token", srv.Token)

	b := browsertest.Start(t)
	browsertest.OwnerDownloads(t, b, srv.URL, "AfterLife", "AfterLife Cam 1")
	browsertest.VendorDeposits(t, b, srv.URL, strings.TrimSpace(vendor), "Thermo 9", map[string][]byte{
		"datasheet.pdf": []byte("%PDF-1.4 thermo datasheet"), "main.c": []byte("int main(void) { return 0; }\n"),
	})
	browsertest.Logout(t, b)

	repo := filepath.Join(t.TempDir(), "unreproducible.git")
	src, err := examples.Dir("unreproducible")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recipes.CommitTree(context.Background(), repo, src, "unreproducible example", time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	_, verdict := browsertest.MaintainerBuilds(t, b, srv.URL, strings.TrimSpace(maint), "file://"+repo, "HEAD", "", 3*time.Minute)
	if !strings.Contains(strings.ToLower(verdict), "unreproducible") && !strings.Contains(strings.ToLower(verdict), "not reproducible") {
		t.Fatalf("the unreproducible recipe's verdict reads %q", verdict)
	}
}
