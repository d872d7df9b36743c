package recipes

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// testRepo is a real git repository made with go-git, with a history that
// covers what Fetch must resolve.
type testRepo struct {
	dir                  string
	first, second, third plumbing.Hash // commits on main, main, and branch "dev"
	times                [3]time.Time
	longPath             string
}

func sig(when time.Time) *object.Signature {
	return &object.Signature{Name: "Maintainer", Email: "m@example.org", When: when}
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	r := &testRepo{dir: t.TempDir()}
	repo, err := git.PlainInitWithOptions(r.dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	commit := func(msg string, when time.Time) plumbing.Hash {
		t.Helper()
		if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
			t.Fatal(err)
		}
		h, err := wt.Commit(msg, &git.CommitOptions{Author: sig(when), Committer: sig(when)})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	r.times = [3]time.Time{
		time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2024, 2, 3, 4, 5, 6, 0, time.FixedZone("CET", 3600)),
		time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC),
	}
	writeFile(t, r.dir, "afterlife.yaml", minimal, 0o644)
	writeFile(t, r.dir, "build.sh", "#!/bin/sh\necho build\n", 0o755)
	r.first = commit("first", r.times[0])

	r.longPath = strings.Repeat("deep/", 25) + "file.txt"
	writeFile(t, r.dir, r.longPath, "long\n", 0o644)
	writeFile(t, r.dir, "src/main.c", "int main(void) { return 0; }\n", 0o644)
	if err := os.Symlink("src/main.c", filepath.Join(r.dir, "main-link.c")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret.yaml", filepath.Join(r.dir, "outside.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.dir, "afterlife.yaml", strings.Replace(minimal, `version: "2"`, `version: "3"`, 1), 0o644)
	r.second = commit("second", r.times[1])
	if _, err := repo.CreateTag("v1.0", r.first, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateTag("v2.0", r.second, &git.CreateTagOptions{Tagger: sig(r.times[1]), Message: "release 2"}); err != nil {
		t.Fatal(err)
	}

	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("dev"), Create: true}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.dir, "dev.txt", "dev\n", 0o644)
	r.third = commit("third", r.times[2])
	// Leave main checked out so that it is the default branch.
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("main")}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFetchResolvesEveryKindOfRef(t *testing.T) {
	r := newTestRepo(t)
	tests := []struct {
		name string
		url  string
		ref  string
		want plumbing.Hash
		when time.Time
	}{
		{"the default branch is used when no ref is given", "file://" + r.dir, "", r.second, r.times[1]},
		{"a branch resolves to its tip", "file://" + r.dir, "dev", r.third, r.times[2]},
		{"a lightweight tag resolves to its commit", "file://" + r.dir, "v1.0", r.first, r.times[0]},
		{"an annotated tag is peeled to its commit", "file://" + r.dir, "v2.0", r.second, r.times[1]},
		{"a full commit id resolves to itself", "file://" + r.dir, r.first.String(), r.first, r.times[0]},
		{"an abbreviated commit id resolves", "file://" + r.dir, r.third.String()[:8], r.third, r.times[2]},
		{"a full ref name resolves", "file://" + r.dir, "refs/tags/v1.0", r.first, r.times[0]},
		{"a plain local path works like file://", r.dir, "main", r.second, r.times[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "co")
			co, err := localFetcher.Fetch(context.Background(), tt.url, tt.ref, dir)
			if err != nil {
				t.Fatal(err)
			}
			if co.Commit != tt.want.String() {
				t.Errorf("commit = %s, want %s", co.Commit, tt.want)
			}
			if !co.CommitTime.Equal(tt.when) || co.CommitTime.Location() != time.UTC {
				t.Errorf("commit time = %v, want %v in UTC", co.CommitTime, tt.when)
			}
			if co.Dir != dir {
				t.Errorf("dir = %s", co.Dir)
			}
			_, devErr := os.Stat(filepath.Join(dir, "dev.txt"))
			if (tt.want == r.third) != (devErr == nil) {
				t.Errorf("worktree does not match the commit (dev.txt: %v)", devErr)
			}
			rec, err := ReadRecipe(co, "")
			if err != nil {
				t.Fatal(err)
			}
			wantVersion := "3"
			if tt.want == r.first {
				wantVersion = "2"
			}
			if rec.Version != wantVersion {
				t.Errorf("recipe version = %s, want %s", rec.Version, wantVersion)
			}
		})
	}
}

