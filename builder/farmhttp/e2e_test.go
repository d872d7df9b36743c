package farmhttp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/agent"
	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/farmclient"
	"github.com/afterlife-oss/afterlife/builder/farmhttp"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/submit"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const examples = "../../recipes/examples"

type farmSubmitter struct{ s *submit.Submitter }

func (f farmSubmitter) Submit(ctx context.Context, r builder.SubmitRequest) (builder.SubmitResult, error) {
	res, err := f.s.Submit(ctx, submit.Request{RepoURL: r.Repo, Ref: r.Ref, Path: r.Path, RequestedBy: r.RequestedBy})
	return builder.SubmitResult{BuildID: res.BuildID, Created: res.Created, Commit: res.Commit, Recipe: res.Recipe, Version: res.Version}, err
}

// released says every blob in the store is a released escrow file; the
// escrow part owns the real answer.
type released struct{ store blob.Store }

func (r released) ReleasedFile(ctx context.Context, digest string) (int64, bool, bool, error) {
	info, err := r.store.Stat(ctx, blob.Digest(digest))
	if errs.Is(err, errs.NotFound) {
		return 0, false, false, nil
	}
	return info.Size, false, err == nil, err
}

type testFarm struct {
	t       *testing.T
	url     string
	coord   *coord.Service
	store   blob.Store
	auth    *auth.Service
	maint   *farmclient.Client
	tcs     []toolchain.Toolchain
	agents  sync.WaitGroup
	stopAll []context.CancelFunc
}

