package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// mirrorRecipe builds a firmware image big enough (300 kB) to cut a
// download in the middle of it.
const mirrorRecipe = `name: acme-fw
version: 1.0.0
products: [acme-cam]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - yes "acme open firmware" | head -c 300000 > /out/firmware.bin
outputs:
  - {path: firmware.bin, kind: firmware}
limits: {timeout: 1m, memory: 256MiB}
`

// TestAMirrorServedByNginxUpdatesADeviceAndVerifiesOffline is issue 18's
// mirror story on a real `afterlife serve` with a reproducible release
// (built by its two local builders), an fwupd cabinet and a released
// deposit with a file of each rights class: `afterlife mirror pull` copies
// it, `mirror verify` checks the copy offline from the origin's first
// root, nothing build-only or private is in it, a real nginx serves the
// copy as a static site and the small device client installs the release
// from it, owners browse its pages; one changed byte in any kind of file
// makes verify fail and name it; and a pull cut off in the middle of the
// firmware leaves a .part file and no timestamp.json, and the next pull
// resumes it with Range.
func TestAMirrorServedByNginxUpdatesADeviceAndVerifiesOffline(t *testing.T) {
	bin := deviceBinary(t)
	// The log's policy is in the TUF root: devices check the log, and on
	// the mirror they prove entries from its tiles.
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--allow-local-repos", "--fwupd-every", "1s", "--translog-in-root", "--translog-every", "200ms"}})
	admin := []string{"--server", srv.URL, "--token", srv.Token}
	afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor"}, admin...)...)
	afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam 2", "--device-ids", "usb:acme:cam",
		"--fwupd-ids", "USB\\VID_1D6B&PID_0104"}, admin...)...)
	buildID := submitRecipe(t, admin, mirrorRecipe, "acme-fw 1.0.0")
	waitReproducible(t, srv, buildID, 3*time.Minute)
	req := map[string]string{"build_id": buildID, "product": "acme-cam", "version": "1.0.0", "channel": "stable"}
	if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, req, nil); code != http.StatusCreated {
		t.Fatalf("publish: %d", code)
	}

	// A released deposit with a file of each rights class: only the public
	// one may reach a mirror.
	const buildOnly, private = "BUILD-ONLY-DRIVER-BYTES-7d1f", "PRIVATE-SIGNING-KEY-BYTES-94ac"
	sunset := t.TempDir()
	for name, content := range map[string]string{"docs/pinout.md": "# pinout\n\n1 VCC\n2 GND\n3 TX\n4 RX\n", "drivers/wifi.bin": buildOnly, "keys/signing.key": private} {
		if err := os.MkdirAll(filepath.Join(sunset, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sunset, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dep := exec.Command(testenv.Binary(t), "vendor", "deposit", "--server", srv.URL, "--token", srv.Token, "--product", "acme-cam", "--policy", "immediate",
		"--rights", "docs/**=public", "--rights", "drivers/**=build-only", "--rights", "keys/**=private", ".")
	dep.Dir = sunset
	if b, err := dep.CombinedOutput(); err != nil {
		t.Fatalf("vendor deposit: %v\n%s", err, b)
	}
	waitForLoggedRelease(t, srv.URL, "acme-cam")
	testenv.Eventually(t, time.Minute, func() error {
		if body := mirrorGet(t, srv.URL+"/fwupd/firmware.xml.zst"); len(body) < 200 {
			return fmt.Errorf("the fwupd metadata names no cabinet yet (%d bytes)", len(body))
		}
		return nil
	})
	// Both local builders witness the log; once the root names both, it
	// stays as it is.
	testenv.Eventually(t, time.Minute, func() error {
		if n := strings.Count(mirrorGet(t, srv.URL+"/tuf/root.json"), `"verifier_key"`); n < 2 {
			return fmt.Errorf("the root's log policy names %d witnesses, want 2", n)
		}
		return nil
	})
	root := filepath.Join(t.TempDir(), "1.root.json")
	if err := os.WriteFile(root, []byte(mirrorGet(t, srv.URL+"/tuf/1.root.json")), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "mirror")
	afterlife(t, true, "mirror", "pull", "--from", srv.URL, dir)
	out, _ := afterlife(t, true, "mirror", "verify", dir, "--root", root)
	for _, want := range []string{"(fresh)", "2 attestations", "1 deposits (1 public files)", "2 support-period documents", "(policy from root)", "OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("mirror verify said %q, want %q in it", out, want)
		}
	}
	t.Run("nothing build-only or private is mirrored", func(t *testing.T) {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if bytes.Contains(b, []byte(buildOnly)) || bytes.Contains(b, []byte(private)) {
				t.Errorf("%s holds the content of a build-only or private file", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "api/deposits/*/files/docs/pinout.md")); len(m) != 1 {
			t.Errorf("the public file of the new deposit is not mirrored: %v", m)
		}
	})
	t.Run("a second pull downloads only what changed", func(t *testing.T) {
		out, _ := afterlife(t, true, "mirror", "pull", "--from", srv.URL, dir)
		var files, kept int
		if _, err := fmt.Sscanf(out, "pulled %d files (%d already present)", &files, &kept); err != nil || kept < 260 || files > 20 {
			t.Errorf("the second pull said %q: want every immutable file kept", out)
		}
	})

	site := testenv.ServeStatic(t, dir)
	t.Run("a pull told where the mirror is served points the fwupd remote at the mirror", func(t *testing.T) {
		if conf := string(readFile(t, filepath.Join(dir, "fwupd", "afterlife.conf"))); !strings.Contains(conf, "\nMetadataURI="+srv.URL+"/fwupd/firmware.xml.zst\n") {
			t.Fatalf("a pull without --public-url keeps the origin's .conf, got:\n%s", conf)
		}
		afterlife(t, true, "mirror", "pull", "--from", srv.URL, "--public-url", site.URL, dir)
		conf := string(mirrorGet(t, site.URL+"/fwupd/afterlife.conf"))
		for _, want := range []string{"\nMetadataURI=" + site.URL + "/fwupd/firmware.xml.zst\n", "\nFirmwareBaseURI=" + site.URL + "/fwupd/cabs\n", "\nEnabled=false\n", `branch "community"`} {
			if !strings.Contains(conf, want) {
				t.Fatalf("the mirror's .conf lacks %q:\n%s", want, conf)
			}
		}
		if out, _ := afterlife(t, true, "mirror", "verify", dir, "--root", root); !strings.Contains(out, "OK") {
			t.Fatalf("verify after the pull with --public-url said %q", out)
		}
	})
	state := t.TempDir() // the device's, kept for the last subtest
	device := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--state", state)...)
		cmd.Env = append(os.Environ(), "AFTERLIFE_REGISTRY=")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("afterlife-device %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	t.Run("the device client installs the release from nginx serving the mirror", func(t *testing.T) {
		device := func(args ...string) string { return device(t, args...) }
		device("init", "--registry", site.URL, "--root", root, "--id", "usb:acme:cam", "--product", "acme-cam", "--accept-community-firmware")
		// The root carries the log's policy: the device proves the
		// release's signed entry from the mirror's tiles and checkpoint.
		if out := device("update", "--verbose"); !strings.Contains(out, "installed acme-cam 1.0.0") || !strings.Contains(out, "proved from its tiles") ||
			!strings.Contains(out, "release is in the transparency log") {
			t.Fatalf("update from the mirror said %q", out)
		}
		if out := device("update"); !strings.Contains(out, "up to date (version 1.0.0)") {
			t.Fatalf("a second update from the mirror said %q", out)
		}
	})
	t.Run("a device that checks the log refuses a mirror with a changed tile", func(t *testing.T) {
		for _, tc := range []struct{ file, says string }{
			{"log/tile/0/", "do not prove the signed entry"},
			{"log/tile/entries/", "do not prove the signed entry"},
		} {
			bad := filepath.Join(t.TempDir(), "mirror")
			if err := os.CopyFS(bad, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			var m []string
			_ = filepath.WalkDir(filepath.Join(bad, tc.file), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					m = append(m, p)
				}
				return err
			})
			if len(m) != 1 {
				t.Fatalf("want one file under %s in the mirror, found %v", tc.file, m)
			}
			b := readFile(t, m[0])
			at := len(b) / 2
			if i := bytes.LastIndex(b, []byte("release.published")); strings.Contains(tc.file, "entries") && i >= 0 {
				at = i + 3 // in the release's own publication entry
			}
			b[at] ^= 0x01
			writeFile(t, m[0], b)
			badSite := testenv.ServeStatic(t, bad)
			state := t.TempDir()
			cmd := exec.Command(bin, "init", "--state", state, "--registry", badSite.URL, "--root", root, "--id", "usb:acme:cam", "--product", "acme-cam", "--accept-community-firmware")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("init: %v\n%s", err, out)
			}
			out, err := exec.Command(bin, "update", "--state", state).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.says) || strings.Contains(string(out), "installed acme-cam") {
				t.Fatalf("update from a mirror with a byte of %s changed: %v, want a refusal that says %q:\n%s", tc.file, err, tc.says, out)
			}
		}
	})
	t.Run("support-period documents are served where the origin's API serves them", func(t *testing.T) {
		for _, f := range []string{"openeox.json", "cle.json"} {
			if got, want := mirrorGet(t, site.URL+"/api/products/acme-cam/lifecycle/"+f), mirrorGet(t, srv.URL+"/v1/products/acme-cam/lifecycle/"+f); got != want {
				t.Errorf("the mirror's %s differs from the origin's:\n%s\n%s", f, got, want)
			}
		}
		if body := mirrorGet(t, site.URL+"/api/lifecycle.json"); !strings.Contains(body, "acme-cam/lifecycle/openeox.json") {
			t.Errorf("the mirrored catalogue lacks the product's documents: %s", body)
		}
	})
	t.Run("owners browse the mirrored pages", func(t *testing.T) {
		for path, want := range map[string]string{"/": "acme-cam", "/products/acme-cam": "1.0.0", "/feeds/releases.atom": "<feed", "/log/checkpoint": "/log\n"} {
			if body := mirrorGet(t, site.URL+path); !strings.Contains(body, want) {
				t.Errorf("GET %s on the mirror lacks %q", path, want)
			}
		}
	})

	t.Run("one changed byte makes verify fail and name the file", func(t *testing.T) {
		first := func(patterns ...string) string {
			for _, pattern := range patterns {
				m, _ := filepath.Glob(filepath.Join(dir, pattern))
				for _, f := range m {
					if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
						rel, _ := filepath.Rel(dir, f)
						return filepath.ToSlash(rel)
					}
				}
			}
			t.Fatalf("no file %s in the mirror", patterns)
			return ""
		}
		for _, tc := range []struct{ name, file string }{
			{"a target", first("tuf/targets/acme-cam/1.0.0/*.firmware.bin")},
			{"a metadata file", first("tuf/*.snapshot.json")},
			{"an attestation", first("api/builds/*/jobs/*/attestation.dsse.json")},
			{"a deposit file", first("api/deposits/*/files/docs/pinout.md")},
			{"an fwupd cabinet", first("fwupd/cabs/*")},
			{"a tile", first("log/tile/0/*", "log/tile/0/*/*")},
			{"the fwupd metadata", "fwupd/firmware.xml.zst"},
			{"a support-period document", "api/products/acme-cam/lifecycle/openeox.json"},
			{"a signed support-period target", first("tuf/targets/acme-cam/lifecycle/*.cle.json")},
			{"the support-period catalogue", "api/lifecycle.json"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bad := filepath.Join(t.TempDir(), "mirror")
				if err := os.CopyFS(bad, os.DirFS(dir)); err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(bad, filepath.FromSlash(tc.file))
				b, err := os.ReadFile(p)
				if err != nil || len(b) < 20 {
					t.Fatalf("read %s: %v (%d bytes)", tc.file, err, len(b))
				}
				at := len(b) / 2
				if tc.file == "api/lifecycle.json" {
					// The catalogue is not signed: what verify holds it to
					// is the digest of each document it lists.
					at = bytes.Index(b, []byte(`"sha256":"`)) + len(`"sha256":"`) + 5
				}
				b[at] ^= 0x01
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				out, _ := afterlife(t, false, "mirror", "verify", bad, "--root", root)
				if !strings.Contains(out, "FAIL "+tc.file) {
					t.Errorf("verify of a mirror with a byte of %s changed does not name it:\n%s", tc.file, out)
				}
			})
		}
	})

	t.Run("an interrupted pull resumes with Range and points at nothing it lacks", func(t *testing.T) {
		origin, _ := url.Parse(srv.URL)
		var mu sync.Mutex
		cut := true
		var ranges []string
		proxy := httputil.NewSingleHostReverseProxy(origin)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, ".firmware.bin") {
				proxy.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			cutNow := cut
			cut = false
			if rg := r.Header.Get("Range"); rg != "" {
				ranges = append(ranges, rg)
			}
			mu.Unlock()
			if !cutNow {
				proxy.ServeHTTP(w, r)
				return
			}
			// The first download of the firmware stops after 64 KiB.
			resp, err := http.Get(srv.URL + r.URL.Path)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
			w.WriteHeader(http.StatusOK)
			io.CopyN(w, resp.Body, 64<<10)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}))
		defer front.Close()
		fresh := filepath.Join(t.TempDir(), "mirror")
		afterlife(t, false, "mirror", "pull", "--from", front.URL, "--parallel", "1", fresh)
		parts, _ := filepath.Glob(filepath.Join(fresh, "tuf/targets/acme-cam/1.0.0/*.firmware.bin.part"))
		if len(parts) != 1 {
			t.Fatalf("the cut pull left %v, want one .part of the firmware", parts)
		}
		if st, err := os.Stat(parts[0]); err != nil || st.Size() != 64<<10 {
			t.Fatalf("the .part holds %v bytes (%v), want 65536", st, err)
		}
		for _, f := range []string{"tuf/timestamp.json", "tuf/root.json", "log/checkpoint"} {
			if _, err := os.Stat(filepath.Join(fresh, f)); err == nil {
				t.Errorf("the cut pull wrote %s, which points at files it lacks", f)
			}
		}
		afterlife(t, true, "mirror", "pull", "--from", front.URL, fresh)
		mu.Lock()
		defer mu.Unlock()
		if len(ranges) != 1 || ranges[0] != "bytes=65536-" {
			t.Errorf("the second pull asked for the firmware with Range %q, want bytes=65536-", ranges)
		}
		if out, _ := afterlife(t, true, "mirror", "verify", fresh, "--root", root); !strings.Contains(out, "OK") {
			t.Errorf("the resumed mirror does not verify:\n%s", out)
		}
	})

	t.Run("the next release proves from the refreshed mirror's tiles that the log extends what the device accepted", func(t *testing.T) {
		req := map[string]string{"build_id": buildID, "product": "acme-cam", "version": "1.1.0", "channel": "stable"}
		if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, req, nil); code != http.StatusCreated {
			t.Fatalf("publish 1.1.0: %d", code)
		}
		waitForLoggedRelease(t, srv.URL, "acme-cam")
		afterlife(t, true, "mirror", "pull", "--from", srv.URL, dir)
		out := device(t, "update", "--verbose")
		if !strings.Contains(out, "installed acme-cam 1.1.0") || !strings.Contains(out, "consistency proved from its tiles") {
			t.Fatalf("update from the refreshed mirror said %q", out)
		}
	})
}