func TestFetchRefusals(t *testing.T) {
	r := newTestRepo(t)
	full := t.TempDir()
	writeFile(t, full, "x", "", 0o644)
	tests := []struct {
		name string
		url  string
		ref  string
		dir  string
		kind errs.Kind
	}{
		{"an unknown branch is not found", "file://" + r.dir, "nope", "", errs.NotFound},
		{"an unknown commit is not found", "file://" + r.dir, strings.Repeat("a", 40), "", errs.NotFound},
		{"a ref with .. is invalid", "file://" + r.dir, "../../config", "", errs.Invalid},
		{"a ref starting with - is invalid", "file://" + r.dir, "-x", "", errs.Invalid},
		{"a missing repository is not found", "file://" + filepath.Join(r.dir, "missing"), "", "", errs.NotFound},
		{"a non-empty target directory is a conflict", "file://" + r.dir, "", full, errs.Conflict},
		{"an ssh URL is invalid", "ssh://example.org/x.git", "", "", errs.Invalid},
		{"a remote file URL is invalid", "file://host.example/x", "", "", errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "co")
			}
			_, err := localFetcher.Fetch(context.Background(), tt.url, tt.ref, dir)
			if !errs.Is(err, tt.kind) {
				t.Fatalf("err = %v (%v), want kind %v", err, errs.KindOf(err), tt.kind)
			}
			if tt.dir == "" {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed fetch left %s behind", dir)
				}
			}
		})
	}
}

