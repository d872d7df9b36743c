package tuf

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// TestACopiedRepositoryIsAdoptedWithTheCustodiansRootAndClientsFollow is
// re-homing on the TUF side: a repository held by 2 of 3 custodians, with
// a log policy in its root, is copied file by file into another store; the
// new server proposes the next root with online keys of its own, two
// custodians sign it, Adopt publishes it and re-signs everything, and a
// client holding the first root (and one that cached the old metadata)
// walks to the new root and finds the old target and one the new server
// publishes.
func TestACopiedRepositoryIsAdoptedWithTheCustodiansRootAndClientsFollow(t *testing.T) {
	f := newFixture(t, NewMemStore())
	root1 := f.meta("1.root.json")
	cache := t.TempDir()
	if _, err := f.repo.SetRootField(f.ctx, "afterlife_log", map[string]any{"origin": "old.example/log"}); err != nil {
		t.Fatal(err)
	}
	files := thresholdRoot(t, f)
	old := f.publish("p/1/a", "old firmware")
	if _, err := f.client(root1, cache).GetTargetInfo(old.Path); err != nil {
		t.Fatal(err)
	}

	// The copy: every file of the old store, as a mirror holds them.
	copied := NewMemStore()
	for name, b := range f.store.(*MemStore).files {
		copied.files[name] = append([]byte(nil), b...)
	}
	keyDir := filepath.Join(t.TempDir(), "keys")
	expires := f.clock.now().Add(365 * 24 * time.Hour)
	proposal, err := ProposeRehome(f.meta("root.json"), keyDir, expires, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := DescribeRoot(proposal)
	if err != nil || sum.Version != 4 || sum.Threshold != 2 || len(sum.RootKeys) != 3 {
		t.Fatalf("the proposal is %+v (%v), want root version 4 kept by 2 of the same 3 keys", sum, err)
	}
	if strings.Contains(string(proposal), "afterlife_log") {
		t.Fatalf("the proposal keeps the old operator's log policy:\n%s", proposal)
	}

	t.Run("a root short of the custodians' threshold is refused", func(t *testing.T) {
		if _, err := Adopt(f.ctx, copied, keyDir, sign(t, proposal, files[0]), Options{Now: f.clock.now}); err == nil || !strings.Contains(err.Error(), "not signed by 2") {
			t.Fatalf("Adopt with one custodian's signature: %v", err)
		}
	})
	t.Run("a root another server proposed is refused", func(t *testing.T) {
		other, err := ProposeRehome(f.meta("root.json"), filepath.Join(t.TempDir(), "keys"), expires, nil)
		if err != nil {
			t.Fatal(err)
		}
		signed := sign(t, sign(t, other, files[0]), files[1])
		if _, err := Adopt(f.ctx, copied, keyDir, signed, Options{Now: f.clock.now}); err == nil || !strings.Contains(err.Error(), "did not propose") {
			t.Fatalf("Adopt of another server's proposal: %v", err)
		}
	})

	repo, err := Adopt(f.ctx, copied, keyDir, sign(t, sign(t, proposal, files[0]), files[2]), Options{Now: f.clock.now})
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if c, err := repo.Custody(f.ctx); err != nil || c.Version != 4 || c.ServerKey {
		t.Fatalf("custody after adoption = %+v, %v", c, err)
	}
	fresh := sha256.Sum256([]byte("new firmware"))
	nt := Target{Path: "p/2/a", Length: 12, SHA256: hex.EncodeToString(fresh[:]), Custom: map[string]any{"channel": "stable"}}
	if err := repo.Apply(f.ctx, []Target{nt}, nil); err != nil {
		t.Fatalf("the adopted repository publishes: %v", err)
	}
	oldRoot, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(f.meta("root.json"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/tuf/", repo.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for name, dir := range map[string]string{"a client that cached the old metadata": cache, "a fresh client from 1.root": t.TempDir()} {
		cfg, err := config.New(srv.URL+"/tuf", root1)
		if err != nil {
			t.Fatal(err)
		}
		cfg.LocalMetadataDir, cfg.LocalTargetsDir = filepath.Join(dir, "metadata"), filepath.Join(dir, "targets")
		up, err := updater.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		up.UnsafeSetRefTime(f.clock.now())
		for _, p := range []string{old.Path, nt.Path} {
			if _, err := up.GetTargetInfo(p); err != nil {
				t.Fatalf("%s: %s: %v", name, p, err)
			}
		}
		trusted := up.GetTrustedMetadataSet()
		if v := trusted.Root.Signed.Version; v != 4 {
			t.Fatalf("%s trusts root v%d, want v4", name, v)
		}
		if id := trusted.Root.Signed.Roles[metadata.TIMESTAMP].KeyIDs[0]; id == "" || listedIn(oldRoot, metadata.TIMESTAMP)(id) {
			t.Fatalf("%s trusts the old timestamp key", name)
		}
	}
}
