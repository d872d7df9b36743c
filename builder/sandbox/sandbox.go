// Package sandbox runs a recipe's build steps inside bubblewrap: no network,
// no host files but the ones bound for the build, a cleared environment,
// fixed paths, SOURCE_DATE_EPOCH, TZ=UTC, umask 022, and time, memory and
// process limits. It owns only running steps and reporting how they ended;
// it must not fetch inputs, hash outputs or know about jobs, recipes or keys.
//
// Run as root, every run takes a host uid of its own (UIDRange), so the
// build is never root on the host and RLIMIT_NPROC counts only its
// processes; processes and memory are bounded by cgroups (v1 or v2), writes
// by a size-limited tmpfs (Workspace). Bind sources are first bound under
// one fixed directory (StageDir) in a private mount namespace, so nothing
// in the sandbox's /proc (mountinfo, cmdline, environ) names a host data
// directory or a job; bwrap reads its arguments from a pipe (--args).
//
// Layout inside the sandbox (always the same, whatever the host paths):
//
//	/build   rw  the recipe repository (WorkDir), also HOME and the cwd
//	/inputs  ro  the build inputs (Inputs)
//	/out     rw  where outputs go (OutDir)
//	/cache   rw  an optional per-builder cache (Cache), e.g. GOCACHE
//	/usr     ro  the host's /usr (sh, tar, gzip, compilers); /bin, /lib… link into it
//	/tmp     rw  a private tmpfs, or the Workspace's tmp (TmpDir)
//	/proc, /dev  minimal, private
package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Fixed paths inside the sandbox.
const (
	BuildDir  = "/build"
	InputsDir = "/inputs"
	OutDir    = "/out"
	CacheDir  = "/cache"
)

// StageDir is where, in a private mount namespace of each run, the host
// paths to bind are first bound (as StageDir/1, StageDir/2…), so bwrap's
// arguments and the sandbox's mount table name only this fixed path.
const StageDir = "/run/afterlife-sandbox/stage"

// nprocSlack is how far above MaxProcs RLIMIT_NPROC sits when a pids
// cgroup enforces MaxProcs: the rlimit is then a backstop, not the limit.
const nprocSlack = 16

// uid and gid of the build user inside the sandbox, the same on every
// builder so that a build that records them stays reproducible.
const (
	buildUID = 1000
	buildGID = 1000
)

// Bind is one extra host path made visible in the sandbox.
type Bind struct {
	Host     string // absolute host path
	Sandbox  string // absolute path inside; Host when empty
	Writable bool
}

// Limits bound what a build may use. Zero means no limit.
type Limits struct {
	Timeout time.Duration
	// MemoryBytes bounds the whole build through a memory cgroup; where no
	// cgroup can be made, each process's address space (RLIMIT_AS).
	MemoryBytes int64
	CPUs        int // the steps are pinned to this many CPUs (sched affinity)
	// MaxProcs bounds processes and threads through a pids cgroup, and the
	// run's own uid through RLIMIT_NPROC (the limit itself where no cgroup
	// can be made, a backstop slightly above it otherwise).
	MaxProcs int
	// WriteBytes bounds what the build writes to /build, /out and /tmp: the
	// size of the Workspace's tmpfs beyond what is staged (Workspace.Limit),
	// or of /tmp alone when the run has no TmpDir.
	WriteBytes int64
}

// Spec describes one sandboxed run.
type Spec struct {
	WorkDir string // host dir bound rw at /build; required
	Inputs  string // host dir bound ro at /inputs; optional
	OutDir  string // host dir bound rw at /out; required
	// Cache is a host dir mounted rw at /cache; optional. As root it is an
	// overlay's upper layer, with a work dir beside it (.NAME.overlay-work),
	// so the mount table does not show its path; one run at a time.
	Cache  string
	TmpDir string // host dir bound rw at /tmp (a Workspace's Tmp); optional

	// ReadOnly are host paths bound read-only at the same path (toolchain
	// directories). Paths under /usr and /etc/alternatives are already
	// visible and skipped.
	ReadOnly []string
	Binds    []Bind
	// Path are directories put in front of /usr/local/bin:/usr/bin:/bin.
	Path []string
	// Env is added to the cleared environment (toolchain env, GOCACHE=…).
	// It may not override PATH, HOME, SOURCE_DATE_EPOCH, TZ or LC_ALL.
	Env map[string]string

	Steps           []string
	SourceDateEpoch int64
	Limits          Limits
	// UIDs is where a run started as root takes its uid (DefaultUIDs when
	// empty). A run started by another user runs as that user.
	UIDs UIDRange
	// noCgroup makes the run use no cgroup, as on a host that has none
	// (tests of the rlimit fallback).
	noCgroup bool
	// Log receives the steps' combined stdout and stderr, with a header
	// line before each step. Nil discards it.
	Log io.Writer
}

