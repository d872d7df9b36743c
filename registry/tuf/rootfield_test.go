package tuf

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestARootFieldIsPublishedAsANewRootVersionOnlyWhenItChanges(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	repo, err := Open(ctx, store, filepath.Join(t.TempDir(), "keys"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	version := func() int64 {
		t.Helper()
		root, err := getMeta[metadata.RootType](ctx, store, "root.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
			t.Fatalf("the root does not verify with its own keys: %v", err)
		}
		return root.Signed.Version
	}
	v0 := version()
	value := map[string]any{"log_key": "example.org/log+01020304+AQ==", "quorum": 1}
	for i, want := range []struct {
		changed bool
		version int64
	}{{true, v0 + 1}, {false, v0 + 1}} {
		changed, err := repo.SetRootField(ctx, "afterlife_log", value)
		if err != nil || changed != want.changed || version() != want.version {
			t.Fatalf("call %d: changed %v, %v, version %d; want changed %v, version %d", i+1, changed, err, version(), want.changed, want.version)
		}
	}
	got, err := repo.RootField(ctx, "afterlife_log")
	if m, ok := got.(map[string]any); err != nil || !ok || m["quorum"] != float64(1) {
		t.Fatalf("root field: %v %v", got, err)
	}

	// A root of a threshold of keys is not signed with one.
	st, err := repo.load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := copyRoot(st.root)
	root.Signed.Roles[metadata.ROOT].Threshold = 2
	data, _ := root.ToBytes(false)
	if err := store.PutMeta(ctx, "root.json", data); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.SetRootField(ctx, "afterlife_log", map[string]any{"quorum": 2}); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("a threshold root was signed with one key: %v", err)
	}
}
