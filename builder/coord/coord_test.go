package coord_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type farm struct {
	svc   *coord.Service
	store blob.Store
	d     *db.DB
	auth  *auth.Service
}

func newFarm(t *testing.T, d *db.DB, o coord.Options) farm {
	t.Helper()
	st, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	au, err := auth.New(context.Background(), d, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	o.DB, o.Store, o.Operators = d, st, au
	if o.Logger == nil {
		o.Logger = testenv.Logger(t)
	}
	if o.Recheck == 0 {
		o.Recheck = 50 * time.Millisecond
	}
	svc, err := coord.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return farm{svc: svc, store: st, d: d, auth: au}
}

// builderToken makes a builder token the way an admin does, bound to the
// operator organisation operator ("" leaves it unbound), and returns its id.
func builderToken(t *testing.T, au *auth.Service, name, operator string) string {
	t.Helper()
	ctx := context.Background()
	if operator != "" {
		if err := au.CreateOrg(ctx, operator, operator, "operator"); err != nil && !errs.Is(err, errs.Conflict) {
			t.Fatal(err)
		}
	}
	_, tok, err := au.CreateToken(ctx, auth.TokenSpec{Name: name, Role: principal.Builder, Operator: operator})
	if err != nil {
		t.Fatal(err)
	}
	return tok.ID
}

var commitSeq int

func spec(t *testing.T, st blob.Store, tc builder.ToolchainReq, arch string) builder.Spec {
	t.Helper()
	commitSeq++
	src, err := st.Put(context.Background(), strings.NewReader(fmt.Sprintf("source %d", commitSeq)), "")
	if err != nil {
		t.Fatal(err)
	}
	return builder.Spec{
		Recipe:    builder.RecipeRef{Name: "demo", Version: "1.0.0", RepoURL: "https://example.org/demo.git", Commit: fmt.Sprintf("%040x", commitSeq), Path: "afterlife.yaml"},
		Products:  []string{"demo-cam"},
		Toolchain: tc, Arch: arch,
		Steps:   []string{"true"},
		Outputs: []builder.Output{{Path: "fw.bin", Kind: "firmware"}},
		Limits:  builder.Limits{TimeoutSeconds: 60, MemoryBytes: 1 << 30, CPUs: 1},
		Source:  src.Digest,
	}
}

type agentID struct {
	b   builder.Builder
	key ed25519.PrivateKey
}

func register(t *testing.T, f farm, name, operator, arch string, tcs ...builder.ToolchainInfo) agentID {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b, err := f.svc.Register(context.Background(), builderToken(t, f.auth, name, operator), builder.Registration{
		Name: name, PublicKey: keys.PublicKeyString(pub), Arch: arch, Toolchains: tcs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return agentID{b: b, key: priv}
}

var busybox = builder.ToolchainInfo{Name: "busybox", Version: "1.36.1"}

// finish uploads outputs with the given content, signs an attestation the
// way an agent does, and reports the job done.
func finish(t *testing.T, f farm, a agentID, job *builder.Job, content string) error {
	t.Helper()
	return finishAs(t, f, a, job, content, job.Cold)
}

// finishAs is finish with an attestation that says cold (the job ran with
// empty caches) or not, whatever the job was assigned.
func finishAs(t *testing.T, f farm, a agentID, job *builder.Job, content string, cold bool) error {
	t.Helper()
	ctx := context.Background()
	put := func(b []byte) blob.Digest {
		info, err := f.store.Put(ctx, bytes.NewReader(b), "")
		if err != nil {
			t.Fatal(err)
		}
		return info.Digest
	}
	out := []byte(content)
	od := put(out)
	logD := put([]byte("log of " + job.ID))
	now := time.Now().UTC()
	bi := attest.BuildInfo{
		BuildID: job.BuildID, JobID: job.ID,
		Recipe:  attest.Recipe{Name: job.Spec.Recipe.Name, Version: job.Spec.Recipe.Version, RepoURL: job.Spec.Recipe.RepoURL, Commit: job.Spec.Recipe.Commit, Path: job.Spec.Recipe.Path},
		Builder: attest.Builder{ID: a.b.ID, Operator: a.b.Operator, KeyID: a.b.KeyID, Arch: a.b.Arch},
		Cache:   attest.Cache{Cold: cold},
		Started: now, Finished: now,
		Outputs: []attest.Output{{Path: "fw.bin", Kind: "firmware", Digest: string(od), Size: int64(len(out))}},
	}
	biJSON, _ := json.Marshal(bi)
	st, err := attest.Statement(bi)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(ctx, a.key, st)
	if err != nil {
		t.Fatal(err)
	}
	return f.svc.Done(ctx, job.ID, a.b.ID, builder.Report{
		Outputs: []builder.OutputFile{{Path: "fw.bin", Kind: "firmware", Digest: od, Size: int64(len(out))}},
		Log:     logD, BuildInfo: put(biJSON), Attestation: put(env),
	})
}

func next(t *testing.T, f farm, a agentID) *builder.Job {
	t.Helper()
	j, err := f.svc.Next(context.Background(), a.b.ID, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJobsGoOnlyToCapableBuilders(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1})
		ctx := context.Background()
		if _, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "go", Version: ">=1.26,<2"}, "amd64")}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			a    agentID
			want bool
		}{
			{"a builder without the toolchain gets nothing", register(t, f, "shell", "op1", "amd64", busybox), false},
			{"a builder with too old a version gets nothing", register(t, f, "old", "op2", "amd64", builder.ToolchainInfo{Name: "go", Version: "1.25.3"}), false},
			{"a builder of another architecture gets nothing", register(t, f, "arm", "op3", "arm64", builder.ToolchainInfo{Name: "go", Version: "1.26.8"}), false},
			{"a matching builder gets the job", register(t, f, "good", "op4", "amd64", busybox, builder.ToolchainInfo{Name: "go", Version: "1.26.8"}), true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if got := next(t, f, c.a) != nil; got != c.want {
					t.Fatalf("got a job: %v, want %v", got, c.want)
				}
			})
		}
	})
}