// Failure says why a run did not succeed.
type Failure string

// Failures.
const (
	FailNone     Failure = ""
	FailStep     Failure = "step_failed"   // a step exited non-zero or was killed by a signal
	FailTimeout  Failure = "time_limit"    // the time limit ran out
	FailCanceled Failure = "canceled"      // the caller's context ended
	FailSandbox  Failure = "sandbox_error" // bubblewrap could not set the sandbox up
)

// Result is how a run ended.
type Result struct {
	ExitCode   int     // the failed step's exit code, or bwrap's; 0 on success; -1 when killed
	FailedStep int     // 1-based index of the failed step; 0 when none failed
	Failure    Failure // FailNone on success
	Reason     string  // one line for people: "step 2 exited with status 1", "time limit 2s exceeded"
	Duration   time.Duration
	// Enforced lists how each limit was applied on this host, e.g.
	// "memory: RLIMIT_AS 2147483648", for the build log and attestation.
	Enforced []string
}

// runner is the shell program that runs the steps, inside the sandbox. It
// receives the steps as arguments, prints a header before each, runs each
// with `sh -euc` in /build (the cwd bwrap gives it), and reports on fd 3
// "start <step>" before each step and "fail <step> <status>" on a failure. The step itself gets no fd 3, so it cannot fake a report.
// fd 4 carried bwrap's arguments and is closed first.
const runner = `exec 4<&-
umask 022
n=$#
i=0
for step in "$@"; do
  i=$((i+1))
  printf 'start %d\n' "$i" >&3
  printf '==> step %d/%d: %s\n' "$i" "$n" "$step"
  rc=0
  sh -euc "$step" 3>&- 4<&- </dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf 'fail %d %d\n' "$i" "$rc" >&3
    printf '==> step %d/%d failed with status %d\n' "$i" "$n" "$rc"
    exit "$rc"
  fi
done
printf '==> all %d steps done\n' "$n"
`

