package farmhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
)

const marker = "POISONED-BY-ANOTHER-RECIPE"

// poisoner rewrites every file of the writable cache and plants entries in
// it, the way attack 1 of issue 11 rewrote the Go build cache entry of the
// standard library's strings package.
const poisoner = `name: cache-poisoner
version: 1.0.0
products: [demo-cam]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - mkdir -p /cache/go-build/00 && find /cache -type f -exec sh -c 'echo ` + marker + ` >> "$1"' _ {} \;
  - echo ` + marker + ` > /cache/go-build/00/strings-linux-arm-d && echo ` + marker + ` > /cache/planted
  - echo cache written > /out/out.txt
outputs:
  - {path: out.txt, kind: other}
limits: {timeout: 1m, memory: 256MiB}
`

// victim reads everything its /cache holds into its outputs, as a build
// linking cached objects would.
const victim = `name: unrelated-firmware
version: 1.0.0
products: [demo-cam]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - find /cache | sort > /out/listing.txt
  - find /cache -type f | sort | while read f; do cat "$f"; done > /out/cached.txt
  - echo built >> /out/cached.txt
outputs:
  - {path: listing.txt, kind: other}
  - {path: cached.txt, kind: other}
limits: {timeout: 1m, memory: 256MiB}
`

var cacheLine = regexp.MustCompile(`==> cache: (cold witness|warm, /cache key ([0-9a-f]+))`)

// Attack 1 of issue 11: a recipe's build step poisoned the builders' shared
// writable cache, and the next build of an unrelated recipe read it on
// every builder, so the builders agreed on the attacker's output.
func TestAPoisonedBuildCacheReachesNoOtherRecipe(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := startFarm(t, d, 2, 30*time.Second)
		ctx := context.Background()
		for i, op := range []string{"op-a", "op-b"} {
			secret, _ := f.builderToken(fmt.Sprint("poison-", i), op)
			f.startAgentWithToken(20+i, secret, filepath.Join(t.TempDir(), "cache"), nil)
		}
		// The attacker poisons twice, so that each builder has run it with
		// its warm cache at least once whichever job it took.
		var poisonIDs []string
		for i := range 2 {
			repo := gitRepo(t, filepath.Join(examples, "unreproducible"), map[string]string{"afterlife.yaml": poisoner, "round": fmt.Sprint(i)})
			res, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: repo})
			if err != nil {
				t.Fatal(err)
			}
			f.waitDecided(res.BuildID)
			poisonIDs = append(poisonIDs, res.BuildID)
		}
		poisonKeys := map[string]bool{}
		for _, id := range poisonIDs {
			b := f.waitDecided(id)[id]
			if b.State != verdict.Reproducible {
				t.Fatalf("poisoner build %s: %+v", id, b.Verdict)
			}
			for _, r := range b.Results {
				if key := f.cacheKey(b, r); key != "" {
					poisonKeys[key] = true
				}
			}
		}
		if len(poisonKeys) == 0 {
			t.Fatal("no poisoner job ran with a warm cache")
		}

		res, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: gitRepo(t, filepath.Join(examples, "unreproducible"), map[string]string{"afterlife.yaml": victim})})
		if err != nil {
			t.Fatal(err)
		}
		b := f.waitDecided(res.BuildID)[res.BuildID]
		t.Run("the unrelated recipe reads none of the poisoned entries", func(t *testing.T) {
			if len(b.Results) != 2 {
				t.Fatalf("victim results: %+v", b.Results)
			}
			for _, r := range b.Results {
				for _, o := range r.Outputs {
					content := f.blobText(o.Digest)
					if strings.Contains(content, marker) || strings.Contains(content, "planted") || strings.Contains(content, "strings-linux-arm") {
						t.Fatalf("job %s output %s shows the poison:\n%s", r.JobID, o.Path, content)
					}
				}
			}
		})
		t.Run("its warm job used a cache of its own repository, not the poisoner's", func(t *testing.T) {
			warm := 0
			for _, r := range b.Results {
				key := f.cacheKey(b, r)
				if key == "" {
					continue
				}
				warm++
				if poisonKeys[key] {
					t.Fatalf("job %s used the poisoner's cache %s", r.JobID, key)
				}
			}
			if warm != 1 {
				t.Fatalf("%d warm jobs, want one beside the cold witness", warm)
			}
		})
		t.Run("one job is the cold witness, and the verdict names it", func(t *testing.T) {
			if b.State != verdict.Reproducible || b.Verdict.ColdJob == "" {
				t.Fatalf("verdict %+v, want reproducible with a cold witness", b.Verdict)
			}
			for _, r := range b.Results {
				if r.Cold != (r.JobID == b.Verdict.ColdJob) {
					t.Fatalf("result %s cold = %v, the verdict names %s", r.JobID, r.Cold, b.Verdict.ColdJob)
				}
				if r.Cold {
					f.checkAttestation(b, r)
				}
			}
		})
	})
}

// cacheKey is the warm cache a job's log says it used; "" for the cold
// witness. A job's log without a cache line fails the test.
func (f *testFarm) cacheKey(b coord.Build, r coord.Result) string {
	f.t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/builds/%s/jobs/%s/log", f.url, b.ID, r.JobID))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var chunk struct {
		Data string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&chunk); err != nil {
		f.t.Fatal(err)
	}
	m := cacheLine.FindStringSubmatch(chunk.Data)
	if m == nil {
		f.t.Fatalf("log of job %s names no cache:\n%s", r.JobID, chunk.Data)
	}
	if (m[1] == "cold witness") != r.Cold {
		f.t.Fatalf("job %s: log says %q, result cold = %v", r.JobID, m[1], r.Cold)
	}
	return m[2]
}

func (f *testFarm) blobText(d blob.Digest) string {
	f.t.Helper()
	rc, err := f.store.Get(context.Background(), d, 0, -1)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}
