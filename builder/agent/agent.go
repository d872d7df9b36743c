// Package agent is the builder agent: it registers with a coordinator,
// long-polls for jobs it can run, and for each job fetches the recipe
// source and inputs by digest (verifying each), runs the steps in the
// bubblewrap sandbox, hashes the outputs and returns them with the log, a
// buildinfo and an in-toto attestation signed with its ed25519 key, while
// heartbeating the job's lease. When its context ends it gives the current
// job back (or finishes it when only the upload is left).
//
// It talks to the coordinator only through builder.Coordinator, so it runs
// the same in-process and over HTTP. It must not decide verdicts, trust a
// blob it has not hashed, or import recipes: tar extraction is injected.
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Options configure an agent.
type Options struct {
	Coordinator builder.Coordinator
	Key         ed25519.PrivateKey
	Name        string
	// WorkDir holds one directory per running job, removed afterwards.
	WorkDir string
	// CacheDir keeps verified blobs by digest (builds never see them) and
	// the warm build caches bound at /cache (GOCACHE): one per recipe
	// repository, toolchain and architecture, so a build can never read
	// what a build of another repository wrote. The cold witness gets an
	// empty /cache of its own instead.
	CacheDir string
	// Toolchains are what this machine really has (toolchain.Detect).
	Toolchains []toolchain.Toolchain
	// Extract unpacks a deterministic tar (recipes.Extract) into dir.
	Extract func(r io.Reader, dir string) error
	// Arch defaults to toolchain.Arch().
	Arch string
	// MaxLimits are this builder's maxima: a job asking for more time,
	// memory or CPUs is refused with a reason naming the limit; processes
	// and bytes written are the lower of the job's ceiling and this. Zero
	// fields do not bound.
	MaxLimits sandbox.Limits
	// MaxLogBytes caps the build log (head and tail with a note), with the
	// job's own ceiling when that is lower; zero: builder.DefaultMaxLogBytes.
	MaxLogBytes int64
	// UIDs is where jobs take their uid when the agent runs as root
	// (sandbox.DefaultUIDs when empty).
	UIDs sandbox.UIDRange
	// PollWait is how long one Next waits (default 30s).
	PollWait time.Duration
	// LogFlush is how often the live log is sent (default 1s).
	LogFlush time.Duration
	// Version is the agent's version, recorded in attestations.
	Version string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Agent runs jobs for one builder identity.
type Agent struct {
	o   Options
	log *slog.Logger
	me  builder.Builder
}

// New checks the options and returns an agent.
func New(o Options) (*Agent, error) {
	switch {
	case o.Coordinator == nil:
		return nil, errs.E(errs.Invalid, "agent: a coordinator is required")
	case len(o.Key) != ed25519.PrivateKeySize:
		return nil, errs.E(errs.Invalid, "agent: an ed25519 key is required")
	case o.Name == "":
		return nil, errs.E(errs.Invalid, "agent: a name is required")
	case o.WorkDir == "" || o.CacheDir == "":
		return nil, errs.E(errs.Invalid, "agent: work and cache directories are required")
	case o.Extract == nil:
		return nil, errs.E(errs.Invalid, "agent: an archive extractor is required")
	case len(o.Toolchains) == 0:
		return nil, errs.E(errs.Invalid, "agent: no toolchains (run toolchain.Detect)")
	}
	for _, d := range []*string{&o.WorkDir, &o.CacheDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return nil, fmt.Errorf("agent: %s: %w", *d, err)
		}
		*d = abs
	}
	if o.Arch == "" {
		o.Arch = toolchain.Arch()
	}
	if o.PollWait <= 0 {
		o.PollWait = 30 * time.Second
	}
	if o.LogFlush <= 0 {
		o.LogFlush = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLogBytes <= 0 {
		o.MaxLogBytes = builder.DefaultMaxLogBytes
	}
	// Earlier agents kept one /cache for every build in "sandbox": any
	// recipe could have poisoned it, so it is thrown away, never reused.
	if err := os.RemoveAll(filepath.Join(o.CacheDir, "sandbox")); err != nil {
		return nil, fmt.Errorf("agent: remove the old shared build cache: %w", err)
	}
	for _, d := range []string{o.WorkDir, filepath.Join(o.CacheDir, "blobs"), filepath.Join(o.CacheDir, "builds")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("agent: create %s: %w", d, err)
		}
	}
	// Workspaces of jobs an earlier run of this agent did not finish hold
	// memory (a tmpfs each) until removed.
	left, err := os.ReadDir(o.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, e := range left {
		if e.IsDir() && strings.HasPrefix(e.Name(), "job") {
			if err := sandbox.RemoveWorkspace(filepath.Join(o.WorkDir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return &Agent{o: o, log: o.Logger.With("builder", o.Name)}, nil
}

// Registration is what the agent tells the coordinator about itself.
func (a *Agent) Registration() builder.Registration {
	reg := builder.Registration{
		Name: a.o.Name, Arch: a.o.Arch, AgentVersion: a.o.Version,
		PublicKey: keys.PublicKeyString(a.o.Key.Public().(ed25519.PublicKey)),
	}
	for _, tc := range a.o.Toolchains {
		reg.Toolchains = append(reg.Toolchains, builder.ToolchainInfo{Name: tc.Name, Version: tc.Version})
	}
	return reg
}

// Run registers and then runs jobs until ctx ends; it returns nil then.
// Errors talking to the coordinator are retried (the HTTP client backs off
// already); only a refused registration ends Run with an error.
func (a *Agent) Run(ctx context.Context) error {
	for {
		me, err := a.o.Coordinator.Register(ctx, a.Registration())
		if err == nil {
			a.me = me
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if k := errs.KindOf(err); k != errs.Unavailable && k != errs.Internal {
			return fmt.Errorf("agent: register %s: %w", a.o.Name, err)
		}
		a.log.Warn("registration failed; retrying", "err", err)
		if !pause(ctx, 5*time.Second) {
			return nil
		}
	}
	if a.me.Operator == "" {
		a.log.Warn("builder registered, but its token is not bound to an operator: it gets no jobs until an admin binds it (afterlife admin token bind)", "id", a.me.ID, "key", a.me.KeyID)
	} else {
		a.log.Info("builder registered", "id", a.me.ID, "operator", a.me.Operator, "key", a.me.KeyID)
	}
	var backoff time.Duration
	for ctx.Err() == nil {
		job, err := a.o.Coordinator.Next(ctx, a.o.PollWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("asking for work failed", "err", err)
			if errs.Is(err, errs.Forbidden) {
				pause(ctx, 10*time.Second) // waiting for an admin
			} else {
				pause(ctx, 2*time.Second)
			}
			continue
		}
		if job == nil {
			continue
		}
		if a.runJob(ctx, job) {
			// The job could not run here (sandbox or coordinator trouble)
			// and went back: wait before taking another, so this builder
			// does not spin through the queue.
			backoff = min(max(2*backoff, time.Second), time.Minute)
			a.log.Warn("pausing after a job this builder could not run", "for", backoff)
			pause(ctx, backoff)
		} else {
			backoff = 0
		}
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// phases of a job, for deciding what a shutdown does with it.
const (
	phaseBuilding  int32 = iota // fetching or running: give the job back
	phaseReporting              // outputs exist: finish and report
)

// runJob runs one job to its end: reported, given back, or dropped when
// the lease was lost. It reports whether the job went back because of
// trouble on this side.
func (a *Agent) runJob(ctx context.Context, job *builder.Job) (trouble bool) {
	log := a.log.With("job", job.ID, "build", job.BuildID, "recipe", job.Spec.Recipe.Name)
	log.Info("job started", "attempt", job.Attempt)
	jobCtx, cancelJob := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJob()
	var phase atomic.Int32
	var lost, stopping atomic.Bool

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // heartbeat
		defer wg.Done()
		every := max(job.LeaseTTL/3, 50*time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-t.C:
			}
			if _, err := a.o.Coordinator.Extend(jobCtx, job.ID); err != nil {
				if errs.Is(err, errs.Conflict) || errs.Is(err, errs.NotFound) {
					log.Warn("lease lost; dropping the job", "err", err)
					lost.Store(true)
					cancelJob()
					return
				}
				log.Warn("heartbeat failed", "err", err)
			}
		}
	}()
	go func() { // shutdown: stop building, but let reporting finish
		defer wg.Done()
		select {
		case <-jobCtx.Done():
		case <-ctx.Done():
			stopping.Store(true)
			if phase.Load() == phaseBuilding {
				cancelJob()
			}
		}
	}()

	rep, err := a.execute(jobCtx, job, &phase, log)
	switch {
	case lost.Load():
	case err != nil && stopping.Load() && phase.Load() == phaseBuilding:
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if gerr := a.o.Coordinator.GiveBack(gctx, job.ID); gerr != nil {
			log.Warn("giving the job back failed; its lease will expire", "err", gerr)
		} else {
			log.Info("job given back on shutdown")
		}
		cancel()
	case err != nil && errs.Is(err, errs.Unavailable):
		// Not the build's fault (the coordinator or the network is down, the
		// sandbox would not start): another builder, or this one later, may
		// do better.
		trouble = true
		log.Error("job could not be run; giving it back", "err", err)
		if gerr := a.o.Coordinator.GiveBack(jobCtx, job.ID); gerr != nil {
			log.Warn("giving the job back failed; its lease will expire", "err", gerr)
		}
	case err != nil:
		// The job cannot be run as given (a blob that does not match its
		// digest, a missing toolchain): say so, so the verdict names it.
		log.Error("job failed before it could build", "err", err)
		reason := errs.Message(err)
		if errs.KindOf(err) == errs.Internal {
			reason = err.Error()
		}
		if derr := a.o.Coordinator.Done(jobCtx, job.ID, builder.Report{Failed: true, Reason: truncate(reason, 1000)}); derr != nil {
			log.Warn("reporting the failure failed; its lease will expire", "err", derr)
		}
	default:
		if derr := a.o.Coordinator.Done(jobCtx, job.ID, rep); derr != nil {
			log.Error("reporting the result failed", "err", derr)
			if gerr := a.o.Coordinator.GiveBack(jobCtx, job.ID); gerr != nil {
				log.Warn("giving the job back failed; its lease will expire", "err", gerr)
			}
		} else {
			log.Info("job done", "failed", rep.Failed, "reason", rep.Reason, "outputs", len(rep.Outputs))
		}
	}
	cancelJob()
	wg.Wait()
	return trouble
}

// execute fetches, builds and uploads; a build that fails is a Report with
// Failed set, an error means the job could not be run or reported here.
func (a *Agent) execute(ctx context.Context, job *builder.Job, phase *atomic.Int32, log *slog.Logger) (builder.Report, error) {
	sp := job.Spec
	if err := sp.Validate(); err != nil {
		return builder.Report{}, err
	}
	limits, maxLog, err := a.limits(sp.Limits)
	if err != nil {
		return builder.Report{}, err
	}
	root := filepath.Join(a.o.WorkDir, job.ID)
	if err := sandbox.RemoveWorkspace(root); err != nil { // a retried job may find its old one
		return builder.Report{}, fmt.Errorf("agent: clean %s: %w", root, err)
	}
	// The job's files live on its own tmpfs (as root), which bounds what
	// the build writes; the log stays outside it.
	ws, err := sandbox.NewWorkspace(root)
	if err != nil {
		return builder.Report{}, err
	}
	defer ws.Close()
	buildDir, inputsDir, outDir := ws.Build, ws.Inputs, ws.Out
	logFile, err := os.Create(root + ".log")
	if err != nil {
		return builder.Report{}, fmt.Errorf("agent: create log: %w", err)
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()
	live := newLiveLog(a.o.Coordinator, job.ID, logFile, a.o.LogFlush)
	defer live.close()
	fmt.Fprintf(live, "==> afterlife builder %s job %s attempt %d: %s %s at %s\n",
		a.o.Name, job.ID, job.Attempt, sp.Recipe.Name, sp.Recipe.Version, sp.Recipe.Commit)

	started := a.o.Now().UTC()
	tc, tcErr := a.toolchain(sp.Toolchain)
	if tcErr != nil {
		return builder.Report{}, tcErr
	}
	if err := a.unpack(ctx, sp.Source, buildDir); err != nil {
		return builder.Report{}, fmt.Errorf("agent: source %s: %w", sp.Source, err)
	}
	fmt.Fprintf(live, "==> source %s unpacked\n", sp.Source)
	for _, in := range sp.Inputs {
		dst := filepath.Join(inputsDir, filepath.FromSlash(in.Mount))
		var err error
		if in.Kind == builder.InputGitArchive {
			err = a.unpack(ctx, in.Digest, dst)
		} else {
			err = a.place(ctx, in.Digest, dst)
		}
		if err != nil {
			return builder.Report{}, fmt.Errorf("agent: input %s (%s): %w", in.Mount, in.Digest, err)
		}
		fmt.Fprintf(live, "==> input %s verified: %s\n", in.Mount, in.Digest)
	}

	cache, cacheInfo, err := a.buildCache(job, tc, root)
	if err != nil {
		return builder.Report{}, err
	}
	if cacheInfo.Cold {
		fmt.Fprintf(live, "==> cache: cold witness: %s is empty and this job's alone\n", sandbox.CacheDir)
	} else {
		fmt.Fprintf(live, "==> cache: warm, %s key %s (builds of %s with %s %s on %s only)\n",
			sandbox.CacheDir, cacheInfo.Key, sp.Recipe.RepoURL, tc.Name, tc.Version, a.o.Arch)
	}

	env := map[string]string{}
	for k, v := range tc.Env {
		env[k] = v
	}
	if tc.Name == toolchain.Go {
		env["GOCACHE"] = sandbox.CacheDir + "/go-build"
	}
	wsNote, err := ws.Limit(limits.WriteBytes)
	if err != nil {
		return builder.Report{}, err
	}
	capped := builder.NewCappedLog(live, maxLog)
	res, runErr := sandbox.Run(ctx, sandbox.Spec{
		WorkDir: buildDir, Inputs: inputsDir, OutDir: outDir, Cache: cache, TmpDir: ws.Tmp,
		ReadOnly: tc.Paths, Path: tc.Bin, Env: env, UIDs: a.o.UIDs,
		Steps: sp.Steps, SourceDateEpoch: sp.SourceDateEpoch, Limits: limits, Log: capped,
	})
	_ = capped.Close()
	for _, e := range append(res.Enforced, wsNote, fmt.Sprintf("log: %d bytes, head and tail kept beyond", maxLog)) {
		fmt.Fprintf(live, "==> limit %s\n", e)
	}
	if res.Failure == sandbox.FailCanceled || ctx.Err() != nil {
		return builder.Report{}, errs.Wrap(errs.Unavailable, context.Canceled, "agent: build interrupted")
	}
	rep := builder.Report{}
	var outputs []builder.OutputFile
	if runErr != nil && res.Failure == sandbox.FailSandbox {
		return builder.Report{}, errs.Wrap(errs.Unavailable, runErr, "agent: the sandbox did not start (log ends: %q)", tail(logFile.Name(), 400))
	}
	if runErr != nil {
		rep.Failed, rep.Reason = true, res.Reason
	} else {
		outputs, err = hashOutputs(outDir, sp.Outputs)
		if err != nil {
			rep.Failed, rep.Reason = true, errs.Message(err)
		}
	}
	fmt.Fprintf(live, "==> build %s in %s\n", map[bool]string{true: "failed: " + rep.Reason, false: "succeeded"}[rep.Failed], res.Duration.Round(time.Millisecond))
	phase.Store(phaseReporting)
	for _, o := range outputs {
		fmt.Fprintf(live, "==> output %s %s (%d bytes)\n", o.Path, o.Digest, o.Size)
	}
	live.close()
	finished := a.o.Now().UTC()

	for _, o := range outputs {
		if err := a.uploadFile(ctx, job.ID, filepath.Join(outDir, filepath.FromSlash(o.Path)), o.Digest, o.Size); err != nil {
			return builder.Report{}, fmt.Errorf("agent: upload %s: %w", o.Path, err)
		}
	}
	logD, logSize, err := hashFile(logFile.Name())
	if err != nil {
		return builder.Report{}, err
	}
	if err := a.uploadFile(ctx, job.ID, logFile.Name(), logD, logSize); err != nil {
		return builder.Report{}, fmt.Errorf("agent: upload log: %w", err)
	}
	rep.Log = logD
	if rep.Failed {
		return rep, nil
	}
	rep.Outputs = outputs

	bi := attest.BuildInfo{
		BuildID: job.BuildID, JobID: job.ID,
		Recipe:          attest.Recipe{Name: sp.Recipe.Name, Version: sp.Recipe.Version, RepoURL: sp.Recipe.RepoURL, Commit: sp.Recipe.Commit, Path: sp.Recipe.Path},
		Toolchains:      []attest.Toolchain{{Name: tc.Name, Version: tc.Version}},
		Inputs:          []attest.Input{{Name: "source", Digest: string(sp.Source)}},
		Env:             sandboxEnv(env, tc, sp.SourceDateEpoch),
		SourceDateEpoch: sp.SourceDateEpoch,
		Builder:         attest.Builder{ID: a.me.ID, Operator: a.me.Operator, KeyID: keys.KeyID(a.o.Key.Public().(ed25519.PublicKey)), Arch: a.o.Arch, AgentVersion: a.o.Version},
		Cache:           cacheInfo,
		Started:         started, Finished: finished,
	}
	for _, in := range sp.Inputs {
		bi.Inputs = append(bi.Inputs, attest.Input{Name: in.Mount, Digest: string(in.Digest)})
	}
	for _, o := range outputs {
		bi.Outputs = append(bi.Outputs, attest.Output{Path: o.Path, Kind: o.Kind, Digest: string(o.Digest), Size: o.Size})
	}
	biJSON, err := json.MarshalIndent(bi, "", "  ")
	if err != nil {
		return builder.Report{}, fmt.Errorf("agent: encode buildinfo: %w", err)
	}
	st, err := attest.Statement(bi)
	if err != nil {
		return builder.Report{}, err
	}
	envelope, err := attest.Sign(ctx, a.o.Key, st)
	if err != nil {
		return builder.Report{}, err
	}
	if rep.BuildInfo, err = a.uploadBytes(ctx, job.ID, biJSON); err != nil {
		return builder.Report{}, fmt.Errorf("agent: upload buildinfo: %w", err)
	}
	if rep.Attestation, err = a.uploadBytes(ctx, job.ID, envelope); err != nil {
		return builder.Report{}, fmt.Errorf("agent: upload attestation: %w", err)
	}
	return rep, nil
}

// buildCache picks the host directory bound at /cache. The cold witness
// gets an empty one inside the job's directory, removed with it. Any other
// job gets the warm cache of its recipe repository, toolchain and
// architecture: what a build can write there only builds of the same
// repository (whose maintainers could change the recipe anyway) ever read.
func (a *Agent) buildCache(job *builder.Job, tc toolchain.Toolchain, root string) (string, attest.Cache, error) {
	if job.Cold {
		dir := filepath.Join(root, "cache")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", attest.Cache{}, fmt.Errorf("agent: create the cold cache: %w", err)
		}
		return dir, attest.Cache{Cold: true}, nil
	}
	key := CacheKey(job.Spec.Recipe.RepoURL, tc.Name, tc.Version, a.o.Arch)
	dir := filepath.Join(a.o.CacheDir, "builds", key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", attest.Cache{}, fmt.Errorf("agent: create cache %s: %w", key, err)
	}
	return dir, attest.Cache{Key: key}, nil
}

// CacheKey names the warm cache of builds of the recipe repository repo
// with toolchain name at version on arch.
func CacheKey(repo, name, version, arch string) string {
	sum := sha256.Sum256([]byte(repo + "\x00" + name + "\x00" + version + "\x00" + arch))
	return hex.EncodeToString(sum[:16])
}

// sandboxEnv is the environment the steps saw, for the buildinfo.
func sandboxEnv(env map[string]string, tc toolchain.Toolchain, epoch int64) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	path := ""
	for _, b := range tc.Bin {
		path += b + ":"
	}
	out["PATH"] = path + "/usr/local/bin:/usr/bin:/bin"
	out["HOME"] = sandbox.BuildDir
	out["SOURCE_DATE_EPOCH"] = strconv.FormatInt(epoch, 10)
	out["TZ"] = "UTC"
	out["LC_ALL"] = "C.UTF-8"
	return out
}

func (a *Agent) toolchain(req builder.ToolchainReq) (toolchain.Toolchain, error) {
	for _, tc := range a.o.Toolchains {
		if tc.Name == req.Name && builder.Satisfies(tc.Version, req.Version) {
			return tc, nil
		}
	}
	return toolchain.Toolchain{}, errs.E(errs.NotFound, "agent: toolchain %s %q is not on this builder", req.Name, req.Version)
}

// limits is what a job runs with: the timeout, memory and CPUs it asks
// for, which must be within this builder's maxima (a job asking for more is
// refused, naming the limit), and the lower of the job's and this builder's
// ceilings on processes, bytes written and log size.
func (a *Agent) limits(l builder.Limits) (sandbox.Limits, int64, error) {
	m := a.o.MaxLimits
	over := func(what string, want, most int64, flag string) error {
		return errs.E(errs.TooLarge, "the recipe asks for %s %d; this builder allows at most %d (afterlife builder %s)", what, want, most, flag)
	}
	switch {
	case m.Timeout > 0 && l.Timeout() > m.Timeout:
		return sandbox.Limits{}, 0, errs.E(errs.TooLarge, "the recipe asks for a timeout of %s; this builder allows at most %s (afterlife builder --max-timeout)", l.Timeout(), m.Timeout)
	case m.MemoryBytes > 0 && l.MemoryBytes > m.MemoryBytes:
		return sandbox.Limits{}, 0, over("memory bytes", l.MemoryBytes, m.MemoryBytes, "--max-memory")
	case m.CPUs > 0 && l.CPUs > m.CPUs:
		return sandbox.Limits{}, 0, over("CPUs", int64(l.CPUs), int64(m.CPUs), "--max-cpus")
	}
	// or is the request when there is one, else the maximum.
	or := func(want, most int64) int64 {
		if want > 0 {
			return want
		}
		return most
	}
	// lower is the lower of two ceilings, zero meaning none.
	lower := func(a, b int64) int64 {
		if a > 0 && b > 0 {
			return min(a, b)
		}
		return max(a, b)
	}
	return sandbox.Limits{
		Timeout:     time.Duration(or(int64(l.Timeout()), int64(m.Timeout))),
		MemoryBytes: or(l.MemoryBytes, m.MemoryBytes),
		CPUs:        int(or(int64(l.CPUs), int64(m.CPUs))),
		MaxProcs:    int(lower(int64(l.Processes), int64(m.MaxProcs))),
		WriteBytes:  lower(l.WriteBytes, m.WriteBytes),
	}, lower(l.LogBytes, a.o.MaxLogBytes), nil
}

// cached returns the path of a verified copy of blob d, fetching it first
// when this agent has not seen it.
func (a *Agent) cached(ctx context.Context, d blob.Digest) (string, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return "", err
	}
	p := filepath.Join(a.o.CacheDir, "blobs", d.Hex())
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	rc, err := a.o.Coordinator.Fetch(ctx, d)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".fetch-*")
	if err != nil {
		return "", fmt.Errorf("agent: cache %s: %w", d, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), rc); err != nil {
		tmp.Close()
		return "", errs.Wrap(errs.Unavailable, err, "agent: fetch %s", d)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("agent: cache %s: %w", d, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != string(d) {
		return "", errs.E(errs.Invalid, "agent: blob %s arrived with content %s; refusing it", d, got)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("agent: cache %s: %w", d, err)
	}
	return p, nil
}

func (a *Agent) unpack(ctx context.Context, d blob.Digest, dir string) error {
	p, err := a.cached(ctx, d)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.o.Extract(f, dir)
}

func (a *Agent) place(ctx context.Context, d blob.Digest, dst string) error {
	p, err := a.cached(ctx, d)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// hashOutputs checks that every declared output is a regular file under
// out and hashes it.
func hashOutputs(out string, want []builder.Output) ([]builder.OutputFile, error) {
	root, err := os.OpenRoot(out)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var files []builder.OutputFile
	for _, o := range want {
		fi, err := root.Lstat(filepath.FromSlash(o.Path))
		if errors.Is(err, os.ErrNotExist) {
			return nil, errs.E(errs.Invalid, "output %s was not produced", o.Path)
		}
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "output %s cannot be read", o.Path)
		}
		if !fi.Mode().IsRegular() {
			return nil, errs.E(errs.Invalid, "output %s is not a regular file", o.Path)
		}
		d, size, err := hashFile(filepath.Join(out, filepath.FromSlash(o.Path)))
		if err != nil {
			return nil, err
		}
		files = append(files, builder.OutputFile{Path: o.Path, Kind: o.Kind, Digest: d, Size: size})
	}
	return files, nil
}

func hashFile(p string) (blob.Digest, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("agent: hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("agent: hash %s: %w", p, err)
	}
	return blob.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), n, nil
}

func (a *Agent) uploadFile(ctx context.Context, jobID, p string, d blob.Digest, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.o.Coordinator.Upload(ctx, jobID, d, size, f)
}

func (a *Agent) uploadBytes(ctx context.Context, jobID string, b []byte) (blob.Digest, error) {
	d := blob.FromBytes(b)
	return d, a.o.Coordinator.Upload(ctx, jobID, d, int64(len(b)), bytesReader(b))
}

// tail is the end of a file, for error messages.
func tail(p string, n int64) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	b := make([]byte, min(n, fi.Size()))
	_, _ = f.ReadAt(b, fi.Size()-int64(len(b)))
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