// waitForLoggedRelease waits until the served, witnessed checkpoint covers
// the publication of the product's releases and their targets sign
// their entry.
func waitForLoggedRelease(t *testing.T, base, product string) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() error {
		var about []struct {
			Index int64  `json:"index"`
			Type  string `json:"type"`
		}
		apiJSON(t, "GET", base+"/v1/log/about/"+product, "", nil, &about)
		var info struct {
			Witnessed int64 `json:"witnessed_size"`
		}
		apiJSON(t, "GET", base+"/v1/log", "", nil, &info)
		// Once logged, a release's targets are signed again with their
		// entry: wait for that too, so the metadata stays as it is.
		var list struct {
			Releases []struct {
				Version  string `json:"version"`
				LogEntry *int64 `json:"log_entry"`
			} `json:"releases"`
		}
		apiJSON(t, "GET", base+"/v1/releases?product="+product, "", nil, &list)
		for _, r := range list.Releases {
			if r.LogEntry == nil {
				return fmt.Errorf("the targets of %s %s do not sign their log entry yet", product, r.Version)
			}
			if *r.LogEntry >= info.Witnessed {
				return fmt.Errorf("the witnessed checkpoint (size %d) does not cover entry %d of %s %s yet", info.Witnessed, *r.LogEntry, product, r.Version)
			}
		}
		for _, e := range about {
			if e.Type == "release.published" && e.Index < info.Witnessed {
				return nil
			}
		}
		return fmt.Errorf("the witnessed checkpoint (size %d) does not cover a release of %s yet: %+v", info.Witnessed, product, about)
	})
}

func mirrorGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}
