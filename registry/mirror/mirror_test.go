package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// tufOrigin is a registry of TUF metadata and n targets only, served over
// HTTP by the real repository's handler.
func tufOrigin(t *testing.T, n int, now time.Time) (*httptest.Server, *tuf.Repo) {
	t.Helper()
	ctx := context.Background()
	repo, err := tuf.Open(ctx, tuf.NewMemStore(), filepath.Join(t.TempDir(), "keys"), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	var add []tuf.Target
	for i := range n {
		content := fmt.Sprintf("firmware %d\n", i)
		sum := sha256.Sum256([]byte(content))
		h := hex.EncodeToString(sum[:])
		p := fmt.Sprintf("prod/1.%d.0/fw.bin", i)
		add = append(add, tuf.Target{Path: p, Length: int64(len(content)), SHA256: h, Custom: map[string]any{"afterlife": 1, "product": "prod", "version": fmt.Sprintf("1.%d.0", i)}})
		files["/tuf/targets/prod/1."+fmt.Sprint(i)+".0/"+h+".fw.bin"] = content
	}
	if err := repo.Apply(ctx, add, nil); err != nil {
		t.Fatal(err)
	}
	meta := repo.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := files[r.URL.Path]; ok {
			http.ServeContent(w, r, "", time.Time{}, strings.NewReader(c))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/tuf/") {
			meta.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"not_found","message":"no such thing"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, repo
}

func TestVerifySaysWhenAMirrorIsStaleAndWhichRootItCannotFollow(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	srv, _ := tufOrigin(t, 3, now)
	dir := t.TempDir()
	res, err := Pull(context.Background(), PullOptions{From: srv.URL, Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Targets != 3 {
		t.Fatalf("pulled %d targets, want 3", res.Targets)
	}
	root, err := os.ReadFile(filepath.Join(dir, "tuf", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		at          time.Time
		wantExpired bool
	}{
		{"a mirror pulled an hour ago is fresh", now.Add(time.Hour), false},
		{"a mirror whose timestamp expired says it is stale", now.Add(48 * time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Verify(context.Background(), dir, root, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Expired != tc.wantExpired || rep.Targets != 3 || !rep.TimestampExpires.After(now) {
				t.Fatalf("report %+v, want no failures, 3 targets, expired=%v", rep, tc.wantExpired)
			}
		})
	}
	t.Run("a root that is not the mirror's is named", func(t *testing.T) {
		other, _ := tufOrigin(t, 1, now)
		odir := t.TempDir()
		if _, err := Pull(context.Background(), PullOptions{From: other.URL, Dir: odir}); err != nil {
			t.Fatal(err)
		}
		otherRoot, err := os.ReadFile(filepath.Join(odir, "tuf", "1.root.json"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(context.Background(), dir, otherRoot, now)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || rep.Failures[0].File != "tuf/1.root.json" {
			t.Fatalf("verify with another registry's root: %+v", rep.Failures)
		}
	})
	t.Run("a pull with nothing new downloads nothing", func(t *testing.T) {
		res, err := Pull(context.Background(), PullOptions{From: srv.URL, Dir: dir, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if res.Files != 0 || res.Kept < 3+256 {
			t.Fatalf("second pull %+v: want nothing downloaded", res)
		}
	})
}

func TestTilePathsCoverTheTree(t *testing.T) {
	for _, tc := range []struct {
		size uint64
		want []string
	}{
		{1, []string{"tile/entries/000.p/1", "tile/0/000.p/1"}},
		{256, []string{"tile/entries/000", "tile/0/000", "tile/1/000.p/1"}},
		{600, []string{"tile/entries/000", "tile/entries/001", "tile/entries/002.p/88", "tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2"}},
	} {
		t.Run(fmt.Sprintf("a tree of %d entries", tc.size), func(t *testing.T) {
			if got := tilePaths(tc.size); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("tilePaths(%d) = %v, want %v", tc.size, got, tc.want)
			}
		})
	}
}
