package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// spoofRecipe builds one small firmware file for two products, in seconds.
const spoofRecipe = `name: acme-fw
version: 1.0.0
products: [acme-cam, acme-door]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - echo "acme open firmware" > /out/firmware.bin
outputs:
  - {path: firmware.bin, kind: firmware}
limits: {timeout: 1m, memory: 256MiB}
`

// offerProxy is a hostile network between device and registry: a real
// reverse proxy that rewrites the update API's answers.
type offerProxy struct {
	*httptest.Server
	spoofed atomic.Pointer[device.Offer]
}

func startOfferProxy(t *testing.T, upstream string) *offerProxy {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &offerProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		o := p.spoofed.Load()
		if o == nil || resp.Request.URL.Path != "/v1/devices/updates" {
			return nil
		}
		body, err := json.Marshal(o)
		if err != nil {
			return err
		}
		resp.Body.Close()
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.Header.Set("Content-Type", "application/json")
		resp.Header.Del("Etag")
		return nil
	}
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

// treeState fingerprints a device's directories: slots, current,
// release.json, pinned root, config and the TUF cache (the verified
// metadata versions, the rollback state).
func treeState(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range dirs {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if os.IsNotExist(err) && p == root {
				return nil
			}
			if err != nil {
				return err
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				link, _ := os.Readlink(p)
				out[p] = "-> " + link
			case d.IsDir():
				out[p] = "dir"
			default:
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				out[p] = hex.EncodeToString(sum[:])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// diffState lists what changed between two treeStates. Files may appear
// under cache (verified TUF metadata the refused update fetched), and the
// record of the last check (state.json) changes with every check; nothing
// else that existed may change or vanish.
func diffState(before, after map[string]string, cache string) string {
	var d []string
	for p, v := range before {
		if filepath.Base(p) == "state.json" {
			continue
		}
		if after[p] != v {
			d = append(d, fmt.Sprintf("%s: %q → %q", p, v, after[p]))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && !strings.HasPrefix(p, cache+string(filepath.Separator)) && filepath.Base(p) != "state.json" {
			d = append(d, p+" appeared")
		}
	}
	return strings.Join(d, "\n")
}

type publishedRelease struct {
	ID        string `json:"id"`
	Product   string `json:"product"`
	Version   string `json:"version"`
	Channel   string `json:"channel"`
	Community bool   `json:"community"`
	Artifacts []struct {
		Name   string `json:"name"`
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
		Target string `json:"target"`
	} `json:"artifacts"`
}

// offerFor is the honest offer of a release, before a spoof edits it.
func (r publishedRelease) offerFor() device.Offer {
	a := r.Artifacts[0]
	return device.Offer{
		Product: r.Product, ReleaseID: r.ID, Version: r.Version, Channel: r.Channel, Community: r.Community,
		Target: device.OfferTarget{Path: a.Target, Length: a.Size, Hashes: map[string]string{"sha256": strings.TrimPrefix(a.Digest, "sha256:")}},
	}
}

// TestSpoofedUpdateOffersAreRefused performs attack 2 of issue 11 against
// a real server: a proxy between device and registry rewrites the update
// offer (another product's target, a downgrade, community:false, version
// 999.0.0). The device decides on the signed TUF metadata and refuses each
// with a clear message, leaving its slots, recorded version and rollback
// state as they were. The same server's /tuf/ then feeds a static mirror
// without an update API, from which a device updates on the metadata alone.
func TestSpoofedUpdateOffersAreRefused(t *testing.T) {
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--allow-local-repos"}})
	admin := []string{"--server", srv.URL, "--token", srv.Token}
	afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor"}, admin...)...)
	afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam 2", "--device-ids", "usb:acme:cam"}, admin...)...)
	afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-door", "--vendor", "acme", "--model", "Door 1", "--device-ids", "usb:acme:door"}, admin...)...)

	repo := filepath.Join(t.TempDir(), "acme-fw.git")
	src := fstest.MapFS{"afterlife.yaml": {Data: []byte(spoofRecipe)}}
	if _, err := recipes.CommitTree(context.Background(), repo, src, "acme-fw 1.0.0", time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	out, _ := afterlife(t, true, append([]string{"recipe", "submit", "--repo", "file://" + repo, "--ref", "HEAD"}, admin...)...)
	var sub struct {
		BuildID string `json:"build_id"`
	}
	if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.BuildID == "" {
		t.Fatalf("no build id from recipe submit (%v): %s", err, out)
	}
	var build struct {
		State   string `json:"state"`
		Verdict struct {
			Reason string `json:"reason"`
		} `json:"verdict"`
	}
	testenv.Eventually(t, 3*time.Minute, func() error {
		apiJSON(t, "GET", srv.URL+"/v1/builds/"+sub.BuildID, srv.Token, nil, &build)
		if build.State == "" || build.State == "pending" {
			return fmt.Errorf("no verdict on build %s yet (%q)", sub.BuildID, build.State)
		}
		return nil
	})
	if build.State != "reproducible" {
		t.Fatalf("build %s: %s (%s)\n%s", sub.BuildID, build.State, build.Verdict.Reason, srv.LogTail())
	}
	rels := map[string]publishedRelease{}
	for _, r := range []struct{ product, version string }{{"acme-cam", "1.0.0"}, {"acme-cam", "2.0.0"}, {"acme-door", "1.0.0"}} {
		var rel publishedRelease
		req := map[string]string{"build_id": sub.BuildID, "product": r.product, "version": r.version, "channel": "stable"}
		if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, req, &rel); code != http.StatusCreated {
			t.Fatalf("publish %s %s: %d", r.product, r.version, code)
		}
		rels[r.product+" "+r.version] = rel
	}

	proxy := startOfferProxy(t, srv.URL)
	dev := func(optIn bool) (state, install string, run func(t *testing.T, wantOK bool, args ...string) (string, string)) {
		dir := t.TempDir()
		state, install = filepath.Join(dir, "state"), filepath.Join(dir, "install")
		args := []string{"device", "init", "--registry", proxy.URL, "--state", state, "--install-to", install, "--id", "usb:acme:cam", "--trust-on-first-use"}
		if optIn {
			args = append(args, "--accept-community-firmware")
		}
		afterlife(t, true, args...)
		return state, install, func(t *testing.T, wantOK bool, args ...string) (string, string) {
			return afterlife(t, wantOK, append([]string{"device", args[0], "--registry", proxy.URL, "--state", state, "--install-to", install}, args[1:]...)...)
		}
	}

	// An opted-in device installs acme-cam 2.0.0 through the proxy while it
	// does not interfere.
	state, install, run := dev(true)
	if out, _ := run(t, true, "update"); !strings.Contains(out, "installed acme-cam 2.0.0") {
		t.Fatalf("honest update said %q", out)
	}
	for _, tc := range []struct {
		name  string
		offer func() device.Offer
		want  string
	}{
		{"another product's target is refused", func() device.Offer {
			o := rels["acme-door 1.0.0"].offerFor()
			o.Product, o.Version = "acme-cam", "3.0.0"
			return o
		}, "signed for product acme-door, this device runs product acme-cam"},
		{"a downgrade is refused", func() device.Offer {
			o := rels["acme-cam 1.0.0"].offerFor()
			o.Version = "3.0.0"
			return o
		}, "runs 2.0.0 and the signed metadata allows no downgrade"},
		{"version 999.0.0 is refused and not recorded", func() device.Offer {
			o := rels["acme-cam 2.0.0"].offerFor()
			o.Version = "999.0.0"
			return o
		}, "already runs 2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := treeState(t, state, install)
			o := tc.offer()
			proxy.spoofed.Store(&o)
			defer proxy.spoofed.Store(nil)
			_, stderr := run(t, false, "update")
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("the refusal does not say %q:\n%s", tc.want, stderr)
			}
			if d := diffState(before, treeState(t, state, install), filepath.Join(state, "tuf")); d != "" {
				t.Fatalf("a refused offer changed the device:\n%s", d)
			}
			out, _ := run(t, true, "status", "--json")
			var st device.Status
			if err := json.Unmarshal([]byte(out), &st); err != nil || st.ActiveSlot != "a" || st.Slots[0].Version != "2.0.0" {
				t.Fatalf("the device records %s (%v), want 2.0.0 active", out, err)
			}
		})
	}
	t.Run("after the attacks the device still takes real updates", func(t *testing.T) {
		if out, _ := run(t, true, "update"); !strings.Contains(out, "up to date (version 2.0.0)") {
			t.Fatalf("update said %q", out)
		}
	})

	t.Run("community firmware offered as community:false is refused without the opt-in", func(t *testing.T) {
		state, install, run := dev(false)
		before := treeState(t, state, install)
		o := rels["acme-cam 2.0.0"].offerFor()
		o.Community = false
		proxy.spoofed.Store(&o)
		defer proxy.spoofed.Store(nil)
		_, stderr := run(t, false, "update")
		if !strings.Contains(stderr, "community release (so says its signed metadata)") || !strings.Contains(stderr, "opt-in") {
			t.Fatalf("the refusal does not explain the signed community flag and the opt-in:\n%s", stderr)
		}
		if d := diffState(before, treeState(t, state, install), filepath.Join(state, "tuf")); d != "" {
			t.Fatalf("a refused offer changed the device:\n%s", d)
		}
	})

	t.Run("another product's target offered to a fresh device is refused by its device id", func(t *testing.T) {
		state, install, run := dev(true)
		before := treeState(t, state, install)
		o := rels["acme-door 1.0.0"].offerFor()
		o.Product = "acme-cam"
		proxy.spoofed.Store(&o)
		defer proxy.spoofed.Store(nil)
		_, stderr := run(t, false, "update")
		if !strings.Contains(stderr, "not for this device (usb:acme:cam)") {
			t.Fatalf("the refusal does not name the device id:\n%s", stderr)
		}
		if d := diffState(before, treeState(t, state, install), filepath.Join(state, "tuf")); d != "" {
			t.Fatalf("a refused offer changed the device:\n%s", d)
		}
	})

	t.Run("a device updates from a static mirror of /tuf/ alone", func(t *testing.T) {
		mirror := mirrorTUF(t, srv.URL, rels["acme-cam 2.0.0"].Artifacts[0].Target, rels["acme-cam 2.0.0"].Artifacts[0].Digest)
		static := httptest.NewServer(http.FileServer(http.Dir(mirror)))
		defer static.Close()
		root := filepath.Join(mirror, "tuf", "1.root.json")
		dir := t.TempDir()
		state, install := filepath.Join(dir, "state"), filepath.Join(dir, "install")
		afterlife(t, true, "device", "init", "--registry", static.URL, "--state", state, "--root", root,
			"--id", "usb:acme:cam", "--product", "acme-cam", "--accept-community-firmware")
		out, stderr := afterlife(t, true, "device", "update", "--registry", static.URL, "--state", state, "--install-to", install)
		if !strings.Contains(out, "installed acme-cam 2.0.0") {
			t.Fatalf("update from the static mirror said %q\n%s", out, stderr)
		}
	})

	t.Run("a different root is not pinned over the pinned one without --force", func(t *testing.T) {
		other, err := tuf.Open(context.Background(), tuf.NewMemStore(), t.TempDir(), time.Now)
		if err != nil {
			t.Fatal(err)
		}
		rootFile := filepath.Join(t.TempDir(), "root.json")
		b, err := tufRoot(other)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(rootFile, b, 0o644)
		before := treeState(t, state)
		_, stderr := afterlife(t, false, "device", "init", "--registry", proxy.URL, "--state", state, "--root", rootFile)
		if !strings.Contains(stderr, "already pins TUF root version") || !strings.Contains(stderr, "--force") {
			t.Fatalf("init over a pinned root said:\n%s", stderr)
		}
		if d := diffState(before, treeState(t, state), filepath.Join(state, "tuf")); d != "" {
			t.Fatalf("the refused init changed the device state:\n%s", d)
		}
		afterlife(t, true, "device", "init", "--registry", proxy.URL, "--state", state, "--root", rootFile, "--force")
		if got, _ := os.ReadFile(filepath.Join(state, "root.json")); !bytes.Equal(got, b) {
			t.Fatal("--force did not pin the new root")
		}
	})

	t.Run("TUF 404s answer the API's JSON error shape", func(t *testing.T) {
		for _, p := range []string{"/tuf/99.root.json", "/tuf/no-such-file", "/tuf/targets/acme-cam/1.0.0/" + strings.Repeat("0", 64) + ".firmware.bin"} {
			resp, err := http.Get(srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Error struct {
					Code, Message string
				} `json:"error"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || err != nil || body.Error.Code != "not_found" || body.Error.Message == "" {
				t.Errorf("GET %s: %d %s, body %+v (%v); want 404 with {\"error\":{\"code\":\"not_found\",…}}", p, resp.StatusCode, resp.Header.Get("Content-Type"), body, err)
			}
		}
	})
}

// tufRoot is the first root of a repository, as a device would pin it.
func tufRoot(r *tuf.Repo) ([]byte, error) {
	b, _, err := r.Meta(context.Background(), "1.root.json")
	return b, err
}

// mirrorTUF copies what a static mirror holds: every metadata file the
// current timestamp reaches, every root version, and one target file.
func mirrorTUF(t *testing.T, base, target, digest string) string {
	t.Helper()
	dir := t.TempDir()
	get := func(name string) []byte {
		resp, err := http.Get(base + "/tuf/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("mirror %s: %d %v", name, resp.StatusCode, err)
		}
		dst := filepath.Join(dir, "tuf", filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for v := 1; ; v++ {
		if status(fmt.Sprintf("%s/tuf/%d.root.json", base, v)) != http.StatusOK {
			break
		}
		get(fmt.Sprintf("%d.root.json", v))
	}
	get("root.json")
	var meta struct {
		Signed struct {
			Meta map[string]struct {
				Version int `json:"version"`
			} `json:"meta"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(get("timestamp.json"), &meta); err != nil {
		t.Fatal(err)
	}
	snap := get(fmt.Sprintf("%d.snapshot.json", meta.Signed.Meta["snapshot.json"].Version))
	if err := json.Unmarshal(snap, &meta); err != nil {
		t.Fatal(err)
	}
	for name, m := range meta.Signed.Meta {
		get(fmt.Sprintf("%d.%s", m.Version, name))
	}
	dirPart, file := path.Split(target)
	get("targets/" + dirPart + strings.TrimPrefix(digest, "sha256:") + "." + file)
	return dir
}
