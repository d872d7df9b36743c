package agent_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/agent"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func sourceTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	tw.Close()
	return buf.Bytes()
}

// runOne queues a build of steps (quorum 1) and runs one agent on it
// in-process until stop says the test has seen enough.
func runOne(t *testing.T, d *db.DB, steps []string, stop func(ctx context.Context, c *coord.Service, buildID string) bool) (*coord.Service, string) {
	t.Helper()
	c, id, _ := runOneWith(t, d, steps, builder.Limits{TimeoutSeconds: 60}, nil, stop)
	return c, id
}

// runOneWith is runOne with the build's limits and a change to the agent's
// options; it also returns the farm's blob store.
func runOneWith(t *testing.T, d *db.DB, steps []string, limits builder.Limits, opts func(*agent.Options), stop func(ctx context.Context, c *coord.Service, buildID string) bool) (*coord.Service, string, blob.Store) {
	t.Helper()
	if err := sandbox.Available(); err != nil {
		t.Fatalf("%v (run scripts/test-deps.sh)", err)
	}
	ctx := context.Background()
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	au, err := auth.New(ctx, d, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := coord.New(ctx, coord.Options{DB: d, Store: store, Operators: au, Quorum: 1, Recheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := au.CreateOrg(ctx, "alice", "", "operator"); err != nil && !errs.Is(err, errs.Conflict) {
		t.Fatal(err)
	}
	_, tok, err := au.CreateToken(ctx, auth.TokenSpec{Name: "a", Role: principal.Builder, Operator: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	src, err := store.Put(ctx, bytes.NewReader(sourceTar(t, map[string]string{"build.sh": "echo built > /out/out.txt\n"})), "")
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := c.CreateBuild(ctx, coord.NewBuild{Spec: builder.Spec{
		Recipe:    builder.RecipeRef{Name: "t", Version: "1", RepoURL: "https://example.org/t.git", Commit: fmt.Sprintf("%040x", time.Now().UnixNano()), Path: "afterlife.yaml"},
		Toolchain: builder.ToolchainReq{Name: toolchain.Busybox}, Steps: steps,
		Outputs: []builder.Output{{Path: "out.txt", Kind: "other"}}, Source: src.Digest,
		Limits: limits,
	}})
	if err != nil {
		t.Fatal(err)
	}
	tcs, err := toolchain.Detect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	o := agent.Options{
		Logger:      testenv.Logger(t),
		Coordinator: c.Local(tok.ID), Key: key, Name: "a",
		WorkDir: filepath.Join(t.TempDir(), "work"), CacheDir: filepath.Join(t.TempDir(), "cache"),
		Toolchains: tcs, PollWait: 200 * time.Millisecond, LogFlush: 50 * time.Millisecond,
		Extract: func(r io.Reader, dir string) error { return recipes.Extract(r, dir, recipes.ExtractLimits{}) },
	}
	if opts != nil {
		opts(&o)
	}
	a, err := agent.New(o)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	err = testenv.Poll(runCtx, time.Minute, func() error {
		if !stop(runCtx, c, id) {
			return errors.New("the agent has not got there")
		}
		return nil
	})
	cancel()
	if err != nil {
		<-done
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return c, id, store
}

func decided(ctx context.Context, c *coord.Service, id string) bool {
	v, err := c.Verdict(ctx, id)
	return err == nil && v.State != verdict.Pending
}

func TestAnAgentBuildsAndReports(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		cases := []struct {
			name   string
			steps  []string
			want   verdict.State
			reason string
		}{
			{"a build that succeeds leaves an attested result", []string{"sh build.sh"}, verdict.Reproducible, ""},
			{"a failing step is reported with its status", []string{"exit 3"}, verdict.Failed, "step 1 exited with status 3"},
			{"a missing output is reported by name", []string{"true"}, verdict.Failed, "output out.txt was not produced"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, id := runOne(t, d, tc.steps, func(ctx context.Context, c *coord.Service, id string) bool { return decided(ctx, c, id) })
				b, err := c.Build(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if len(b.Results) != 1 {
					t.Fatalf("results %+v", b.Results)
				}
				r := b.Results[0]
				got := r.Reason
				if !r.Failed {
					// Quorum 1: one attested result decides.
					if b.State != tc.want || r.Attestation == "" || len(r.Outputs) != 1 {
						t.Fatalf("build %s, result %+v", b.State, r)
					}
					return
				}
				if b.State != tc.want || !bytes.Contains([]byte(got), []byte(tc.reason)) {
					t.Fatalf("build %s, reason %q; want %s with %q", b.State, got, tc.want, tc.reason)
				}
				chunk, err := c.Log(context.Background(), r.JobID, 0)
				if err != nil || !bytes.Contains(chunk.Data, []byte("==> step 1/1")) {
					t.Fatalf("live log %q, %v", chunk.Data, err)
				}
			})
		}
	})
}

func TestAStoppedAgentGivesItsJobBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		started := func(ctx context.Context, c *coord.Service, id string) bool {
			b, err := c.Build(ctx, id)
			if err != nil || b.Jobs[0].State != coord.JobLeased {
				return false
			}
			chunk, err := c.Log(ctx, b.Jobs[0].ID, 0)
			return err == nil && bytes.Contains(chunk.Data, []byte("==> step 1/1"))
		}
		c, id := runOne(t, d, []string{"sleep 30"}, started)
		b, err := c.Build(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j := b.Jobs[0]; j.State != coord.JobQueued || j.Attempts != 0 || len(b.Results) != 0 {
			t.Fatalf("after the agent stopped the job is %+v with results %+v", j, b.Results)
		}
	})
}

func TestABuildIsBoundedByTheBuildersMaxima(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		result := func(t *testing.T, c *coord.Service, id string) coord.Result {
			t.Helper()
			b, err := c.Build(context.Background(), id)
			if err != nil || len(b.Results) != 1 {
				t.Fatalf("build %+v, %v", b, err)
			}
			return b.Results[0]
		}
		t.Run("a 200 MB log is stored as its head and tail with a note", func(t *testing.T) {
			const limit = 1 << 20
			steps := []string{"echo FIRST LINE OF THE LOG; yes 'a noisy build line 0123456789abcdef' | head -c 200000000; echo; echo LAST LINE OF THE LOG; exit 1"}
			c, id, store := runOneWith(t, d, steps, builder.Limits{TimeoutSeconds: 120}, func(o *agent.Options) { o.MaxLogBytes = limit },
				func(ctx context.Context, c *coord.Service, id string) bool { return decided(ctx, c, id) })
			r := result(t, c, id)
			if !r.Failed || r.Log == "" {
				t.Fatalf("result %+v", r)
			}
			rc, err := store.Get(context.Background(), r.Log, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			stored, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			// The cap holds the sandbox's output; the agent's own lines
			// (header, limits, verdict) add a few hundred bytes.
			if len(stored) > limit+4096 {
				t.Fatalf("the stored log is %d bytes, the limit is %d", len(stored), limit)
			}
			for _, want := range []string{"FIRST LINE OF THE LOG", "LAST LINE OF THE LOG", "==> log truncated: ", "==> limit log: 1048576 bytes"} {
				if !bytes.Contains(stored, []byte(want)) {
					t.Errorf("the stored log lacks %q", want)
				}
			}
		})
		for _, tc := range []struct {
			name, step    string
			limits        builder.Limits
			reason, limit string
		}{
			{"a bounded fork loop fails the build naming the process limit and the pids cgroup",
				`i=0; while [ $i -lt 200 ]; do sleep 3 & i=$((i+1)); done`, builder.Limits{TimeoutSeconds: 60, Processes: 64},
				"(process limit 64 reached: pids cgroup)", "==> limit processes: pids cgroup"},
			{"a memory hog fails the build naming the memory limit and the memory cgroup",
				`awk 'BEGIN { s = "x"; while (length(s) < 134217728) s = s s }'`, builder.Limits{TimeoutSeconds: 60, MemoryBytes: 64 << 20},
				"(memory limit 67108864 bytes reached: memory cgroup)", "==> limit memory: memory cgroup"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, id, store := runOneWith(t, d, []string{tc.step}, tc.limits, nil,
					func(ctx context.Context, c *coord.Service, id string) bool { return decided(ctx, c, id) })
				r := result(t, c, id)
				b, err := c.Build(context.Background(), id)
				if err != nil || b.State != verdict.Failed || !r.Failed || !strings.Contains(r.Reason, tc.reason) {
					t.Fatalf("build %s, result %+v (%v): want failed with %q", b.State, r, err, tc.reason)
				}
				rc, err := store.Get(context.Background(), r.Log, 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				log, _ := io.ReadAll(rc)
				if !bytes.Contains(log, []byte(tc.limit)) {
					t.Fatalf("the build log does not say how the limit was enforced (%q):\n%s", tc.limit, log)
				}
				t.Logf("verdict %s: %s", b.State, r.Reason)
			})
		}
		t.Run("a job asking for more memory than the builder allows is refused naming the limit", func(t *testing.T) {
			c, id, _ := runOneWith(t, d, []string{"sh build.sh"}, builder.Limits{TimeoutSeconds: 60, MemoryBytes: 2 << 30},
				func(o *agent.Options) { o.MaxLimits = sandbox.Limits{MemoryBytes: 1 << 30} },
				func(ctx context.Context, c *coord.Service, id string) bool { return decided(ctx, c, id) })
			r := result(t, c, id)
			if !r.Failed || !strings.Contains(r.Reason, "allows at most 1073741824 (afterlife builder --max-memory)") {
				t.Fatalf("result %+v: want a refusal naming --max-memory", r)
			}
		})
	})
}