func TestAJobDeclaringAnSBOMGeneratorGoesOnlyToABuilderWithThatExactVersion(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1})
		ctx := context.Background()
		gcc := builder.ToolchainInfo{Name: "gcc-arm-none-eabi", Version: "12.2.1"}
		sp := spec(t, f.store, builder.ToolchainReq{Name: gcc.Name, Version: ">=12.2"}, "")
		sp.Tools = []builder.ToolchainReq{{Name: "syft", Version: "v1.57.2"}}
		if _, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: sp}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			a    agentID
			want bool
		}{
			{"a builder with the compiler but no generator gets nothing", register(t, f, "nosyft", "op1", "amd64", busybox, gcc), false},
			{"a builder with another version of the generator gets nothing", register(t, f, "oldsyft", "op2", "amd64", busybox, gcc, builder.ToolchainInfo{Name: "syft", Version: "v1.57.1"}), false},
			{"a builder with the generator but not the compiler gets nothing", register(t, f, "nogcc", "op3", "amd64", busybox, builder.ToolchainInfo{Name: "syft", Version: "v1.57.2"}), false},
			{"a builder with both gets the job, which carries the tool", register(t, f, "good", "op4", "amd64", busybox, gcc, builder.ToolchainInfo{Name: "syft", Version: "v1.57.2"}), true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				j := next(t, f, c.a)
				if got := j != nil; got != c.want {
					t.Fatalf("got a job: %v, want %v", got, c.want)
				}
				if j != nil && (len(j.Spec.Tools) != 1 || j.Spec.Tools[0] != sp.Tools[0]) {
					t.Fatalf("the job's tools: %+v", j.Spec.Tools)
				}
			})
		}
	})
}

func TestOneBuilderAndOneOperatorNeverTakeTwoJobsOfABuild(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 3})
		ctx := context.Background()
		id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
		if err != nil {
			t.Fatal(err)
		}
		a := register(t, f, "a", "alice", "amd64", busybox)
		a2 := register(t, f, "a2", "alice", "amd64", busybox)
		b := register(t, f, "b", "bob", "amd64", busybox)
		if next(t, f, a) == nil {
			t.Fatal("first builder got no job")
		}
		if j := next(t, f, a); j != nil {
			t.Fatalf("builder a got a second job %s of build %s", j.ID, id)
		}
		if j := next(t, f, a2); j != nil {
			t.Fatalf("a second builder of operator alice got job %s of the same build", j.ID)
		}
		if next(t, f, b) == nil {
			t.Fatal("a builder of another operator got no job")
		}
	})
}

