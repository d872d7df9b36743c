package submit_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/inputkind"
	"github.com/afterlife-oss/afterlife/recipes/submit"
)

// builds stands in for the farm: one build per repository, commit and path.
type builds struct {
	mu   sync.Mutex
	reqs map[string]submit.BuildRequest
}

func (b *builds) CreateBuild(_ context.Context, r submit.BuildRequest) (string, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := r.RepoURL + "@" + r.Commit + ":" + r.Path
	if _, ok := b.reqs[key]; ok {
		return key, false, nil
	}
	b.reqs[key] = r
	return key, true, nil
}

// releasedSet maps digests to their class: "public" or "build-only"
// (a digest it lacks is sealed, private or unknown).
type releasedSet map[string]string

func (s releasedSet) ReleasedFile(_ context.Context, d string) (int64, bool, bool, error) {
	return 1, s[d] == "build-only", s[d] != "", nil
}

func repo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := r.Worktree()
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "m", Email: "m@example.org", When: time.Unix(1710000000, 0)}
	if _, err := wt.Commit("recipe", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir
}

const digest = "sha256:c112eec270e821f2a5c5087861a34beff7f1ff39e7aa7e7d8814e34bfa23802b"

const recipe = `name: demo
version: 1.0.0
products: [demo-cam]
license: CC0-1.0
toolchain: {name: busybox}
inputs:
  escrow:
    - {digest: "` + digest + `", as: vendor/main.c}
steps:
  - cp /inputs/escrow/vendor/main.c /out/main.c
outputs:
  - {path: main.c, kind: other}
`