// Available checks that bubblewrap is installed and can make a sandbox here.
func Available() error {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return errs.E(errs.Unavailable, "sandbox: bubblewrap (bwrap) is not installed: install the Debian package bubblewrap (apt-get install bubblewrap) or run scripts/test-deps.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append(baseArgs(), "--", "/bin/sh", "-c", "exit 0")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bwrap, args...)
	cmd.Stderr = &stderr
	cmd.Env = []string{}
	if err := cmd.Run(); err != nil {
		return errs.Wrap(errs.Unavailable, err, "sandbox: bubblewrap at %s cannot create a sandbox here (%s); it needs user namespaces or root", bwrap, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// baseArgs are the bwrap options every sandbox has: new namespaces (no
// network), no capabilities, the build user, and the read-only system.
func baseArgs() []string {
	args := []string{
		"--unshare-all",
		"--unshare-user", "--uid", strconv.Itoa(buildUID), "--gid", strconv.Itoa(buildGID),
		"--disable-userns",
		"--cap-drop", "ALL",
		"--die-with-parent",
		"--new-session",
		"--clearenv",
		"--ro-bind", "/usr", "/usr",
	}
	// Merged-/usr hosts have /bin → usr/bin; older ones have real dirs.
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				continue
			}
			args = append(args, "--symlink", target, d)
		case fi.IsDir():
			args = append(args, "--ro-bind", d, d)
		}
	}
	return append(args,
		"--proc", "/proc",
		"--dev", "/dev",
		"--dir", "/etc",
		// Debian points /usr/bin/awk and friends through /etc/alternatives.
		"--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
	)
}

// Run runs spec's steps in a fresh sandbox and waits for them. A build that
// fails (a step, a limit) returns its Result and an error whose kind says
// whose fault it was: Invalid for a failing step, TooLarge for an exceeded
// limit, Unavailable for a canceled run or a sandbox that would not start.
func Run(ctx context.Context, spec Spec) (Result, error) {
	start := time.Now()
	res, err := run(ctx, spec)
	res.Duration = time.Since(start)
	return res, err
}

func run(ctx context.Context, spec Spec) (Result, error) {
	if err := spec.validate(); err != nil {
		return Result{Failure: FailSandbox, Reason: errs.Message(err), ExitCode: -1}, err
	}
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		err := Available()
		return Result{Failure: FailSandbox, Reason: errs.Message(err), ExitCode: -1}, err
	}
	logw := spec.Log
	if logw == nil {
		logw = io.Discard
	}
	// The runner in the sandbox and the steps write through one pipe-less
	// writer; a mutex keeps stdout and stderr lines from tearing.
	out := &lockedWriter{w: logw}

	scratch, err := os.MkdirTemp("", "afterlife-sandbox-")
	if err != nil {
		return Result{Failure: FailSandbox, ExitCode: -1, Reason: "cannot create scratch dir"}, errs.Wrap(errs.Internal, err, "sandbox: scratch dir")
	}
	defer os.RemoveAll(scratch)

	// As root, the build gets a uid of its own and sees its binds through
	// StageDir; otherwise it runs as the caller, with the host paths.
	var uid *jobUID
	var enforced []string
	st := &staging{}
	if os.Geteuid() == 0 {
		if uid, err = acquireUID(spec.UIDs); err != nil {
			return Result{Failure: FailSandbox, ExitCode: -1, Reason: errs.Message(err)}, err
		}
		defer uid.release()
		for _, dir := range []string{spec.WorkDir, spec.OutDir, spec.Cache, spec.TmpDir} {
			if dir == "" {
				continue
			}
			if err := chownTree(dir, uid.uid); err != nil {
				return Result{Failure: FailSandbox, ExitCode: -1, Reason: "cannot hand the build dirs to its uid"}, errs.Wrap(errs.Internal, err, "sandbox")
			}
		}
		if spec.Cache != "" {
			if err := os.MkdirAll(cacheWork(spec.Cache), 0o700); err != nil {
				return Result{Failure: FailSandbox, ExitCode: -1, Reason: "cannot create the cache's overlay work dir"}, errs.Wrap(errs.Internal, err, "sandbox")
			}
		}
		if err := os.MkdirAll(StageDir, 0o755); err != nil {
			return Result{Failure: FailSandbox, ExitCode: -1, Reason: "cannot create " + StageDir}, errs.Wrap(errs.Internal, err, "sandbox: stage dir")
		}
		st.root = true
		enforced = append(enforced, fmt.Sprintf("user: host uid %d, this run's alone", uid.uid))
	} else {
		enforced = append(enforced, fmt.Sprintf("user: host uid %d, the builder's own (a uid per run needs root)", os.Geteuid()))
	}
	if err := os.Chmod(scratch, 0o755); err != nil {
		return Result{Failure: FailSandbox, ExitCode: -1}, errs.Wrap(errs.Internal, err, "sandbox: scratch dir")
	}
	args, err := spec.bwrapArgs(scratch, st)
	if err != nil {
		return Result{Failure: FailSandbox, ExitCode: -1, Reason: errs.Message(err)}, err
	}

	// Limits the kernel applies to every process of the sandbox. The
	// cgroup comes first: RLIMIT_AS is only the fallback for memory.
	cg, cgNotes := newCgroup(spec.Limits, spec.noCgroup)
	enforced = append(enforced, cgNotes...)
	if cg != nil {
		defer cg.remove()
	}
	// Only options go through fd 4 (bwrap wants the command on its own
	// command line); the runner and the steps name no host path.
	argv := []string{bwrap, "--args", "4", "--", "/bin/sh", "-c", runner, "afterlife-steps"}
	argv = append(argv, spec.Steps...)
	l := spec.Limits
	var rlimits []string
	if l.MemoryBytes > 0 && (cg == nil || cg.memory == "") {
		rlimits = append(rlimits, "--as="+strconv.FormatInt(l.MemoryBytes, 10))
		enforced = append(enforced, "memory: RLIMIT_AS "+strconv.FormatInt(l.MemoryBytes, 10)+" bytes per process")
	}
	if l.MaxProcs > 0 {
		n, role := l.MaxProcs, "the limit"
		if cg != nil && cg.pids != "" {
			n, role = l.MaxProcs+nprocSlack, "a backstop"
		}
		if uid != nil {
			enforced = append(enforced, fmt.Sprintf("processes: RLIMIT_NPROC %d for uid %d (%s)", n, uid.uid, role))
		} else {
			// The build shares the builder's uid: the rlimit counts what
			// that uid runs already, so the build gets MaxProcs more.
			have := tasksOf(os.Getuid())
			n += have
			enforced = append(enforced, fmt.Sprintf("processes: RLIMIT_NPROC %d for uid %d, shared with the %d tasks it already runs (%s)", n, os.Getuid(), have, role))
		}
		rlimits = append(rlimits, "--nproc="+strconv.Itoa(n))
	}
	if len(rlimits) > 0 {
		prlimit, err := exec.LookPath("prlimit")
		if err != nil {
			return Result{Failure: FailSandbox, ExitCode: -1, Reason: "prlimit (util-linux) is not installed"}, errs.E(errs.Unavailable, "sandbox: limits need prlimit from util-linux")
		}
		argv = append(append(append([]string{prlimit}, rlimits...), "--core=0", "--"), argv...)
	}
	if l.CPUs > 0 {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return Result{Failure: FailSandbox, ExitCode: -1, Reason: "taskset (util-linux) is not installed"}, errs.E(errs.Unavailable, "sandbox: CPU limit needs taskset from util-linux")
		}
		argv = append([]string{taskset, "--cpu-list", cpuList(l.CPUs)}, argv...) // taskset takes no "--": the command follows the list
		enforced = append(enforced, fmt.Sprintf("cpus: affinity %s", cpuList(l.CPUs)))
	}
	if uid != nil {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			return Result{Failure: FailSandbox, ExitCode: -1, Reason: "setpriv (util-linux) is not installed"}, errs.E(errs.Unavailable, "sandbox: a uid per build needs setpriv from util-linux")
		}
		id := strconv.Itoa(uid.uid)
		argv = append([]string{setpriv, "--reuid", id, "--regid", id, "--clear-groups", "--"}, argv...)
	}
	mount := "mount"
	if st.root {
		if mount, err = exec.LookPath("mount"); err != nil {
			return Result{Failure: FailSandbox, ExitCode: -1, Reason: "mount (util-linux) is not installed"}, errs.E(errs.Unavailable, "sandbox: staging binds needs mount from util-linux")
		}
	}
	gateArgs := append([]string{"/bin/sh", "-c", gate, "afterlife-gate", StageDir, mount}, st.pairs...)
	argv = append(append(gateArgs, "--"), argv...)

	runCtx := ctx
	var cancel context.CancelFunc = func() {}
	if spec.Limits.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, spec.Limits.Timeout)
	}
	defer cancel()

	statusR, statusW, err := os.Pipe()
	if err != nil {
		return Result{Failure: FailSandbox, ExitCode: -1}, errs.Wrap(errs.Internal, err, "sandbox: status pipe")
	}
	defer statusR.Close()

	argsR, argsW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		return Result{Failure: FailSandbox, ExitCode: -1}, errs.Wrap(errs.Internal, err, "sandbox: args pipe")
	}
	defer argsW.Close()
	gateR, gateW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		argsR.Close()
		return Result{Failure: FailSandbox, ExitCode: -1}, errs.Wrap(errs.Internal, err, "sandbox: gate pipe")
	}
	defer gateW.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{} // bwrap --clearenv clears again inside; nothing of ours leaks into prlimit/taskset either
	cmd.Stdin = gateR
	cmd.Dir = "/"
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.ExtraFiles = []*os.File{statusW, argsR} // fd 3, fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if st.root {
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS // Go makes the new namespace's mounts private
	}
	err = cmd.Start()
	statusW.Close()
	argsR.Close()
	gateR.Close()
	if err != nil {
		return Result{Failure: FailSandbox, ExitCode: -1, Reason: "cannot start bubblewrap", Enforced: enforced}, errs.Wrap(errs.Unavailable, err, "sandbox: start bwrap")
	}
	go func() {
		defer argsW.Close()
		for _, a := range args {
			if _, err := io.WriteString(argsW, a+"\x00"); err != nil {
				return
			}
		}
	}()
	// The gate waits until the process is in its cgroups, so nothing of
	// the build ever runs outside them.
	if cg != nil {
		if err := cg.join(cmd.Process.Pid); err != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			return Result{Failure: FailSandbox, ExitCode: -1, Reason: "cannot join the build's cgroups", Enforced: enforced}, errs.Wrap(errs.Unavailable, err, "sandbox: join cgroup")
		}
	}
	_, _ = gateW.WriteString("go\n")
	gateW.Close()

	var status stepStatus
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		status = readStatus(statusR)
	}()

	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waitErr:
	case <-runCtx.Done():
		// Kill the whole process group: prlimit/taskset exec into bwrap,
		// and bwrap's pid namespace takes every step process with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if cg != nil {
			cg.kill()
		}
		werr = <-waitErr
	}
	statusR.Close()
	<-statusDone

	res := Result{Enforced: enforced}
	switch {
	case runCtx.Err() != nil && ctx.Err() == nil:
		res.ExitCode, res.Failure = -1, FailTimeout
		res.FailedStep = status.running
		res.Reason = fmt.Sprintf("time limit %s exceeded", spec.Limits.Timeout)
		fmt.Fprintf(out, "==> killed: %s\n", res.Reason)
		return res, errs.E(errs.TooLarge, "sandbox: %s", res.Reason)
	case ctx.Err() != nil:
		res.ExitCode, res.Failure = -1, FailCanceled
		res.Reason = "build canceled: " + ctx.Err().Error()
		return res, errs.Wrap(errs.Unavailable, ctx.Err(), "sandbox: build canceled")
	case werr == nil:
		return res, nil
	}

	var exitErr *exec.ExitError
	if !errors.As(werr, &exitErr) {
		res.ExitCode, res.Failure, res.Reason = -1, FailSandbox, "bubblewrap did not run: "+werr.Error()
		return res, errs.Wrap(errs.Unavailable, werr, "sandbox: bwrap")
	}
	res.ExitCode = exitErr.ExitCode()
	step, code := status.failed, status.code
	if step == 0 {
		if ws, isWS := exitErr.Sys().(syscall.WaitStatus); isWS && ws.Signaled() {
			res.Failure, res.Reason = FailSandbox, "sandbox killed by signal "+ws.Signal().String()
		} else {
			res.Failure, res.Reason = FailSandbox, fmt.Sprintf("bubblewrap failed before the steps ran (exit status %d); see the log", res.ExitCode)
		}
		if cg != nil && cg.pidsExhausted() {
			res.Failure, res.Reason = FailStep, fmt.Sprintf("process limit %d reached (pids cgroup)", spec.Limits.MaxProcs)
			return res, errs.E(errs.TooLarge, "sandbox: %s", res.Reason)
		}
		if cg != nil && cg.memoryExhausted() {
			res.Failure, res.Reason = FailStep, fmt.Sprintf("memory limit %d bytes reached (memory cgroup)", spec.Limits.MemoryBytes)
			return res, errs.E(errs.TooLarge, "sandbox: %s", res.Reason)
		}
		return res, errs.E(errs.Unavailable, "sandbox: %s", res.Reason)
	}
	res.Failure, res.FailedStep, res.ExitCode = FailStep, step, code
	res.Reason = describeExit(step, code)
	if cg != nil && cg.pidsExhausted() {
		res.Reason += fmt.Sprintf(" (process limit %d reached: pids cgroup)", spec.Limits.MaxProcs)
		return res, errs.E(errs.TooLarge, "sandbox: %s", res.Reason)
	}
	if cg != nil && cg.memoryExhausted() {
		res.Reason += fmt.Sprintf(" (memory limit %d bytes reached: memory cgroup)", spec.Limits.MemoryBytes)
		return res, errs.E(errs.TooLarge, "sandbox: %s", res.Reason)
	}
	return res, errs.E(errs.Invalid, "sandbox: %s", res.Reason)
}

