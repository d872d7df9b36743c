package tuf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a repository served by an httptest server, with target files
// served from a map by digest, and metadata overrides to play an attacker
// replaying old files.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	store  Store
	keyDir string
	clock  *clock
	repo   *Repo
	srv    *httptest.Server

	mu       sync.Mutex
	blobs    map[string][]byte // sha256 hex → bytes
	override map[string][]byte // metadata name → bytes served instead
}

func newFixture(t *testing.T, store Store) *fixture {
	t.Helper()
	f := &fixture{
		t: t, ctx: context.Background(), store: store, keyDir: filepath.Join(t.TempDir(), "keys"),
		clock: newClock(), blobs: map[string][]byte{}, override: map[string][]byte{},
	}
	repo, err := Open(f.ctx, store, f.keyDir, f.clock.now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	f.repo = repo
	mux := http.NewServeMux()
	mux.HandleFunc("/tuf/targets/", func(w http.ResponseWriter, r *http.Request) {
		_, hash, _, ok := ParseTargetRequest(r.URL.Path)
		f.mu.Lock()
		b, found := f.blobs[hash]
		f.mu.Unlock()
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
	meta := repo.Handler()
	mux.HandleFunc("/tuf/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		b, ok := f.override[strings.TrimPrefix(r.URL.Path, "/tuf/")]
		f.mu.Unlock()
		if ok {
			_, _ = w.Write(b)
			return
		}
		meta.ServeHTTP(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// publish adds a target with the given content and returns it.
func (f *fixture) publish(path, content string) Target {
	f.t.Helper()
	sum := sha256.Sum256([]byte(content))
	tg := Target{Path: path, Length: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Custom: map[string]any{"channel": "stable"}}
	f.mu.Lock()
	f.blobs[tg.SHA256] = []byte(content)
	f.mu.Unlock()
	if err := f.repo.Apply(f.ctx, []Target{tg}, nil); err != nil {
		f.t.Fatalf("Apply %s: %v", path, err)
	}
	return tg
}

func (f *fixture) meta(name string) []byte {
	f.t.Helper()
	b, err := f.store.GetMeta(f.ctx, name)
	if err != nil {
		f.t.Fatalf("GetMeta %s: %v", name, err)
	}
	return b
}

// client returns a go-tuf updater trusting root, caching in cacheDir,
// whose clock is the fixture's.
func (f *fixture) client(root []byte, cacheDir string) *updater.Updater {
	f.t.Helper()
	cfg, err := config.New(f.srv.URL+"/tuf", root)
	if err != nil {
		f.t.Fatalf("config: %v", err)
	}
	cfg.LocalMetadataDir = filepath.Join(cacheDir, "metadata")
	cfg.LocalTargetsDir = filepath.Join(cacheDir, "targets")
	up, err := updater.New(cfg)
	if err != nil {
		f.t.Fatalf("updater: %v", err)
	}
	up.UnsafeSetRefTime(f.clock.now())
	return up
}

func TestUpdaterFetchesAPublishedTarget(t *testing.T) {
	f := newFixture(t, NewMemStore())
	tg := f.publish(f.repo.TargetPath("demo-cam", "1.0.0", "afterlife-cam.tar.gz"), "firmware bytes")

	up := f.client(f.meta("1.root.json"), t.TempDir())
	info, err := up.GetTargetInfo(tg.Path)
	if err != nil {
		t.Fatalf("GetTargetInfo: %v", err)
	}
	if info.Length != tg.Length || hex.EncodeToString(info.Hashes["sha256"]) != tg.SHA256 {
		t.Fatalf("target info = %d %x, want %d %s", info.Length, info.Hashes["sha256"], tg.Length, tg.SHA256)
	}
	if info.Custom == nil || !strings.Contains(string(*info.Custom), `"channel":"stable"`) {
		t.Fatalf("custom fields lost: %v", info.Custom)
	}
	_, data, err := up.DownloadTarget(info, "", "")
	if err != nil {
		t.Fatalf("DownloadTarget: %v", err)
	}
	if string(data) != "firmware bytes" {
		t.Fatalf("downloaded %q", data)
	}
}

func TestKeyFilesAreSeparateAndPrivate(t *testing.T) {
	f := newFixture(t, NewMemStore())
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		fi, err := os.Stat(filepath.Join(f.keyDir, role+".key"))
		if err != nil {
			t.Fatalf("%s.key: %v", role, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key has mode %v, want 0600", role, fi.Mode().Perm())
		}
	}
}

func TestRemovedTargetIsNoLongerFound(t *testing.T) {
	f := newFixture(t, NewMemStore())
	tg := f.publish("demo-cam/1.0.0/fw.bin", "v1")
	keep := f.publish("demo-cam/1.0.1/fw.bin", "v1.0.1")
	if err := f.repo.Apply(f.ctx, nil, []string{tg.Path}); err != nil {
		t.Fatalf("yank: %v", err)
	}
	up := f.client(f.meta("1.root.json"), t.TempDir())
	if _, err := up.GetTargetInfo(tg.Path); err == nil {
		t.Fatal("a yanked target is still listed")
	}
	if _, err := up.GetTargetInfo(keep.Path); err != nil {
		t.Fatalf("the other target vanished: %v", err)
	}
	if err := f.repo.Apply(f.ctx, nil, []string{tg.Path}); !errs.Is(err, errs.NotFound) {
		t.Fatalf("yanking twice: err = %v, want not_found", err)
	}
}

func TestApplyRefusesBadTargets(t *testing.T) {
	f := newFixture(t, NewMemStore())
	good := strings.Repeat("ab", 32)
	for name, tc := range map[string]struct {
		add    []Target
		remove []string
	}{
		"a path climbing out is refused":     {add: []Target{{Path: "../x", SHA256: good}}},
		"an absolute path is refused":        {add: []Target{{Path: "/x/y", SHA256: good}}},
		"a short digest is refused":          {add: []Target{{Path: "a/b", SHA256: "abcd"}}},
		"an upper-case digest is refused":    {add: []Target{{Path: "a/b", SHA256: strings.ToUpper(good)}}},
		"a negative length is refused":       {add: []Target{{Path: "a/b", SHA256: good, Length: -1}}},
		"adding and removing one is refused": {add: []Target{{Path: "a/b", SHA256: good}}, remove: []string{"a/b"}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := f.repo.Apply(f.ctx, tc.add, tc.remove); !errs.Is(err, errs.Invalid) {
				t.Fatalf("err = %v, want invalid", err)
			}
		})
	}
}

func TestAnotherReplicaSeesTheSharedState(t *testing.T) {
	f := newFixture(t, NewMemStore())
	other, err := Open(f.ctx, f.store, f.keyDir, f.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	a := f.publish("p/1/a", "a")
	sum := sha256.Sum256([]byte("b"))
	b := Target{Path: "p/1/b", Length: 1, SHA256: hex.EncodeToString(sum[:])}
	if err := other.Apply(f.ctx, []Target{b}, nil); err != nil {
		t.Fatal(err)
	}
	up := f.client(f.meta("1.root.json"), t.TempDir())
	for _, p := range []string{a.Path, b.Path} {
		if _, err := up.GetTargetInfo(p); err != nil {
			t.Errorf("target %s published by one replica was lost by the other: %v", p, err)
		}
	}
}

func TestRotationKeepsAnOldClientUpdating(t *testing.T) {
	for _, roles := range [][]string{{"root"}, {"timestamp"}, {"snapshot"}, {"targets"}, {"root", "root", "timestamp"}} {
		t.Run("after rotating "+strings.Join(roles, " then "), func(t *testing.T) {
			f := newFixture(t, NewMemStore())
			root1 := f.meta("1.root.json")
			cache := t.TempDir()
			first := f.publish("p/1/a", "a")
			if _, err := f.client(root1, cache).GetTargetInfo(first.Path); err != nil {
				t.Fatal(err)
			}
			oldKey, _ := os.ReadFile(filepath.Join(f.keyDir, roles[0]+".key"))
			for _, role := range roles {
				if err := f.repo.Rotate(f.ctx, role); err != nil {
					t.Fatalf("Rotate %s: %v", role, err)
				}
			}
			second := f.publish("p/2/a", "b")

			for name, up := range map[string]*updater.Updater{
				"a client that cached metadata": f.client(root1, cache),
				"a fresh client from 1.root":    f.client(root1, t.TempDir()),
			} {
				for _, tg := range []Target{first, second} {
					if _, err := up.GetTargetInfo(tg.Path); err != nil {
						t.Fatalf("%s: GetTargetInfo %s: %v", name, tg.Path, err)
					}
				}
				if got, want := up.GetTrustedMetadataSet().Root.Signed.Version, int64(1+len(roles)); got != want {
					t.Errorf("%s trusts root v%d, want v%d", name, got, want)
				}
			}
			retired, err := os.ReadFile(filepath.Join(f.keyDir, roles[0]+".key.old.1"))
			if err != nil || string(retired) != string(oldKey) {
				t.Fatalf("old %s key not kept as .old.1: %v", roles[0], err)
			}
			if cur, _ := os.ReadFile(filepath.Join(f.keyDir, roles[0]+".key")); string(cur) == string(oldKey) {
				t.Fatalf("%s.key was not replaced", roles[0])
			}
		})
	}
}

func TestRotatedRootIsSignedByOldAndNewKeys(t *testing.T) {
	f := newFixture(t, NewMemStore())
	if err := f.repo.Rotate(f.ctx, "root"); err != nil {
		t.Fatal(err)
	}
	r1, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(f.meta("1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(f.meta("2.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.VerifyDelegate("root", r2); err != nil {
		t.Errorf("2.root.json is not signed by the old root key: %v", err)
	}
	if err := r2.VerifyDelegate("root", r2); err != nil {
		t.Errorf("2.root.json is not signed by the new root key: %v", err)
	}
	if latest := f.meta("root.json"); string(latest) != string(f.meta("2.root.json")) {
		t.Error("root.json is not the latest root")
	}
}

func TestOpenWorksWithRootKeyOffline(t *testing.T) {
	f := newFixture(t, NewMemStore())
	offline := filepath.Join(t.TempDir(), "root.key")
	if err := os.Rename(filepath.Join(f.keyDir, "root.key"), offline); err != nil {
		t.Fatal(err)
	}
	repo, err := Open(f.ctx, f.store, f.keyDir, f.clock.now)
	if err != nil {
		t.Fatalf("Open without root.key: %v", err)
	}
	sum := sha256.Sum256(nil)
	if err := repo.Apply(f.ctx, []Target{{Path: "p/1/empty", SHA256: hex.EncodeToString(sum[:])}}, nil); err != nil {
		t.Fatalf("Apply without root.key: %v", err)
	}
	if err := repo.Rotate(f.ctx, "timestamp"); !errs.Is(err, errs.Invalid) {
		t.Fatalf("Rotate without root.key: err = %v, want invalid", err)
	}
	if _, err := os.Stat(filepath.Join(f.keyDir, "root.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Open recreated root.key for an existing repository")
	}
}

func TestAnInterruptedRotationSettlesOnOpen(t *testing.T) {
	f := newFixture(t, NewMemStore())
	// A rotation that stopped after writing the new key but before
	// publishing root leaves timestamp.key.new, which no root lists.
	k, err := generateRoleKey()
	if err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(f.keyDir, "timestamp.key.new")
	if err := writeKey(pending, k); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f.ctx, f.store, f.keyDir, f.clock.now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pending); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an unpublished key was kept")
	}
}

func TestReplayedMetadataIsRefused(t *testing.T) {
	t.Run("an old timestamp is refused after a newer one was seen", func(t *testing.T) {
		f := newFixture(t, NewMemStore())
		oldTimestamp := f.meta("timestamp.json")
		tg := f.publish("p/1/a", "a")
		cache := t.TempDir()
		if _, err := f.client(f.meta("1.root.json"), cache).GetTargetInfo(tg.Path); err != nil {
			t.Fatal(err)
		}
		f.override["timestamp.json"] = oldTimestamp
		err := f.client(f.meta("1.root.json"), cache).Refresh()
		if !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
			t.Fatalf("Refresh with a replayed timestamp: err = %v, want a bad version number", err)
		}
	})
	t.Run("a timestamp pointing to an old snapshot is refused", func(t *testing.T) {
		f := newFixture(t, NewMemStore())
		f.publish("p/1/a", "a")
		cache := t.TempDir()
		if err := f.client(f.meta("1.root.json"), cache).Refresh(); err != nil {
			t.Fatal(err)
		}
		// Someone holding the timestamp key signs a fresh timestamp that
		// points back at snapshot version 1.
		st, err := f.repo.load(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(1)
		if err := f.repo.commit(f.ctx, st, change{}); err != nil {
			t.Fatal(err)
		}
		err = f.client(f.meta("1.root.json"), cache).Refresh()
		if !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
			t.Fatalf("Refresh with a rolled-back snapshot: err = %v, want a bad version number", err)
		}
	})
}

func TestRefreshTimestampKeepsClientsWorkingPastExpiry(t *testing.T) {
	f := newFixture(t, NewMemStore())
	tg := f.publish("p/1/a", "a")
	root := f.meta("1.root.json")

	did, err := f.repo.RefreshTimestamp(f.ctx, time.Hour)
	if err != nil || did {
		t.Fatalf("a fresh timestamp was refreshed: %v %v", did, err)
	}
	f.clock.advance(23*time.Hour + 30*time.Minute)
	before := f.meta("timestamp.json")
	did, err = f.repo.RefreshTimestamp(f.ctx, time.Hour)
	if err != nil || !did {
		t.Fatalf("a timestamp expiring within the hour was not refreshed: %v %v", did, err)
	}
	f.clock.advance(time.Hour) // the old timestamp has expired now
	if _, err := f.client(root, t.TempDir()).GetTargetInfo(tg.Path); err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	f.override["timestamp.json"] = before
	if err := f.client(root, t.TempDir()).Refresh(); !errors.Is(err, &metadata.ErrExpiredMetadata{}) {
		t.Fatalf("the expired timestamp: err = %v, want expired", err)
	}
	delete(f.override, "timestamp.json")

	// Eight days on the snapshot (7 days) has expired too; one refresh
	// re-signs both.
	f.clock.advance(7 * 24 * time.Hour)
	if did, err := f.repo.RefreshTimestamp(f.ctx, time.Hour); err != nil || !did {
		t.Fatalf("refresh after a week: %v %v", did, err)
	}
	if _, err := f.client(root, t.TempDir()).GetTargetInfo(tg.Path); err != nil {
		t.Fatalf("after a week and a refresh: %v", err)
	}
}

func TestHandlerServesMetadataWithCacheHeaders(t *testing.T) {
	f := newFixture(t, NewMemStore())
	if err := f.store.PutMeta(f.ctx, "state/secret.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		status     int
		cache      string
	}{
		{"timestamp is never cached", "/tuf/timestamp.json", 200, "no-cache"},
		{"the latest root is never cached", "/tuf/root.json", 200, "no-cache"},
		{"a versioned root is immutable", "/tuf/1.root.json", 200, "public, max-age=31536000, immutable"},
		{"a versioned bin is immutable", "/tuf/1.bins-00.json", 200, "public, max-age=31536000, immutable"},
		{"a missing version is not found", "/tuf/9.root.json", 404, ""},
		{"internal state is not served", "/tuf/state/secret.json", 404, ""},
		{"a path escape is not served", "/tuf/..%2fkeys%2froot.key", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(f.srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Cache-Control") != tc.cache {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"), tc.status, tc.cache)
			}
		})
	}
}

func TestParseTargetRequest(t *testing.T) {
	h := strings.Repeat("0a", 32)
	for _, tc := range []struct {
		name, in        string
		dir, hash, base string
		ok              bool
	}{
		{"a full request path is split", "/tuf/targets/demo-cam/1.0.0/" + h + ".fw.tar.gz", "demo-cam/1.0.0", h, "fw.tar.gz", true},
		{"a relative path is split", "demo-cam/1.0.0/" + h + ".fw.bin", "demo-cam/1.0.0", h, "fw.bin", true},
		{"a target at the top has no dir", h + ".fw.bin", "", h, "fw.bin", true},
		{"a path without a digest is refused", "demo-cam/1.0.0/fw.bin", "", "", "", false},
		{"a short digest is refused", "demo-cam/1.0.0/abcd.fw.bin", "", "", "", false},
		{"an upper-case digest is refused", "d/" + strings.ToUpper(h) + ".fw.bin", "", "", "", false},
		{"a climbing path is refused", "../" + h + ".fw.bin", "", "", "", false},
		{"a digest without a name is refused", "d/" + h + ".", "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, hash, base, ok := ParseTargetRequest(tc.in)
			if dir != tc.dir || hash != tc.hash || base != tc.base || ok != tc.ok {
				t.Fatalf("got %q %q %q %v", dir, hash, base, ok)
			}
		})
	}
}

func FuzzParseTargetRequest(f *testing.F) {
	f.Add("/tuf/targets/demo-cam/1.0.0/" + strings.Repeat("0a", 32) + ".fw.tar.gz")
	f.Add("../../etc/passwd")
	f.Fuzz(func(t *testing.T, p string) {
		dir, hash, name, ok := ParseTargetRequest(p)
		if !ok {
			return
		}
		full := name
		if dir != "" {
			full = dir + "/" + name
		}
		if relpath.Check(full) != nil || len(hash) != 64 {
			t.Fatalf("accepted %q as %q %q %q", p, dir, hash, name)
		}
	})
}

func ExampleParseTargetRequest() {
	dir, hash, name, ok := ParseTargetRequest("/tuf/targets/demo-cam/1.0.0/" + strings.Repeat("ab", 32) + ".afterlife-cam.tar.gz")
	fmt.Println(dir, hash[:8], name, ok)
	// Output: demo-cam/1.0.0 abababab afterlife-cam.tar.gz true
}
