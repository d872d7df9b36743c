package sandbox

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// requireRoot fails a test of what only a builder run as root gets: a uid
// per run, cgroups, the workspace tmpfs, staged binds.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (a uid per run, cgroups, the workspace tmpfs); run it as make test does")
	}
}

// limitSpec is a run in a fresh Workspace, as the agent makes one.
func limitSpec(t *testing.T, steps ...string) (Spec, *Workspace) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("bubblewrap cannot make a sandbox here (run scripts/test-deps.sh): %v", err)
	}
	ws, err := NewWorkspace(filepath.Join(t.TempDir(), "job"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return Spec{
		WorkDir: ws.Build, Inputs: ws.Inputs, OutDir: ws.Out, TmpDir: ws.Tmp,
		Steps: steps, SourceDateEpoch: 1700000000,
		Limits: Limits{Timeout: 30 * time.Second},
	}, ws
}

func runLimited(t *testing.T, spec Spec) (Result, error, string) {
	t.Helper()
	var log bytes.Buffer
	spec.Log = &log
	res, err := Run(context.Background(), spec)
	t.Logf("reason: %q; enforced: %q", res.Reason, res.Enforced)
	return res, err, log.String()
}

// hasPrefix reports whether one of notes starts with prefix.
func hasPrefix(notes []string, prefix string) bool {
	return slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, prefix) })
}

// The fork loop is bounded: 200 sleepers, each gone after a few seconds, so
// a sandbox without a process limit still ends.
const forkLoop = `i=0; while [ $i -lt 200 ]; do sleep 3 & i=$((i+1)); echo $i > /out/forked; done; echo "spawned-$i"`

func TestAForkLoopEndsAtTheProcessLimit(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name      string
		noCgroup  bool
		mechanism string // the Enforced note that must have stopped it
	}{
		{"a pids cgroup stops it and the reason names it", false, "processes: pids cgroup"},
		{"without a cgroup RLIMIT_NPROC on the run's own uid stops it", true, "processes: RLIMIT_NPROC 64 for uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, _ := limitSpec(t, forkLoop)
			spec.Limits.MaxProcs = 64
			spec.noCgroup = tt.noCgroup
			res, err, log := runLimited(t, spec)
			if err == nil || strings.Contains(log, "spawned-200") {
				t.Fatalf("200 processes ran under a limit of 64: err=%v\nlog:\n%s", err, log)
			}
			if !hasPrefix(res.Enforced, tt.mechanism) {
				t.Fatalf("enforced %q, want %q", res.Enforced, tt.mechanism)
			}
			if !tt.noCgroup {
				if !errs.Is(err, errs.TooLarge) || !strings.Contains(res.Reason, "process limit 64 reached") || !strings.Contains(res.Reason, "pids cgroup") {
					t.Fatalf("err %v, reason %q: want too_large naming the process limit and the pids cgroup", err, res.Reason)
				}
				t.Logf("enforced by the pids cgroup (RLIMIT_NPROC is a backstop above it)")
				return
			}
			if hasPrefix(res.Enforced, "processes: pids cgroup") || res.FailedStep != 1 {
				t.Fatalf("the rlimit case used a cgroup or did not fail the step: %+v", res)
			}
			b, err := os.ReadFile(filepath.Join(spec.OutDir, "forked"))
			n := strings.TrimSpace(string(b))
			if err != nil || n == "" || len(n) > 2 {
				t.Fatalf("the loop forked %q times (%v), want fewer than 64", n, err)
			}
			t.Logf("enforced by RLIMIT_NPROC: the loop stopped after %s forks", n)
		})
	}
}

// The hog doubles a string until it holds 128 MiB: twice the limit.
const memoryHog = `awk 'BEGIN { s = "x"; while (length(s) < 134217728) s = s s; print length(s) > "/out/len" }'`

func TestAMemoryHogEndsAtTheMemoryLimit(t *testing.T) {
	requireRoot(t)
	t.Run("the memory cgroup kills it and the reason names it", func(t *testing.T) {
		spec, _ := limitSpec(t, memoryHog)
		spec.Limits.MemoryBytes = 64 << 20
		res, err, log := runLimited(t, spec)
		if err == nil || res.FailedStep != 1 {
			t.Fatalf("a 128 MiB string fit in 64 MiB: %+v\nlog:\n%s", res, log)
		}
		if !hasPrefix(res.Enforced, "memory: memory cgroup") || hasPrefix(res.Enforced, "memory: RLIMIT_AS") {
			t.Fatalf("enforced %q: want the memory cgroup alone", res.Enforced)
		}
		if !errs.Is(err, errs.TooLarge) || !strings.Contains(res.Reason, "memory limit 67108864 bytes reached: memory cgroup") {
			t.Fatalf("err %v, reason %q: want too_large naming the memory cgroup", err, res.Reason)
		}
	})
	t.Run("without a cgroup RLIMIT_AS makes its allocation fail", func(t *testing.T) {
		spec, _ := limitSpec(t, memoryHog)
		spec.Limits.MemoryBytes = 64 << 20
		spec.noCgroup = true
		res, err, log := runLimited(t, spec)
		if err == nil || res.FailedStep != 1 {
			t.Fatalf("a 128 MiB string fit in 64 MiB: %+v\nlog:\n%s", res, log)
		}
		if !slices.Contains(res.Enforced, "memory: RLIMIT_AS 67108864 bytes per process") {
			t.Fatalf("enforced %q: want RLIMIT_AS", res.Enforced)
		}
	})
	t.Run("the same step succeeds with room, so the limit made it fail", func(t *testing.T) {
		spec, _ := limitSpec(t, memoryHog)
		spec.Limits.MemoryBytes = 512 << 20
		if _, err, log := runLimited(t, spec); err != nil {
			t.Fatalf("%v\nlog:\n%s", err, log)
		}
	})
}