func describeExit(step, code int) string {
	if code > 128 && code < 128+65 {
		return fmt.Sprintf("step %d was killed by signal %s", step, syscall.Signal(code-128))
	}
	return fmt.Sprintf("step %d exited with status %d", step, code)
}

// stepStatus is what the runner reported on fd 3.
type stepStatus struct {
	running int // the last step started
	failed  int // the step that failed, 0 if none reported
	code    int // its exit status
}

func readStatus(r io.Reader) stepStatus {
	var st stepStatus
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		nums := make([]int, 0, 2)
		for _, x := range f[min(1, len(f)):] {
			n, err := strconv.Atoi(x)
			if err != nil {
				break
			}
			nums = append(nums, n)
		}
		switch {
		case len(f) == 2 && f[0] == "start" && len(nums) == 1:
			st.running = nums[0]
		case len(f) == 3 && f[0] == "fail" && len(nums) == 2:
			st.failed, st.code = nums[0], nums[1]
		}
	}
	return st
}

func cpuList(n int) string {
	if n <= 1 {
		return "0"
	}
	return "0-" + strconv.Itoa(n-1)
}

// reserved are environment names the sandbox sets itself.
var reserved = []string{"PATH", "HOME", "SOURCE_DATE_EPOCH", "TZ", "LC_ALL"}