func startFarm(t *testing.T, d *db.DB, quorum int, leaseTTL time.Duration) *testFarm {
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
	c, err := coord.New(ctx, coord.Options{DB: d, Store: store, Operators: au, Quorum: quorum, LeaseTTL: leaseTTL, Recheck: 500 * time.Millisecond, MaxWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := submit.New(submit.Options{Store: store, Released: released{store}, Builds: coord.Submissions{Coord: c}, AllowLocal: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Auth: au})
	farmhttp.NewServer(c, store, farmhttp.Options{Submitter: farmSubmitter{sub}}).Register(api.V1())
	ts := httptest.NewServer(api.Engine())
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() { defer close(swept); _ = c.Run(sweepCtx, 100*time.Millisecond) }()
	tcs, err := toolchain.Detect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &testFarm{t: t, url: ts.URL, coord: c, store: store, auth: au, tcs: tcs}
	f.maint = farmclient.New(ts.URL, f.token(principal.Maintainer, "maintainer"), farmclient.Options{HTTP: httpclient.Options{RetryMax: 2}})
	t.Cleanup(func() {
		for _, stop := range f.stopAll {
			stop()
		}
		f.agents.Wait()
		stopSweep()
		<-swept
		ts.Close()
		c.Close()
	})
	return f
}

// build reads a build as anyone does, over GET /v1/builds/:id.
func (f *testFarm) build(ctx context.Context, id string) (coord.Build, error) {
	var b coord.Build
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/v1/builds/"+url.PathEscape(id), nil)
	if err != nil {
		return b, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return b, err
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode != http.StatusOK {
		return b, httpclient.DecodeError(resp, "GET /v1/builds/"+id)
	}
	return b, json.NewDecoder(resp.Body).Decode(&b)
}

func (f *testFarm) token(role principal.Role, name string) string {
	f.t.Helper()
	secret, _, err := f.auth.CreateToken(context.Background(), auth.TokenSpec{Name: name, Role: role, TTL: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	return secret
}

// builderToken makes a builder token as an admin does, bound to the
// operator organisation operator ("" leaves it unbound); it returns the
// secret and the token's id.
func (f *testFarm) builderToken(name, operator string) (string, string) {
	f.t.Helper()
	ctx := context.Background()
	if operator != "" {
		if err := f.auth.CreateOrg(ctx, operator, operator, "operator"); err != nil && !errs.Is(err, errs.Conflict) {
			f.t.Fatal(err)
		}
	}
	secret, tok, err := f.auth.CreateToken(ctx, auth.TokenSpec{Name: name, Role: principal.Builder, Operator: operator, TTL: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	return secret, tok.ID
}

// cacheDir is a per-slot builder cache that outlives the test, so the Go
// standard library is cross-compiled once per slot, not once per run.
func cacheDir(t *testing.T, slot int) string {
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(base, "afterlife", "builder-cache", fmt.Sprint(slot))
}

// startAgent runs an agent as a goroutine talking HTTP to the farm, with a
// builder token bound to operator; wrap, when set, stands between the agent
// and its client.
func (f *testFarm) startAgent(slot int, operator string, wrap func(builder.Coordinator) builder.Coordinator) context.CancelFunc {
	f.t.Helper()
	secret, _ := f.builderToken(fmt.Sprint("builder-", slot), operator)
	return f.startAgentWithToken(slot, secret, cacheDir(f.t, slot), wrap)
}

// startAgentWithToken runs an agent with the builder token secret and its
// caches under cache.
func (f *testFarm) startAgentWithToken(slot int, secret, cache string, wrap func(builder.Coordinator) builder.Coordinator) context.CancelFunc {
	f.t.Helper()
	var c builder.Coordinator = farmclient.New(f.url, secret, farmclient.Options{
		HTTP: httpclient.Options{WaitMin: 50 * time.Millisecond, WaitMax: time.Second},
	})
	if wrap != nil {
		c = wrap(c)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a, err := agent.New(agent.Options{
		Coordinator: c, Key: key, Name: fmt.Sprint("builder-", slot),
		WorkDir: filepath.Join(f.t.TempDir(), strings.Repeat("w", slot+1)), CacheDir: cache,
		Toolchains: f.tcs, PollWait: 3 * time.Second, LogFlush: 200 * time.Millisecond, Version: "test",
		Extract: func(r io.Reader, dir string) error { return recipes.Extract(r, dir, recipes.ExtractLimits{}) },
		Logger:  testLogger(f.t, fmt.Sprint("builder-", slot)),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stopAll = append(f.stopAll, cancel)
	f.agents.Add(1)
	go func() {
		defer f.agents.Done()
		if err := a.Run(ctx); err != nil {
			f.t.Errorf("agent %d: %v", slot, err)
		}
	}()
	return cancel
}

// gitRepo makes a repository whose only commit holds the files of dir.
func gitRepo(t *testing.T, dir string, extra map[string]string) string {
	t.Helper()
	repo := t.TempDir()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(repo, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range extra {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := git.PlainInit(repo, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := r.Worktree()
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "maintainer", Email: "m@example.org", When: time.Unix(1700000000, 0)}
	if _, err := wt.Commit("recipe", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
		t.Fatal(err)
	}
	return "file://" + repo
}

func (f *testFarm) waitDecided(ids ...string) map[string]coord.Build {
	f.t.Helper()
	out := map[string]coord.Build{}
	testenv.Eventually(f.t, 8*time.Minute, func() error {
		for _, id := range ids {
			if _, ok := out[id]; ok {
				continue
			}
			b, err := f.build(context.Background(), id)
			if err != nil {
				return testenv.GiveUp(err)
			}
			if b.State != verdict.Pending {
				out[id] = b
			}
		}
		if len(out) < len(ids) {
			return fmt.Errorf("builds decided: %d of %d", len(out), len(ids))
		}
		return nil
	})
	return out
}

func TestTheExamplesGetTheirVerdictsFromRealAgents(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := startFarm(t, d, 2, 30*time.Second)
		ctx := context.Background()
		// The vendor's deposit, released: its files are in the store.
		err := filepath.WalkDir(filepath.Join(examples, "cortex-m3", "vendor-deposit"), func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			fh, err := os.Open(p)
			if err != nil {
				return err
			}
			defer fh.Close()
			_, err = f.store.Put(ctx, fh, "")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		cam, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: gitRepo(t, filepath.Join(examples, "afterlife-cam"), nil), Ref: "master"})
		if err != nil {
			t.Fatal(err)
		}
		m3, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: gitRepo(t, filepath.Join(examples, "cortex-m3", "recipe"), nil)})
		if err != nil {
			t.Fatal(err)
		}
		unrepro, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: gitRepo(t, filepath.Join(examples, "unreproducible"), nil)})
		if err != nil {
			t.Fatal(err)
		}
		if !cam.Created || len(cam.Commit) != 40 {
			t.Fatalf("submission: %+v", cam)
		}
		for i := range 2 {
			f.startAgent(i, fmt.Sprint("operator-", i), nil)
		}
		start := time.Now()
		got := f.waitDecided(cam.BuildID, m3.BuildID, unrepro.BuildID)
		t.Logf("three builds decided by two agents in %s", time.Since(start).Round(time.Second))

		for name, id := range map[string]string{"afterlife-cam": cam.BuildID, "cortex-m3": m3.BuildID} {
			b := got[id]
			if b.State != verdict.Reproducible || b.Verdict.Agreeing != 2 {
				t.Fatalf("%s: verdict %+v", name, b.Verdict)
			}
			if len(b.Results) != 2 || !slices.Equal(b.Results[0].Outputs, b.Results[1].Outputs) {
				t.Fatalf("%s: results differ: %+v", name, b.Results)
			}
			_, outs, agreeing, total, err := f.coord.ReproducibleOutputs(ctx, id)
			if err != nil || agreeing != 2 || total != 2 || len(outs) != len(b.Spec.Outputs) {
				t.Fatalf("%s: reproducible outputs %+v, %d/%d, %v", name, outs, agreeing, total, err)
			}
			f.checkAttestation(b, b.Results[0])
			t.Logf("%s reproducible: %v", name, outs)
		}
		// Each example's SBOM is made by the generator its recipe pins: both
		// builders bound it, agreed on its bytes (above), and signed its name
		// and version.
		for name, c := range map[string]struct{ id, sbom, tool string }{
			"afterlife-cam": {cam.BuildID, "afterlife-cam.sbom.json", `"cyclonedx-gomod"`},
			"cortex-m3":     {m3.BuildID, "firmware.spdx.json", `"syft"`},
		} {
			b := got[c.id]
			if !slices.ContainsFunc(b.Results[0].Outputs, func(o builder.OutputFile) bool { return o.Path == c.sbom && o.Kind == "sbom" }) {
				t.Fatalf("%s: no SBOM %s among %+v", name, c.sbom, b.Results[0].Outputs)
			}
			for _, r := range b.Results {
				if st := f.attestationStatement(b, r); !strings.Contains(st, c.tool) {
					t.Fatalf("%s: the attestation of %s does not name %s:\n%s", name, r.JobID, c.tool, st)
				}
			}
		}
		ub := got[unrepro.BuildID]
		if ub.State != verdict.Unreproducible {
			t.Fatalf("unreproducible: verdict %+v", ub.Verdict)
		}
		var paths []string
		for _, d := range ub.Verdict.Differences {
			paths = append(paths, d.Path)
		}
		if !slices.Equal(paths, []string{"stamp.txt"}) {
			t.Fatalf("differing files %v, want only stamp.txt", paths)
		}
		if _, _, _, _, err := f.coord.ReproducibleOutputs(ctx, unrepro.BuildID); !errs.Is(err, errs.Conflict) {
			t.Fatalf("an unreproducible build gave release outputs: %v", err)
		}
		// diffoscope is installed by scripts/test-deps.sh; its report comes in the background.
		testenv.Eventually(t, 2*time.Minute, func() error {
			b, err := f.build(ctx, unrepro.BuildID)
			if err != nil {
				return testenv.GiveUp(err)
			}
			if len(b.Diffs) != 1 {
				return fmt.Errorf("no diffoscope report for stamp.txt (is diffoscope installed? run scripts/test-deps.sh): %d reports", len(b.Diffs))
			}
			if b.Diffs[0].Path != "stamp.txt" || !strings.Contains(b.Diffs[0].Diffoscope, "stamp.txt") {
				return testenv.GiveUp(fmt.Errorf("diffoscope report: %+v", b.Diffs[0]))
			}
			return nil
		})

		again, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: got[cam.BuildID].Repo, Ref: cam.Commit})
		if err != nil || again.BuildID != cam.BuildID || again.Created {
			t.Fatalf("re-submitting the same commit: %+v, %v", again, err)
		}
		f.checkLogRoute(ub)
	})
}

// checkAttestation fetches a result's attestation over HTTP and verifies it
// with the key its builder registered.
func (f *testFarm) checkAttestation(b coord.Build, r coord.Result) { f.attestationStatement(b, r) }

// attestationStatement is checkAttestation returning the verified
// statement as JSON.
func (f *testFarm) attestationStatement(b coord.Build, r coord.Result) string {
	f.t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/builds/%s/jobs/%s/attestation", f.url, b.ID, r.JobID))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	env, _ := io.ReadAll(resp.Body)
	bs, err := f.maint.Builders(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, bd := range bs {
		if bd.ID != r.BuilderID {
			continue
		}
		pub, err := keys.ParsePublicKey(bd.PublicKey)
		if err != nil {
			f.t.Fatal(err)
		}
		st, _, err := attest.Verify(context.Background(), pub, env)
		if err != nil {
			f.t.Fatalf("attestation of %s: %v", r.JobID, err)
		}
		if len(st.GetSubject()) != len(r.Outputs) {
			f.t.Fatalf("attestation has %d subjects for %d outputs", len(st.GetSubject()), len(r.Outputs))
		}
		js, err := protojson.Marshal(st)
		if err != nil {
			f.t.Fatal(err)
		}
		return string(js)
	}
	f.t.Fatalf("builder %s is not listed", r.BuilderID)
	return ""
}

func (f *testFarm) checkLogRoute(b coord.Build) {
	f.t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/builds/%s/jobs/%s/log", f.url, b.ID, b.Results[0].JobID))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "step 2/2") {
		f.t.Fatalf("live log: %d %s", resp.StatusCode, raw)
	}
}

// dying is a builder's connection that can be cut: after kill, every call
// fails, as for a machine that lost power (no heartbeat, no give-back).
type dying struct {
	builder.Coordinator
	dead    atomic.Bool
	started chan string
	once    sync.Once
}

var errDead = errs.E(errs.Unavailable, "builder is dead")

func (d *dying) Next(ctx context.Context, wait time.Duration) (*builder.Job, error) {
	if d.dead.Load() {
		return nil, errDead
	}
	j, err := d.Coordinator.Next(ctx, wait)
	if j != nil {
		d.once.Do(func() { d.started <- j.ID })
	}
	return j, err
}

func (d *dying) Extend(ctx context.Context, id string) (time.Time, error) {
	if d.dead.Load() {
		return time.Time{}, errDead
	}
	return d.Coordinator.Extend(ctx, id)
}

func (d *dying) GiveBack(ctx context.Context, id string) error {
	if d.dead.Load() {
		return errDead
	}
	return d.Coordinator.GiveBack(ctx, id)
}

func (d *dying) Done(ctx context.Context, id string, r builder.Report) error {
	if d.dead.Load() {
		return errDead
	}
	return d.Coordinator.Done(ctx, id, r)
}

func (d *dying) AppendLog(ctx context.Context, id string, c []byte) error {
	if d.dead.Load() {
		return errDead
	}
	return d.Coordinator.AppendLog(ctx, id, c)
}

func TestABuilderKilledMidJobLeavesTheBuildToAnother(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := startFarm(t, d, 2, 2*time.Second)
		ctx := context.Background()
		slow := gitRepo(t, filepath.Join(examples, "unreproducible"), map[string]string{"afterlife.yaml": `name: slow-demo
version: 1.0.0
products: [demo-cam]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - sleep 4
  - echo reproducible > /out/out.txt
outputs:
  - {path: out.txt, kind: other}
limits: {timeout: 1m, memory: 256MiB}
`})
		res, err := f.maint.Submit(ctx, builder.SubmitRequest{Repo: slow})
		if err != nil {
			t.Fatal(err)
		}
		victim := &dying{started: make(chan string, 1)}
		kill := f.startAgent(10, "operator-victim", func(c builder.Coordinator) builder.Coordinator { victim.Coordinator = c; return victim })
		var jobID string
		select {
		case jobID = <-victim.started:
		case <-time.After(time.Minute):
			t.Fatal("the first builder never started a job")
		}
		victim.dead.Store(true)
		kill()
		f.startAgent(11, "operator-a", nil)
		f.startAgent(12, "operator-b", nil)
		b := f.waitDecided(res.BuildID)[res.BuildID]
		if b.State != verdict.Reproducible {
			t.Fatalf("verdict %+v", b.Verdict)
		}
		for _, j := range b.Jobs {
			if j.ID == jobID && (j.Attempts != 2 || j.Operator == "operator-victim") {
				t.Fatalf("the dead builder's job: %+v", j)
			}
		}
		for _, r := range b.Results {
			if r.Operator == "operator-victim" {
				t.Fatalf("the dead builder has a result: %+v", r)
			}
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("agent", name)
}