func TestSubmit(t *testing.T) {
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := repo(t, map[string]string{"afterlife.yaml": recipe, "build.sh": "true\n"})
	cases := []struct {
		name     string
		released releasedSet
		local    bool
		wantKind errs.Kind
		wantText string
	}{
		{"a recipe whose escrow input is released becomes a build", releasedSet{digest: "public"}, true, 0, ""},
		{"a sealed, private or missing escrow input is refused by digest", releasedSet{}, true, errs.Conflict, digest},
		{"a build-only escrow input the recipe does not declare is refused", releasedSet{digest: "build-only"}, true, errs.Conflict, "rights: build-only"},
		{"a local repository is refused unless allowed", releasedSet{digest: "public"}, false, errs.Invalid, "https"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &builds{reqs: map[string]submit.BuildRequest{}}
			s, err := submit.New(submit.Options{Store: store, Released: c.released, Builds: b, AllowLocal: c.local, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Submit(context.Background(), submit.Request{RepoURL: url, Ref: "master", RequestedBy: "maintainer:m"})
			if c.wantText != "" {
				if !errs.Is(err, c.wantKind) || !strings.Contains(err.Error(), c.wantText) {
					t.Fatalf("got %v, want a %s error naming %s", err, c.wantKind, c.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			req := b.reqs[res.BuildID]
			if !res.Created || len(res.Commit) != 40 || req.SourceDateEpoch != 1710000000 {
				t.Fatalf("result %+v, epoch %d (want the commit time)", res, req.SourceDateEpoch)
			}
			if len(req.Inputs) != 1 || req.Inputs[0].Mount != "escrow/vendor/main.c" || req.Inputs[0].Kind != inputkind.Escrow {
				t.Fatalf("inputs %+v", req.Inputs)
			}
			if _, err := store.Stat(context.Background(), req.Source); err != nil {
				t.Fatalf("the source archive is not stored: %v", err)
			}
			again, err := s.Submit(context.Background(), submit.Request{RepoURL: url, Ref: res.Commit})
			if err != nil || again.BuildID != res.BuildID || again.Created || again.Source != res.Source {
				t.Fatalf("re-submitting the same commit: %+v, %v", again, err)
			}
		})
	}
}

func TestADeclaredBuildOnlyInputBecomesAJobScopedInput(t *testing.T) {
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	declared := strings.Replace(recipe, `as: vendor/main.c}`, `as: vendor/main.c, rights: build-only}`, 1)
	url := repo(t, map[string]string{"afterlife.yaml": declared})
	b := &builds{reqs: map[string]submit.BuildRequest{}}
	s, err := submit.New(submit.Options{Store: store, Released: releasedSet{digest: "build-only"}, Builds: b, AllowLocal: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Submit(context.Background(), submit.Request{RepoURL: url, Ref: "master", RequestedBy: "maintainer:m"})
	if err != nil {
		t.Fatal(err)
	}
	if in := b.reqs[res.BuildID].Inputs; len(in) != 1 || !in[0].BuildOnly {
		t.Fatalf("inputs %+v: want one build-only input", in)
	}
}

func TestAnInvalidRecipeIsRefusedWithItsProblems(t *testing.T) {
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := repo(t, map[string]string{"sub/afterlife.yaml": "name: demo\nversion: 1\n"})
	s, err := submit.New(submit.Options{Store: store, Released: releasedSet{}, Builds: &builds{reqs: map[string]submit.BuildRequest{}}, AllowLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Submit(context.Background(), submit.Request{RepoURL: url, Path: "sub/afterlife.yaml"})
	if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "steps") {
		t.Fatalf("got %v, want an Invalid error listing the missing steps", err)
	}
}

func TestARecipeAboveTheServersMaximaIsRefusedNamingTheLimit(t *testing.T) {
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := repo(t, map[string]string{"afterlife.yaml": recipe + "limits: {timeout: 12h, memory: 64GiB, cpus: 64}\n"})
	b := &builds{reqs: map[string]submit.BuildRequest{}}
	s, err := submit.New(submit.Options{Store: store, Released: releasedSet{digest: "public"}, Builds: b, AllowLocal: true, TempDir: t.TempDir(), Maxima: recipes.DefaultMaxima})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Submit(context.Background(), submit.Request{RepoURL: url, Ref: "master"})
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("got %v, want an Invalid refusal", err)
	}
	for _, want := range []string{"(max-build-timeout)", "(max-build-memory)", "(max-build-cpus)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name %s", err, want)
		}
	}
	if len(b.reqs) != 0 {
		t.Fatalf("a build was created: %+v", b.reqs)
	}
}

func TestASubmissionRunningAnUndeclaredSBOMGeneratorIsRefusedBeforeAnyBuild(t *testing.T) {
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	withScript := `name: demo
version: 1.0.0
products: [demo-cam]
license: CC0-1.0
toolchain: {name: busybox}
inputs:
  escrow:
    - {digest: "` + digest + `", as: vendor/main.c}
steps:
  - cp /inputs/escrow/vendor/main.c /out/main.c
  - sh tools/sbom.sh
outputs:
  - {path: main.c, kind: other}
  - {path: main.spdx.json, kind: sbom}
`
	script := "#!/bin/sh\nsyft scan dir:/inputs -o spdx-json=/out/main.spdx.json\n"
	for _, c := range []struct {
		name, tools string
		refused     bool
	}{
		{"undeclared, it is refused naming the script", "", true},
		{"declared and pinned, it is queued", "tools: [{name: syft, version: v1.57.2}]\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := repo(t, map[string]string{"afterlife.yaml": withScript + c.tools, "tools/sbom.sh": script})
			b := &builds{reqs: map[string]submit.BuildRequest{}}
			s, err := submit.New(submit.Options{Store: store, Released: releasedSet{digest: "public"}, Builds: b, AllowLocal: true, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Submit(context.Background(), submit.Request{RepoURL: url, Ref: "master"})
			if c.refused {
				if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "runs syft (in tools/sbom.sh), which the recipe does not declare") || len(b.reqs) != 0 {
					t.Fatalf("got %v and %d builds", err, len(b.reqs))
				}
				return
			}
			if err != nil || len(b.reqs) != 1 {
				t.Fatalf("got %v and %d builds", err, len(b.reqs))
			}
		})
	}
}