func (s Spec) validate() error {
	for name, dir := range map[string]string{"WorkDir": s.WorkDir, "OutDir": s.OutDir} {
		if dir == "" {
			return errs.E(errs.Invalid, "sandbox: %s is required", name)
		}
	}
	for _, dir := range []string{s.WorkDir, s.OutDir, s.Inputs, s.Cache, s.TmpDir} {
		if dir == "" {
			continue
		}
		if !filepath.IsAbs(dir) {
			return errs.E(errs.Invalid, "sandbox: %s is not an absolute path", dir)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return errs.E(errs.Invalid, "sandbox: %s is not a directory", dir)
		}
	}
	if len(s.Steps) == 0 {
		return errs.E(errs.Invalid, "sandbox: no steps to run")
	}
	for k := range s.Env {
		if slices.Contains(reserved, k) {
			return errs.E(errs.Invalid, "sandbox: env %s is set by the sandbox and cannot be overridden", k)
		}
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return errs.E(errs.Invalid, "sandbox: bad env name %q", k)
		}
	}
	for _, b := range s.Binds {
		if !filepath.IsAbs(b.Host) || (b.Sandbox != "" && !filepath.IsAbs(b.Sandbox)) {
			return errs.E(errs.Invalid, "sandbox: bind %s → %s must use absolute paths", b.Host, b.Sandbox)
		}
	}
	if s.SourceDateEpoch < 0 {
		return errs.E(errs.Invalid, "sandbox: SOURCE_DATE_EPOCH %d is negative", s.SourceDateEpoch)
	}
	return nil
}