func TestFetchStopsWhenTheContextEnds(t *testing.T) {
	r := newTestRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := localFetcher.Fetch(ctx, r.dir, "", filepath.Join(t.TempDir(), "co"))
	if !errs.Is(err, errs.Unavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestReadRecipeStaysInsideTheCheckout(t *testing.T) {
	r := newTestRepo(t)
	base := t.TempDir()
	co, err := localFetcher.Fetch(context.Background(), r.dir, "main", filepath.Join(base, "co"))
	if err != nil {
		t.Fatal(err)
	}
	// outside.yaml links to ../secret.yaml: a valid recipe, outside.
	writeFile(t, base, "secret.yaml", minimal, 0o644)
	tests := []struct {
		path string
		kind errs.Kind
	}{
		{"../afterlife.yaml", errs.Invalid},
		{"/etc/passwd", errs.Invalid},
		{"outside.yaml", errs.Invalid}, // a symlink to ../secret.yaml
		{"missing.yaml", errs.NotFound},
		{"build.sh", errs.Invalid}, // not a recipe
	}
	for _, tt := range tests {
		t.Run("reading "+tt.path+" fails", func(t *testing.T) {
			_, err := ReadRecipe(co, tt.path)
			if !errs.Is(err, tt.kind) {
				t.Errorf("err = %v (%v), want %v", err, errs.KindOf(err), tt.kind)
			}
		})
	}
}

func archiveBytes(t *testing.T, dir, commit string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Archive(context.Background(), dir, commit, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestArchiveIsTheSameFromTwoClones(t *testing.T) {
	r := newTestRepo(t)
	co1, err := localFetcher.Fetch(context.Background(), "file://"+r.dir, "v2.0", filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	co2, err := localFetcher.Fetch(context.Background(), r.dir, r.second.String()[:10], filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	// Make the second worktree differ on disk: Archive must read the commit,
	// not the files.
	writeFile(t, co2.Dir, "untracked.txt", "noise", 0o600)
	if err := os.Chtimes(filepath.Join(co2.Dir, "build.sh"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	a := archiveBytes(t, co1.Dir, co1.Commit)
	b := archiveBytes(t, co2.Dir, co2.Commit)
	if !bytes.Equal(a, b) {
		t.Fatalf("archives of one commit differ: %d vs %d bytes", len(a), len(b))
	}
	if c := archiveBytes(t, r.dir, r.second.String()); !bytes.Equal(a, c) {
		t.Fatal("archive of the original repository differs from the clones'")
	}

	type entry struct {
		typ      byte
		mode     int64
		linkname string
	}
	want := map[string]entry{
		"afterlife.yaml": {tar.TypeReg, 0o644, ""},
		"build.sh":       {tar.TypeReg, 0o755, ""},
		"deep/":          {tar.TypeDir, 0o755, ""},
		r.longPath:       {tar.TypeReg, 0o644, ""},
		"main-link.c":    {tar.TypeSymlink, 0o777, "src/main.c"},
		"outside.yaml":   {tar.TypeSymlink, 0o777, "../secret.yaml"},
		"src/":           {tar.TypeDir, 0o755, ""},
		"src/main.c":     {tar.TypeReg, 0o644, ""},
	}
	tr := tar.NewReader(bytes.NewReader(a))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: owner %d/%d %q/%q", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		if !hdr.ModTime.Equal(r.times[1]) {
			t.Errorf("%s: mtime %v, want the commit time %v", hdr.Name, hdr.ModTime, r.times[1])
		}
		if len(hdr.PAXRecords) > 0 && hdr.Name != r.longPath {
			t.Errorf("%s: unexpected PAX records %v", hdr.Name, hdr.PAXRecords)
		}
		if strings.HasPrefix(hdr.Name, ".git") {
			t.Errorf("archive holds %s", hdr.Name)
		}
		if w, ok := want[hdr.Name]; ok {
			if hdr.Typeflag != w.typ || hdr.Mode != w.mode || hdr.Linkname != w.linkname {
				t.Errorf("%s: type %c mode %o link %q, want %c %o %q", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Linkname, w.typ, w.mode, w.linkname)
			}
			delete(want, hdr.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("archive lacks %v", want)
	}
	for i := 1; i < len(names); i++ {
		if strings.TrimSuffix(names[i-1], "/") >= strings.TrimSuffix(names[i], "/") {
			t.Errorf("entries out of order: %q before %q", names[i-1], names[i])
		}
	}
}

func TestArchiveThenExtractGivesTheCommitsTree(t *testing.T) {
	r := newTestRepo(t)
	a := archiveBytes(t, r.dir, r.second.String())
	// The archive holds a symlink out of the tree, which Extract refuses;
	// drop it to check the rest of the round trip.
	var filtered bytes.Buffer
	tw := tar.NewWriter(&filtered)
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "outside.yaml" {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()

	dir := filepath.Join(t.TempDir(), "x")
	if err := Extract(&filtered, dir, ExtractLimits{}); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		path    string
		content string
		mode    os.FileMode
	}{
		{"build.sh", "#!/bin/sh\necho build\n", 0o755},
		{"src/main.c", "int main(void) { return 0; }\n", 0o644},
		{"main-link.c", "int main(void) { return 0; }\n", 0o644},
		{r.longPath, "long\n", 0o644},
	}
	for _, c := range checks {
		b, err := os.ReadFile(filepath.Join(dir, c.path))
		if err != nil || string(b) != c.content {
			t.Errorf("%s = %q, %v", c.path, b, err)
		}
		fi, err := os.Stat(filepath.Join(dir, c.path))
		if err != nil || fi.Mode().Perm() != c.mode {
			t.Errorf("%s mode = %v, want %v", c.path, fi.Mode(), c.mode)
		}
		if !fi.ModTime().Equal(r.times[1]) {
			t.Errorf("%s mtime = %v", c.path, fi.ModTime())
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "main-link.c")); err != nil || target != "src/main.c" {
		t.Errorf("main-link.c -> %q, %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "src")); err != nil || !fi.ModTime().Equal(r.times[1]) {
		t.Errorf("src dir mtime = %v, %v", fi.ModTime(), err)
	}
}

func TestArchiveRefusesAnUnknownCommit(t *testing.T) {
	r := newTestRepo(t)
	for _, c := range []struct {
		commit string
		kind   errs.Kind
	}{{"abc", errs.Invalid}, {strings.Repeat("0", 40), errs.NotFound}} {
		if err := Archive(context.Background(), r.dir, c.commit, io.Discard); !errs.Is(err, c.kind) {
			t.Errorf("Archive(%s) = %v, want %v", c.commit, err, c.kind)
		}
	}
}

// localFetcher reads the repositories these tests make on disk.
var localFetcher = Fetcher{AllowLocal: true}
