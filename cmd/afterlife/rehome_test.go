package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// rehomeRecipe is a firmware built on the origin (1.0.0) and, after the
// take-over, on the new registry (2.0.0).
const rehomeRecipe = `name: acme-fw
version: %s
products: [acme-cam]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - echo "acme open firmware %s" > /out/firmware.bin
outputs:
  - {path: firmware.bin, kind: firmware}
limits: {timeout: 1m, memory: 256MiB}
`

// TestARegistryIsCarriedOnFromItsMirrorByItsCustodians is re-homing for
// real: an origin whose root two of three custodians hold publishes a
// release, which a device that pinned the origin's first root installs;
// anyone pulls a mirror; the origin vanishes. On each backend a new
// registry refuses a mirror with one changed byte, then is seeded from the
// verified mirror before its first start: it proposes a root with online
// keys of its own, two custodians sign it on their machines, the import
// copies the TUF repository, targets, products and releases and publishes
// that root. The new server serves the old release under its id and the
// same 1.root.json; the device, still holding only what it pinned from the
// origin, walks to the custodians' new root on the new registry, and a
// release the new registry's own builders agreed on reaches it. A mirror of
// the new registry verifies from the origin's first root.
func TestARegistryIsCarriedOnFromItsMirrorByItsCustodians(t *testing.T) {
	bin := deviceBinary(t)
	base := t.TempDir()
	// Devices check the origin's log: its policy is in the root, with both
	// local builders as witnesses before the root goes to custodians.
	origin := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--allow-local-repos", "--translog-every", "200ms", "--translog-in-root"}})
	as := []string{"--server", origin.URL, "--token", origin.Token}
	afterlife(t, true, append([]string{"admin", "org", "create", "acme"}, as...)...)
	afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:acme:cam"}, as...)...)
	testenv.Eventually(t, time.Minute, func() error {
		if n := strings.Count(string(get(t, origin.URL+"/tuf/root.json")), `"verifier_key"`); n < 2 {
			return fmt.Errorf("the root's log policy names %d witnesses, want 2", n)
		}
		return nil
	})

	// The origin's root moves to 2 of 3 custodians, each on a machine (a
	// directory) of its own; the server's single root key signs the move.
	machine := map[string]string{}
	var pubs []string
	for _, c := range []string{"alice", "bob", "carol"} {
		machine[c] = filepath.Join(base, c)
		if err := os.MkdirAll(machine[c], 0o700); err != nil {
			t.Fatal(err)
		}
		afterlife(t, true, "admin", "root", "keygen", "--out", filepath.Join(machine[c], "root.key"))
		pubs = append(pubs, "--key-pub", filepath.Join(machine[c], "root.key.pub"))
	}
	move := filepath.Join(base, "move.json")
	afterlife(t, true, append(append([]string{"admin", "root", "propose", "--threshold", "2", "--out", move}, pubs...), as...)...)
	afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(origin.Data, "keys", "tuf", "root.key"), move)
	afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(machine["alice"], "root.key"), move)
	afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(machine["bob"], "root.key"), move)
	afterlife(t, true, append([]string{"admin", "root", "publish", move}, as...)...)
	moved, err := tuf.DescribeRoot(get(t, origin.URL+"/tuf/root.json"))
	if err != nil || moved.Threshold != 2 {
		t.Fatalf("the origin's root after the move: %+v (%v)", moved, err)
	}
	next := fmt.Sprintf("root version %d", moved.Version+1)

	build := submitRecipe(t, as, fmt.Sprintf(rehomeRecipe, "1.0.0", "1.0.0"), "acme-fw 1.0.0")
	waitReproducible(t, origin, build, 3*time.Minute)
	var old struct {
		ID string `json:"id"`
	}
	if code := apiJSON(t, "POST", origin.URL+"/v1/releases", origin.Token, map[string]string{"build_id": build, "product": "acme-cam", "version": "1.0.0", "channel": "stable"}, &old); code != http.StatusCreated {
		t.Fatalf("publish 1.0.0 on the origin: %d", code)
	}
	waitForLoggedRelease(t, origin.URL, "acme-cam")
	root1 := filepath.Join(base, "1.root.json")
	writeFile(t, root1, get(t, origin.URL+"/tuf/1.root.json"))

	// A device pins the origin's first root and installs 1.0.0 from it.
	state := filepath.Join(base, "device")
	device := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--state", state)...)
		cmd.Env = append(os.Environ(), "AFTERLIFE_REGISTRY=")
		b, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("afterlife-device %s: %v, want success %v\n%s", strings.Join(args, " "), err, wantOK, b)
		}
		return string(b)
	}
	device(true, "init", "--registry", origin.URL, "--root", root1, "--id", "usb:acme:cam", "--product", "acme-cam", "--accept-community-firmware")
	if out := device(true, "update", "--verbose"); !strings.Contains(out, "installed acme-cam 1.0.0") || !strings.Contains(out, "release is in the transparency log") {
		t.Fatalf("update from the origin said %q", out)
	}

	mirrorDir := filepath.Join(base, "mirror")
	afterlife(t, true, "mirror", "pull", "--from", origin.URL, mirrorDir)
	if err := origin.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop the origin: %v", err)
	}

	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			data := t.TempDir()
			opts.Data = data
			opts.Args = append(opts.Args, "--allow-local-repos", "--builder-cache", builderCache(t), "--translog-every", "200ms")
			// admin runs the server's own commands with its settings.
			admin := func(wantOK bool, args ...string) string {
				t.Helper()
				cmd := exec.Command(testenv.Binary(t), append(append(args, "--data", data), opts.Args...)...)
				cmd.Env = append(os.Environ(), opts.Env...)
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				if err := cmd.Run(); (err == nil) != wantOK {
					t.Fatalf("afterlife %s: %v, want success %v\n%s\n%s", strings.Join(args, " "), err, wantOK, out.String(), errb.String())
				}
				return out.String() + errb.String()
			}

			t.Run("a mirror with one changed byte is refused, naming the file", func(t *testing.T) {
				bad := filepath.Join(t.TempDir(), "mirror")
				if err := os.CopyFS(bad, os.DirFS(mirrorDir)); err != nil {
					t.Fatal(err)
				}
				m, _ := filepath.Glob(filepath.Join(bad, "tuf/targets/acme-cam/1.0.0/*.firmware.bin"))
				if len(m) != 1 {
					t.Fatalf("no firmware target in the mirror: %v", m)
				}
				b := readFile(t, m[0])
				b[len(b)/2] ^= 0x01
				writeFile(t, m[0], b)
				out := admin(false, "admin", "rehome", "propose", "--mirror", bad, "--root", root1, "--out", filepath.Join(t.TempDir(), "p.json"))
				if !strings.Contains(out, "does not verify") || !strings.Contains(out, "firmware.bin") {
					t.Fatalf("propose from a changed mirror said:\n%s", out)
				}
			})

			proposal := filepath.Join(t.TempDir(), "proposal.json")
			out := admin(true, "admin", "rehome", "propose", "--mirror", mirrorDir, "--root", root1, "--out", proposal)
			if !strings.Contains(out, next) || !strings.Contains(out, "needs 2 of these 3") || !strings.Contains(out, "new log") {
				t.Fatalf("propose said %q", out)
			}
			// alice and carol sign on their own machines.
			var copies []string
			for _, c := range []string{"alice", "carol"} {
				cp := filepath.Join(machine[c], name+"-proposal.json")
				writeFile(t, cp, readFile(t, proposal))
				afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(machine[c], "root.key"), cp)
				copies = append(copies, cp)
			}
			t.Run("a root one custodian signed is refused", func(t *testing.T) {
				out := admin(false, append([]string{"admin", "rehome", "import", "--mirror", mirrorDir, "--root", root1}, copies[0])...)
				if !strings.Contains(out, "not signed by 2") {
					t.Fatalf("import with one custodian's signature said:\n%s", out)
				}
			})
			t.Run("a product whose unsigned copy names other device ids than its signed document is refused, naming the file", func(t *testing.T) {
				bad := filepath.Join(t.TempDir(), "mirror")
				if err := os.CopyFS(bad, os.DirFS(mirrorDir)); err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(bad, "api", "products", "acme-cam.json")
				writeFile(t, f, bytes.ReplaceAll(readFile(t, f), []byte(`"usb:acme:cam"`), []byte(`"usb:acme:cam","usb:other:cam"`)))
				out := admin(false, append([]string{"admin", "rehome", "import", "--mirror", bad, "--root", root1}, copies...)...)
				if !strings.Contains(out, "api/products/acme-cam.json says device ids") || !strings.Contains(out, "acme-cam/lifecycle/openeox.json") {
					t.Fatalf("import of a mirror whose product names another device id said:\n%s", out)
				}
			})
			t.Run("a build whose result lists other outputs than its builder attested is refused, naming the file", func(t *testing.T) {
				bad := filepath.Join(t.TempDir(), "mirror")
				if err := os.CopyFS(bad, os.DirFS(mirrorDir)); err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(bad, "api", "builds", build+".json")
				var doc map[string]any
				if err := json.Unmarshal(readFile(t, f), &doc); err != nil {
					t.Fatal(err)
				}
				res := doc["results"].([]any)[0].(map[string]any)
				res["outputs"].([]any)[0].(map[string]any)["digest"] = "sha256:" + strings.Repeat("ab", 32)
				b, _ := json.Marshal(doc)
				writeFile(t, f, b)
				out := admin(false, append([]string{"admin", "rehome", "import", "--mirror", bad, "--root", root1}, copies...)...)
				if !strings.Contains(out, "api/builds/"+build+".json") || !strings.Contains(out, "other outputs than its attestation") {
					t.Fatalf("import of a mirror with a changed build said:\n%s", out)
				}
			})
			out = admin(true, append([]string{"admin", "rehome", "import", "--mirror", mirrorDir, "--root", root1}, copies...)...)
			if !strings.Contains(out, next+" published") || !strings.Contains(out, "1 products, 1 releases, 1 builds imported") {
				t.Fatalf("import said %q", out)
			}
			t.Run("a seeded database is not seeded twice", func(t *testing.T) {
				if out := admin(false, append([]string{"admin", "rehome", "import", "--mirror", mirrorDir, "--root", root1}, copies...)...); !strings.Contains(out, "holds a TUF repository already") {
					t.Fatalf("a second import said:\n%s", out)
				}
			})

			srv := testenv.Serve(t, opts)
			if got, want := get(t, srv.URL+"/tuf/1.root.json"), readFile(t, root1); !bytes.Equal(got, want) {
				t.Fatal("the new registry serves another 1.root.json than the origin's")
			}
			var rel struct {
				Version string `json:"version"`
			}
			if code := apiJSON(t, "GET", srv.URL+"/v1/releases/"+old.ID, "", nil, &rel); code != http.StatusOK || rel.Version != "1.0.0" {
				t.Fatalf("the origin's release %s on the new registry: %d %+v", old.ID, code, rel)
			}
			t.Run("the release's verdict and its builders' attestations answer as on the origin", func(t *testing.T) {
				var bd struct {
					State   string `json:"state"`
					Results []struct {
						JobID string `json:"job_id"`
					} `json:"results"`
				}
				if code := apiJSON(t, "GET", srv.URL+"/v1/builds/"+build, "", nil, &bd); code != http.StatusOK || bd.State != "reproducible" || len(bd.Results) != 2 {
					t.Fatalf("build %s on the new registry: %d %+v", build, code, bd)
				}
				for _, r := range bd.Results {
					want := readFile(t, filepath.Join(mirrorDir, "api", "builds", build, "jobs", r.JobID, "attestation.dsse.json"))
					if got := get(t, srv.URL+"/v1/builds/"+build+"/jobs/"+r.JobID+"/attestation"); !bytes.Equal(got, want) {
						t.Fatalf("the attestation of job %s differs from the mirror's", r.JobID)
					}
				}
				if page := string(get(t, srv.URL+"/builds/"+build)); !strings.Contains(page, `id="job-`+bd.Results[0].JobID+`"`) || !strings.Contains(page, "Attestation (in-toto)") {
					t.Fatalf("the verdict page does not show job %s:\n%.2000s", bd.Results[0].JobID, page)
				}
			})
			newRoot := get(t, srv.URL+"/tuf/root.json")
			if sum, err := tuf.DescribeRoot(newRoot); err != nil || sum.Version != moved.Version+1 || sum.Threshold != 2 {
				t.Fatalf("the new registry's root is %+v (%v), want %s held by 2 custodians", sum, err, next)
			}
			var info struct {
				LogKey string `json:"verifier_key"`
			}
			apiJSON(t, "GET", srv.URL+"/v1/log", "", nil, &info)
			if info.LogKey == "" || !bytes.Contains(newRoot, []byte(info.LogKey)) {
				t.Fatalf("the custodians' root does not name the new registry's log key %q", info.LogKey)
			}

			dstate := filepath.Join(t.TempDir(), "device")
			if err := os.CopyFS(dstate, os.DirFS(state)); err != nil {
				t.Fatal(err)
			}
			onNew := func(wantOK bool, args ...string) string {
				t.Helper()
				cmd := exec.Command(bin, append([]string{"update", "--registry", srv.URL, "--state", dstate}, args...)...)
				cmd.Env = append(os.Environ(), "AFTERLIFE_REGISTRY=")
				b, err := cmd.CombinedOutput()
				if (err == nil) != wantOK {
					t.Fatalf("afterlife-device update on the new registry: %v\n%s", err, b)
				}
				return string(b)
			}
			t.Run("the device that pinned the origin's root walks to the custodians' new root", func(t *testing.T) {
				if out := onNew(true); !strings.Contains(out, "up to date (version 1.0.0)") {
					t.Fatalf("update on the new registry said %q", out)
				}
				if sum, err := tuf.DescribeRoot(readFile(t, filepath.Join(dstate, "tuf", "root.json"))); err != nil || sum.Version != moved.Version+1 {
					t.Fatalf("the device trusts %+v (%v), want %s", sum, err, next)
				}
			})
			t.Run("a release the new registry's builders agreed on reaches it", func(t *testing.T) {
				nas := []string{"--server", srv.URL, "--token", srv.Token}
				build := submitRecipe(t, nas, fmt.Sprintf(rehomeRecipe, "2.0.0", "2.0.0"), "acme-fw 2.0.0")
				waitReproducible(t, srv, build, 3*time.Minute)
				if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, map[string]string{"build_id": build, "product": "acme-cam", "version": "2.0.0", "channel": "stable"}, nil); code != http.StatusCreated {
					t.Fatalf("publish 2.0.0 on the new registry: %d\n%s", code, srv.LogTail())
				}
				// The device checks the new log, which the root now names,
				// and leaves the old log's checkpoint behind.
				waitForLoggedRelease(t, srv.URL, "acme-cam")
				if out := onNew(true, "--verbose"); !strings.Contains(out, "installed acme-cam 2.0.0") || !strings.Contains(out, "release is in the transparency log") ||
					!strings.Contains(out, "another transparency log") {
					t.Fatalf("update on the new registry said %q", out)
				}
			})
			t.Run("a mirror of the new registry verifies from the origin's first root", func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "mirror")
				afterlife(t, true, "mirror", "pull", "--from", srv.URL, dir)
				if out, _ := afterlife(t, true, "mirror", "verify", dir, "--root", root1); !strings.Contains(out, next) || !strings.Contains(out, "OK") {
					t.Fatalf("verify of the new registry's mirror said:\n%s", out)
				}
			})
		})
	}
}