// gate runs first, outside the sandbox: it waits for a line on stdin (the
// caller has then put it in the build's cgroups), binds each host path of
// its "name path" pairs at StageDir/name (as root, in the run's private
// mount namespace), and execs the rest of its arguments without PWD, which
// names the builder's directory. A name starting with "=" is a small text
// file, copied instead; one starting with "+" is followed by a parent
// directory on a disk and the names, in it, of a writable directory and of
// a work directory: the directory becomes an overlay whose upper layer it
// is and whose lower layer is empty, so writes land in it as through a
// bind, but the mount table shows only StageDir paths (a plain bind from a
// disk would show the directory's own path). Where the overlay cannot be
// made, the directory is bound.
const gate = `read -r _ || exit 125
stage=$1; mount=$2; shift 2
if [ "$1" != "--" ]; then "$mount" -t tmpfs -o mode=0755,size=64k afterlife-stage "$stage" || exit 125; fi
while [ "$1" != "--" ]; do
  case $1 in
  =*) while IFS= read -r line; do printf '%s\n' "$line"; done < "$2" > "$stage/${1#=}" || exit 125; shift 2 ;;
  +*)
    n=$stage/${1#+}
    mkdir "$n" "$n.lo" "$n.p" || exit 125
    "$mount" --bind "$2" "$n.p" || exit 125
    if ! "$mount" -t overlay afterlife-overlay -o "lowerdir=$n.lo,upperdir=$n.p/$3,workdir=$n.p/$4" "$n" 2>/dev/null; then
      printf '==> %s is bound directly: no overlay here\n' "$2/$3" >&2
      "$mount" --bind "$2/$3" "$n" || exit 125
    fi
    shift 4 ;;
  *)
    if [ -d "$2" ]; then mkdir "$stage/$1"; else : > "$stage/$1"; fi || exit 125
    "$mount" --bind "$2" "$stage/$1" || exit 125
    shift 2 ;;
  esac
done
shift
unset PWD OLDPWD
exec "$@" </dev/null
`

// staging maps host paths to the paths bwrap binds from: StageDir/N when
// the run stages its binds (as root), the host path otherwise.
type staging struct {
	root  bool
	n     int
	pairs []string // the gate's arguments: name, host path[, work dir]…
}

func (st *staging) src(host string) string {
	if !st.root {
		return host
	}
	st.n++
	name := strconv.Itoa(st.n)
	st.pairs = append(st.pairs, name, host)
	return StageDir + "/" + name
}

