package agent

// This file runs a job's steps in the sandbox: the toolchain, the limits,
// the build cache and the environment it gets, and the outputs it leaves.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes/constraint"
)

// built is what a job's run in the sandbox left: its outputs, or why the
// build failed, and what the buildinfo records of how it ran.
type built struct {
	tc      toolchain.Toolchain
	tools   []toolchain.Toolchain // the tools the job declared, bound beside tc
	env     map[string]string     // the toolchain's variables the steps got, beside the sandbox's own
	cache   attest.Cache
	outputs []builder.OutputFile
	failed  bool
	reason  string
}

// build runs the job's steps in the sandbox over the workspace the inputs
// were fetched into, writing the build's log to live, and hashes the
// declared outputs. A build that fails is a built with failed set; an error
// means the sandbox could not run it here (or the job was interrupted).
func (a *Agent) build(ctx context.Context, job *builder.Job, tc toolchain.Toolchain, tools []toolchain.Toolchain, ws *sandbox.Workspace, limits sandbox.Limits, maxLog int64, live io.Writer, logPath string) (built, error) {
	sp := job.Spec
	cache, cacheInfo, err := a.buildCache(job, tc, ws.Root)
	if err != nil {
		return built{}, err
	}
	if cacheInfo.Cold {
		fmt.Fprintf(live, "==> cache: cold witness: %s is empty and this job's alone\n", sandbox.CacheDir)
	} else {
		fmt.Fprintf(live, "==> cache: warm, %s key %s (builds of %s with %s %s on %s only)\n",
			sandbox.CacheDir, cacheInfo.Key, sp.Recipe.RepoURL, tc.Name, tc.Version, a.o.Arch)
	}

	for _, t := range tools {
		fmt.Fprintf(live, "==> tool %s %s\n", t.Name, t.Version)
	}
	box := tc.With(tools...)
	env := map[string]string{}
	for k, v := range box.Env {
		env[k] = v
	}
	if tc.Name == toolchain.Go {
		env["GOCACHE"] = sandbox.CacheDir + "/go-build"
	}
	wsNote, err := ws.Limit(limits.WriteBytes)
	if err != nil {
		return built{}, err
	}
	capped := builder.NewCappedLog(live, maxLog)
	res, runErr := sandbox.Run(ctx, sandbox.Spec{
		WorkDir: ws.Build, Inputs: ws.Inputs, OutDir: ws.Out, Cache: cache, TmpDir: ws.Tmp,
		ReadOnly: box.Paths, Path: box.Bin, Env: env, UIDs: a.o.UIDs,
		Steps: sp.Steps, SourceDateEpoch: sp.SourceDateEpoch, Limits: limits, Log: capped,
	})
	_ = capped.Close()
	for _, e := range append(res.Enforced, wsNote, fmt.Sprintf("log: %d bytes, head and tail kept beyond", maxLog)) {
		fmt.Fprintf(live, "==> limit %s\n", e)
	}
	if res.Failure == sandbox.FailCanceled || ctx.Err() != nil {
		return built{}, errs.Wrap(errs.Unavailable, context.Canceled, "agent: build interrupted")
	}
	if runErr != nil && res.Failure == sandbox.FailSandbox {
		return built{}, errs.Wrap(errs.Unavailable, runErr, "agent: the sandbox did not start (log ends: %q)", tail(logPath, 400))
	}
	b := built{tc: tc, tools: tools, env: env, cache: cacheInfo}
	if runErr != nil {
		b.failed, b.reason = true, res.Reason
	} else {
		b.outputs, err = hashOutputs(ws.Out, sp.Outputs)
		if err != nil {
			b.failed, b.reason = true, errs.Message(err)
		}
	}
	fmt.Fprintf(live, "==> build %s in %s\n", map[bool]string{true: "failed: " + b.reason, false: "succeeded"}[b.failed], res.Duration.Round(time.Millisecond))
	return b, nil
}

func (a *Agent) toolchain(req builder.ToolchainReq) (toolchain.Toolchain, error) {
	for _, tc := range a.o.Toolchains {
		if tc.Name == req.Name && constraint.Satisfies(tc.Version, req.Version) {
			return tc, nil
		}
	}
	return toolchain.Toolchain{}, errs.E(errs.NotFound, "agent: toolchain %s %q is not on this builder", req.Name, req.Version)
}

// tools finds the tools a job declares (SBOM generators), each at exactly
// its version; only these reach the sandbox.
func (a *Agent) tools(reqs []builder.ToolchainReq) ([]toolchain.Toolchain, error) {
	pins := make([]toolchain.Pin, len(reqs))
	for i, r := range reqs {
		pins[i] = toolchain.Pin{Name: r.Name, Version: r.Version}
	}
	tools, err := toolchain.FindTools(a.o.Toolchains, pins)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return tools, nil
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