func TestWritesEndAtTheWorkspaceSize(t *testing.T) {
	requireRoot(t)
	spec, ws := limitSpec(t, `head -c 4000000 /dev/zero > /build/big`, `head -c 4000000 /dev/zero > /tmp/big`)
	note, err := ws.Limit(6 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(note, "bytes written: tmpfs of") {
		t.Fatalf("note %q: want a tmpfs size", note)
	}
	res, err, log := runLimited(t, spec)
	if err == nil || res.FailedStep != 2 || !strings.Contains(log, "No space left on device") {
		t.Fatalf("8 MB were written to a 6 MiB workspace: %+v\nlog:\n%s", res, log)
	}
}

// The run binds what the agent binds for a job: its workspace, a toolchain
// directory, and a cache on a disk under the builder's data directory.
func TestTheSandboxProcNamesNeitherTheJobNorItsHostDirectories(t *testing.T) {
	requireRoot(t)
	const jobID = "job-0193af17c0de"
	data := filepath.Join(t.TempDir(), "afterlife-data-3f9c")
	tc := filepath.Join(t.TempDir(), "toolchain") // a host install, not builder data
	cache := filepath.Join(data, "cache", "sandbox")
	for _, d := range []string{data, tc, cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	ws, err := NewWorkspace(filepath.Join(data, jobID))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := os.WriteFile(filepath.Join(ws.Inputs, "in.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		WorkDir: ws.Build, Inputs: ws.Inputs, OutDir: ws.Out, TmpDir: ws.Tmp, Cache: cache,
		Binds: []Bind{{Host: tc, Sandbox: "/opt/toolchain"}},
		Steps: []string{
			`for f in /proc/self/mountinfo /proc/*/cmdline /proc/*/environ; do cat "$f" 2>/dev/null; echo; done > /out/proc`,
			`mkdir -p /cache/go-build/00 && echo kept > /cache/go-build/00/entry && mv /cache/go-build/00 /cache/go-build/01`,
		},
		SourceDateEpoch: 1700000000,
		Limits:          Limits{Timeout: 30 * time.Second, MaxProcs: 64, MemoryBytes: 256 << 20},
	}
	if _, err, log := runLimited(t, spec); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log)
	}
	b, err := os.ReadFile(filepath.Join(ws.Out, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	seen := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
	if b, err := os.ReadFile(filepath.Join(cache, "go-build", "01", "entry")); err != nil || string(b) != "kept\n" {
		t.Fatalf("a write to /cache did not reach the cache on the host: %q, %v", b, err)
	}
	if !strings.Contains(seen, "/build") || !strings.Contains(seen, " /cache ") || !strings.Contains(seen, "afterlife-steps") {
		t.Fatalf("the probe saw neither the mount table nor the runner:\n%s", seen)
	}
	for _, line := range strings.Split(seen, "\n") {
		if strings.Contains(line, " /cache ") || strings.Contains(line, " /build ") {
			t.Logf("mountinfo: %s", line)
		}
	}
	for _, secret := range []string{data, "afterlife-data-3f9c", jobID, filepath.Dir(data)} {
		if strings.Contains(seen, secret) {
			t.Errorf("the sandbox's /proc names %q:\n%s", secret, seen)
		}
	}
}

func TestAWorkspaceLeftBehindIsUnmountedAndRemoved(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "job_left")
	ws, err := NewWorkspace(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws.Out, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The builder died here, before Close.
	if err := RemoveWorkspace(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s is still there: %v", dir, err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mounts, []byte(dir)) {
		t.Fatalf("%s is still mounted", dir)
	}
	if err := RemoveWorkspace(dir); err != nil {
		t.Fatalf("removing it again: %v", err)
	}
}

// asNobody is set when the test binary runs itself as nobody, as an
// unprivileged builder runs (the hardened systemd unit).
const asNobody = "AFTERLIFE_SANDBOX_TEST_AS_NOBODY"

func TestWithoutRootAForkLoopEndsAtRLIMITNPROCOnTheBuildersUid(t *testing.T) {
	if os.Getenv(asNobody) == "1" {
		dir := t.TempDir()
		var d [3]string
		for i, name := range []string{"work", "out", "inputs"} {
			d[i] = filepath.Join(dir, name)
			if err := os.Mkdir(d[i], 0o755); err != nil {
				t.Fatal(err)
			}
		}
		res, err, log := runLimited(t, Spec{WorkDir: d[0], OutDir: d[1], Inputs: d[2], Steps: []string{forkLoop}, SourceDateEpoch: 1,
			Limits: Limits{Timeout: 30 * time.Second, MaxProcs: 64}})
		if err == nil || strings.Contains(log, "spawned-200") || res.FailedStep != 1 {
			t.Fatalf("200 processes ran under a limit of 64 as nobody: err=%v\nlog:\n%s", err, log)
		}
		if !hasPrefix(res.Enforced, "processes: RLIMIT_NPROC") || !hasPrefix(res.Enforced, "user: host uid 65534, the builder's own") {
			t.Fatalf("enforced %q", res.Enforced)
		}
		t.Logf("as nobody, enforced by RLIMIT_NPROC: %q", res.Enforced)
		return
	}
	requireRoot(t)
	// Copy this test binary where nobody may run it.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sandbox.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
		bin, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = []string{asNobody + "=1", "PATH=/usr/bin:/bin", "TMPDIR=/tmp", "HOME=/tmp"}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("the run as nobody failed: %v", err)
	}
}