// overlaid is src for a writable directory kept on a disk (the cache):
// the gate mounts it as an overlay's upper layer, with work, beside it, as
// the overlay's work directory (created by the caller).
func (st *staging) overlaid(host, work string) string {
	if !st.root {
		return host
	}
	st.n++
	name := strconv.Itoa(st.n)
	st.pairs = append(st.pairs, "+"+name, filepath.Dir(host), filepath.Base(host), filepath.Base(work))
	return StageDir + "/" + name
}

// copied is src for a small text file, which is copied into the stage
// rather than bound, so not even the mount table shows where it was.
func (st *staging) copied(host string) string {
	if !st.root {
		return host
	}
	st.n++
	name := strconv.Itoa(st.n)
	st.pairs = append(st.pairs, "="+name, host)
	return StageDir + "/" + name
}

func (s Spec) bwrapArgs(scratch string, st *staging) ([]string, error) {
	args := baseArgs()
	// A user database so tools that look up the build user find one.
	passwd := filepath.Join(scratch, "passwd")
	group := filepath.Join(scratch, "group")
	if err := os.WriteFile(passwd, fmt.Appendf(nil, "root:x:0:0:root:/:/bin/sh\nbuild:x:%d:%d:afterlife build:/build:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n", buildUID, buildGID), 0o644); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sandbox: write passwd")
	}
	if err := os.WriteFile(group, fmt.Appendf(nil, "root:x:0:\nbuild:x:%d:\nnogroup:x:65534:\n", buildGID), 0o644); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sandbox: write group")
	}
	args = append(args, "--ro-bind", st.copied(passwd), "/etc/passwd", "--ro-bind", st.copied(group), "/etc/group")

	for _, p := range s.ReadOnly {
		if !filepath.IsAbs(p) {
			return nil, errs.E(errs.Invalid, "sandbox: read-only path %s is not absolute", p)
		}
		if within(p, "/usr") || within(p, "/etc/alternatives") {
			continue // already visible
		}
		args = append(args, "--ro-bind", st.src(p), p)
	}
	for _, b := range s.Binds {
		dst := b.Sandbox
		if dst == "" {
			dst = b.Host
		}
		flag := "--ro-bind"
		if b.Writable {
			flag = "--bind"
		}
		args = append(args, flag, st.src(b.Host), dst)
	}
	args = append(args, "--bind", st.src(s.WorkDir), BuildDir, "--bind", st.src(s.OutDir), OutDir)
	if s.Inputs != "" {
		args = append(args, "--ro-bind", st.src(s.Inputs), InputsDir)
	} else {
		args = append(args, "--dir", InputsDir)
	}
	if s.Cache != "" {
		args = append(args, "--bind", st.overlaid(s.Cache, cacheWork(s.Cache)), CacheDir)
	}
	switch {
	case s.TmpDir != "":
		args = append(args, "--bind", st.src(s.TmpDir), "/tmp")
	case s.Limits.WriteBytes > 0:
		args = append(args, "--size", strconv.FormatInt(s.Limits.WriteBytes, 10), "--tmpfs", "/tmp")
	default:
		args = append(args, "--tmpfs", "/tmp")
	}
	args = append(args, "--chdir", BuildDir)
	// Remount the root read-only once everything is in place: nothing but
	// the rw binds (and /tmp) can be written.
	args = append(args, "--remount-ro", "/")

	env := map[string]string{}
	maps.Copy(env, s.Env)
	path := slices.Clone(s.Path)
	path = append(path, "/usr/local/bin", "/usr/bin", "/bin")
	env["PATH"] = strings.Join(slices.Compact(path), ":")
	env["HOME"] = BuildDir
	env["SOURCE_DATE_EPOCH"] = strconv.FormatInt(s.SourceDateEpoch, 10)
	env["TZ"] = "UTC"
	env["LC_ALL"] = "C.UTF-8"
	for _, k := range slices.Sorted(maps.Keys(env)) {
		args = append(args, "--setenv", k, env[k])
	}
	return args, nil
}

// cacheWork is the overlay work directory of a cache, beside it.
func cacheWork(cache string) string {
	return filepath.Join(filepath.Dir(cache), "."+filepath.Base(cache)+".overlay-work")
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if err != nil {
		// A broken log must not kill the build; the bytes are dropped.
		return len(p), nil
	}
	return n, nil
}
