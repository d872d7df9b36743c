package recipes

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/recipes/examples"
)

func TestCommitTreeMakesAFetchableRepository(t *testing.T) {
	ctx := context.Background()
	src, err := examples.Dir("afterlife-cam")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	when := time.Unix(1_700_000_000, 0)
	commit, err := CommitTree(ctx, dir, src, "afterlife-cam example", when)
	if err != nil {
		t.Fatal(err)
	}
	again, err := CommitTree(ctx, dir, src, "unchanged", when.Add(time.Hour))
	if err != nil || again != commit {
		t.Fatalf("committing the same tree again gave %s, %v; want the same commit %s", again, err, commit)
	}
	co, err := localFetcher.Fetch(ctx, "file://"+dir, "HEAD", filepath.Join(t.TempDir(), "clone"))
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != commit {
		t.Fatalf("fetched %s, committed %s", co.Commit, commit)
	}
	r, err := ReadRecipe(co, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "afterlife-cam" || r.Products[0] != "demo-cam" {
		t.Fatalf("recipe %s for %v", r.Name, r.Products)
	}
}
