package agent_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/agent"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
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
	_, tok, err := au.CreateToken(ctx, auth.TokenSpec{Name: "a", Role: auth.Builder, Operator: "alice"})
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
		Limits: builder.Limits{TimeoutSeconds: 60},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tcs, err := toolchain.Detect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a, err := agent.New(agent.Options{
		Coordinator: c.Local(tok.ID), Key: key, Name: "a",
		WorkDir: filepath.Join(t.TempDir(), "work"), CacheDir: filepath.Join(t.TempDir(), "cache"),
		Toolchains: tcs, PollWait: 200 * time.Millisecond, LogFlush: 50 * time.Millisecond,
		Extract: func(r io.Reader, dir string) error { return recipes.Extract(r, dir, recipes.ExtractLimits{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	deadline := time.Now().Add(time.Minute)
	for !stop(runCtx, c, id) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("the agent did not get there in a minute")
		}
		time.Sleep(20 * time.Millisecond) // polling the coordinator's state with a deadline
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return c, id
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