func TestAnExpiredLeaseReturnsTheJobAndTooManyFailIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1, LeaseTTL: time.Minute, MaxAttempts: 2})
		ctx := context.Background()
		id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
		if err != nil {
			t.Fatal(err)
		}
		a := register(t, f, "a", "alice", "amd64", busybox)
		b := register(t, f, "b", "bob", "amd64", busybox)
		j := next(t, f, a)
		if n, err := f.svc.ExpireLeases(ctx, time.Now()); err != nil || n != 0 {
			t.Fatalf("a live lease expired: %d, %v", n, err)
		}
		if n, err := f.svc.ExpireLeases(ctx, time.Now().Add(2*time.Minute)); err != nil || n != 1 {
			t.Fatalf("expire: %d, %v; want 1 job back", n, err)
		}
		if _, err := f.svc.Extend(ctx, j.ID, a.b.ID); !errs.Is(err, errs.Conflict) {
			t.Fatalf("the dead builder extended a lost lease: %v", err)
		}
		j2 := next(t, f, b)
		if j2 == nil || j2.ID != j.ID || j2.Attempt != 2 {
			t.Fatalf("the job did not come back to another builder: %+v", j2)
		}
		if _, err := f.svc.ExpireLeases(ctx, time.Now().Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		bd, err := f.svc.Build(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if bd.State != verdict.Failed || bd.Jobs[0].State != coord.JobFailed {
			t.Fatalf("after %d lost leases the build is %s and its job %s", 2, bd.State, bd.Jobs[0].State)
		}
	})
}

func TestCreatingTheSameBuildTwiceGivesTheSameBuild(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 2})
		ctx := context.Background()
		sp := spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")
		id1, created1, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: sp})
		if err != nil {
			t.Fatal(err)
		}
		id2, created2, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: sp})
		if err != nil {
			t.Fatal(err)
		}
		if id1 != id2 || !created1 || created2 {
			t.Fatalf("got %s (created %v) and %s (created %v)", id1, created1, id2, created2)
		}
		n, err := f.svc.QueueDepth(ctx)
		if err != nil || n != 2 {
			t.Fatalf("queue depth %d, %v; want 2 jobs", n, err)
		}
		for product, want := range map[string]int{"demo-cam": 1, "other": 0} {
			bs, err := f.svc.Builds(ctx, coord.Filter{Product: product, State: verdict.Pending})
			if err != nil || len(bs) != want {
				t.Fatalf("builds of %s: %d, %v; want %d", product, len(bs), err, want)
			}
		}
	})
}

func TestResultsDecideTheVerdict(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		cases := []struct {
			name       string
			a, b       string
			want       verdict.State
			wantOutput bool
		}{
			{"identical outputs from two operators are reproducible", "same bytes", "same bytes", verdict.Reproducible, true},
			{"different outputs are unreproducible", "bytes one", "bytes two", verdict.Unreproducible, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f := newFarm(t, d, coord.Options{Quorum: 2})
				ctx := context.Background()
				id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
				if err != nil {
					t.Fatal(err)
				}
				a := register(t, f, "a-"+c.a, "alice", "amd64", busybox)
				b := register(t, f, "b-"+c.b, "bob", "amd64", busybox)
				ja, jb := next(t, f, a), next(t, f, b)
				if err := finish(t, f, a, ja, c.a); err != nil {
					t.Fatal(err)
				}
				if v, _ := f.svc.Verdict(ctx, id); v.State != verdict.Pending {
					t.Fatalf("one result of two decided the build: %s", v.State)
				}
				if err := finish(t, f, b, jb, c.b); err != nil {
					t.Fatal(err)
				}
				v, err := f.svc.Verdict(ctx, id)
				if err != nil || v.State != c.want {
					t.Fatalf("verdict %+v, %v; want %s", v, err, c.want)
				}
				_, outs, agreeing, total, err := f.svc.ReproducibleOutputs(ctx, id)
				if c.wantOutput != (err == nil) {
					t.Fatalf("reproducible outputs: %v", err)
				}
				if c.wantOutput && (len(outs) != 1 || agreeing != 2 || total != 2) {
					t.Fatalf("outputs %+v, %d of %d agree", outs, agreeing, total)
				}
				if !c.wantOutput && (len(v.Differences) != 1 || v.Differences[0].Path != "fw.bin") {
					t.Fatalf("differences %+v, want fw.bin", v.Differences)
				}
			})
		}
	})
}

func TestAResultSignedWithAnotherKeyIsRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1})
		ctx := context.Background()
		if _, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")}); err != nil {
			t.Fatal(err)
		}
		a := register(t, f, "a", "alice", "amd64", busybox)
		j := next(t, f, a)
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		forged := agentID{b: a.b, key: other}
		if err := finish(t, f, forged, j, "bytes"); !errs.Is(err, errs.Invalid) {
			t.Fatalf("a forged attestation was accepted: %v", err)
		}
		if err := finish(t, f, a, j, "bytes"); err != nil {
			t.Fatalf("the genuine result after a refused one: %v", err)
		}
	})
}

func TestALongPollWakesWhenABuildIsQueued(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1, Recheck: time.Hour})
		ctx := context.Background()
		a := register(t, f, "a", "alice", "amd64", busybox)
		got := make(chan *builder.Job, 1)
		go func() {
			j, err := f.svc.Next(ctx, a.b.ID, 20*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- j
		}()
		start := time.Now()
		if _, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")}); err != nil {
			t.Fatal(err)
		}
		select {
		case j := <-got:
			if j == nil {
				t.Fatal("the long poll ended without the job")
			}
			t.Logf("woken after %s", time.Since(start))
		case <-time.After(10 * time.Second):
			t.Fatal("the long poll was not woken by the new build")
		}
	})
}

func TestADrainingReplicaEndsItsLongPollsAtOnceWithNoJob(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1, Recheck: time.Hour})
		ctx := context.Background()
		a := register(t, f, "a", "alice", "amd64", busybox)
		type answer struct {
			job *builder.Job
			err error
		}
		got := make(chan answer, 1)
		go func() {
			j, err := f.svc.Next(ctx, a.b.ID, time.Minute)
			got <- answer{j, err}
		}()
		// Whether the poll already waits or is about to, it must end at
		// once, long before its minute is over.
		select {
		case a := <-got:
			t.Fatalf("the long poll answered before the drain: %+v, %v", a.job, a.err)
		default:
		}
		f.svc.Drain()
		select {
		case a := <-got:
			if a.job != nil || a.err != nil {
				t.Fatalf("the drained long poll answered %+v, %v; want no job and no error", a.job, a.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the long poll still waits 10s after Drain")
		}
		// A poll that arrives while draining does not wait either.
		j, err := f.svc.Next(ctx, a.b.ID, time.Minute)
		if j != nil || err != nil {
			t.Fatalf("a poll during the drain answered %+v, %v; want no job and no error", j, err)
		}
	})
}

// Two coordinators (two replicas) on one database, many builders claiming
// at once: no job is leased twice and no operator gets two jobs of a build.
func TestConcurrentClaimsFromTwoReplicasNeverDoubleLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f1 := newFarm(t, d, coord.Options{Quorum: 2})
		f2 := f1
		var err error
		f2.svc, err = coord.New(context.Background(), coord.Options{DB: d, Store: f1.store, Operators: f1.auth, Quorum: 2, Recheck: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f2.svc.Close)
		ctx := context.Background()
		const builds = 6
		for range builds {
			if _, _, err := f1.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f1.store, builder.ToolchainReq{Name: "busybox"}, "")}); err != nil {
				t.Fatal(err)
			}
		}
		var agents []agentID
		for i := range 8 {
			agents = append(agents, register(t, f1, fmt.Sprint("b", i), fmt.Sprint("op", i%4), "amd64", busybox))
		}
		var mu sync.Mutex
		seen := map[string]string{} // job → builder
		perOp := map[string]bool{}  // build/operator
		// An empty answer does not mean the queue is drained: SKIP LOCKED
		// passes over rows another replica is deciding about at that moment.
		// Agents keep asking until every job is out, or a generous deadline.
		leased := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
		deadline := time.Now().Add(30 * time.Second)
		var wg sync.WaitGroup
		for i, a := range agents {
			svc := []*coord.Service{f1.svc, f2.svc}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for leased() < builds*2 && time.Now().Before(deadline) {
					j, err := svc.Next(ctx, a.b.ID, 100*time.Millisecond)
					if err != nil {
						t.Error(err)
						return
					}
					if j == nil {
						continue
					}
					mu.Lock()
					if prev, dup := seen[j.ID]; dup {
						t.Errorf("job %s leased to %s and %s", j.ID, prev, a.b.ID)
					}
					seen[j.ID] = a.b.ID
					key := j.BuildID + "/" + a.b.Operator
					if perOp[key] {
						t.Errorf("operator %s got two jobs of build %s", a.b.Operator, j.BuildID)
					}
					perOp[key] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != builds*2 {
			t.Fatalf("%d jobs leased, want %d", len(seen), builds*2)
		}
	})
}

func TestAJobGivenBackTooOftenFailsInsteadOfCirclingForEver(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1, LeaseTTL: time.Minute})
		ctx := context.Background()
		id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
		if err != nil {
			t.Fatal(err)
		}
		a := register(t, f, "a", "alice", "amd64", busybox)
		for i := 1; i <= coord.MaxGiveBacks; i++ {
			j := next(t, f, a)
			if j == nil {
				t.Fatalf("give-back %d: the job did not come back to the queue", i)
			}
			if j.Attempt != 1 {
				t.Fatalf("a give-back counted as a lost lease: attempt %d", j.Attempt)
			}
			if err := f.svc.GiveBack(ctx, j.ID, a.b.ID); err != nil {
				t.Fatal(err)
			}
		}
		if j := next(t, f, a); j != nil {
			t.Fatalf("the job is still offered after %d give-backs", coord.MaxGiveBacks)
		}
		bd, err := f.svc.Build(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if bd.State != verdict.Failed || len(bd.Results) != 1 || !strings.Contains(bd.Results[0].Reason, "given back") {
			t.Fatalf("build %s, results %+v; want failed with the reason", bd.State, bd.Results)
		}
	})
}

// noisyLog reads n bytes of build-log lines.
type noisyLog struct{ n int64 }

func (r *noisyLog) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	const line = "a noisy build line 0123456789abcdef\n"
	k := int(min(int64(len(p)), r.n))
	for i := range k {
		p[i] = line[i%len(line)]
	}
	r.n -= int64(k)
	return k, nil
}

func TestALogAboveTheLimitIsStoredAsItsHeadAndTail(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		const limit = 1 << 20
		f := newFarm(t, d, coord.Options{Quorum: 1, MaxLogBytes: limit})
		ctx := context.Background()
		id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: busybox.Name}, "")})
		if err != nil {
			t.Fatal(err)
		}
		a := register(t, f, "loud", "op1", "amd64", busybox)
		job := next(t, f, a)
		if job == nil {
			t.Fatal("no job")
		}
		// The live log: 3 MiB in 64 KiB chunks, as an agent streams it.
		chunk := bytes.Repeat([]byte("live line\n"), 64<<10/10)
		for range 3 << 20 / len(chunk) {
			if err := f.svc.AppendLog(ctx, job.ID, a.b.ID, chunk); err != nil {
				t.Fatal(err)
			}
		}
		var live int64
		for {
			c, err := f.svc.Log(ctx, job.ID, live)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Data) == 0 {
				break
			}
			live += int64(len(c.Data))
		}
		if live > limit {
			t.Errorf("the live log holds %d bytes, the limit is %d", live, limit)
		}
		// The final log: a builder that does not cap its own uploads 200 MB.
		big, err := f.store.Put(ctx, io.MultiReader(strings.NewReader("FIRST LINE OF THE LOG\n"), &noisyLog{n: 200_000_000}, strings.NewReader("\nLAST LINE OF THE LOG\n")), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Done(ctx, job.ID, a.b.ID, builder.Report{Failed: true, Reason: "step 1 exited with status 1", Log: big.Digest}); err != nil {
			t.Fatal(err)
		}
		b, err := f.svc.Build(ctx, id)
		if err != nil || len(b.Results) != 1 {
			t.Fatalf("build %+v, %v", b, err)
		}
		kept := b.Results[0].Log
		if kept == big.Digest {
			t.Fatalf("the 200 MB log was recorded as it came")
		}
		rc, err := f.store.Get(ctx, kept, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		stored, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) > limit {
			t.Fatalf("the stored log is %d bytes, the limit is %d", len(stored), limit)
		}
		for _, want := range []string{"FIRST LINE OF THE LOG", "LAST LINE OF THE LOG", "==> log truncated: "} {
			if !bytes.Contains(stored, []byte(want)) {
				t.Errorf("the stored log lacks %q", want)
			}
		}
	})
}
