package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// requireTools fails the test, loudly, when a real component is missing.
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run scripts/test-deps.sh (it installs bubblewrap, gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm)", tool)
		}
	}
	if slices.Contains(tools, "bwrap") {
		if err := sandbox.Available(); err != nil {
			t.Fatalf("bubblewrap cannot make a sandbox here: %v", err)
		}
	}
}

type dirs struct{ work, inputs, out, cache string }

func newDirs(t testing.TB) dirs {
	t.Helper()
	root := t.TempDir()
	d := dirs{
		work:   filepath.Join(root, "work"),
		inputs: filepath.Join(root, "inputs"),
		out:    filepath.Join(root, "out"),
		cache:  filepath.Join(root, "cache"),
	}
	for _, p := range []string{d.work, d.inputs, d.out, d.cache} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.inputs, "input.txt"), []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d dirs) spec(steps ...string) sandbox.Spec {
	return sandbox.Spec{
		WorkDir: d.work, Inputs: d.inputs, OutDir: d.out, Cache: d.cache,
		Steps: steps, SourceDateEpoch: 1700000000,
		Limits: sandbox.Limits{Timeout: time.Minute},
	}
}

// run runs steps and returns the result, the error and the log.
func run(t *testing.T, spec sandbox.Spec) (sandbox.Result, error, string) {
	t.Helper()
	var log bytes.Buffer
	spec.Log = &log
	res, err := sandbox.Run(context.Background(), spec)
	return res, err, log.String()
}

func mustSucceed(t *testing.T, spec sandbox.Spec) string {
	t.Helper()
	res, err, log := run(t, spec)
	if err != nil {
		t.Fatalf("sandbox run failed: %v (%+v)\nlog:\n%s", err, res, log)
	}
	return log
}

func readOut(t *testing.T, d dirs, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.out, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestAvailableFindsAWorkingBubblewrap(t *testing.T) {
	requireTools(t, "bwrap")
	if err := sandbox.Available(); err != nil {
		t.Fatal(err)
	}
}

func TestAStepCannotReachTheNetworkNotEvenAHostLoopbackPort(t *testing.T) {
	requireTools(t, "bwrap", "bash")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	probe := "exec 3<>/dev/tcp/127.0.0.1/" + strconv.Itoa(port) + " && echo connected"

	// The same probe outside the sandbox connects: it is a working probe.
	out, err := exec.Command("bash", "-c", probe).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "connected") {
		t.Fatalf("the probe does not work outside the sandbox: %v %s", err, out)
	}
	// The listener accepts in its own goroutine: wait until it has counted
	// the probe's connection, or it would be counted against the sandbox.
	testenv.Eventually(t, 10*time.Second, func() error {
		if accepted.Load() < 1 {
			return fmt.Errorf("the listener has not accepted the outside probe yet")
		}
		return nil
	})
	before := accepted.Load()

	d := newDirs(t)
	res, err, log := run(t, d.spec("bash -c '"+probe+"'"))
	if err == nil || res.FailedStep != 1 || strings.Contains(log, "\nconnected\n") {
		t.Fatalf("a step connected to the host's 127.0.0.1:%d: err=%v result=%+v\nlog:\n%s", port, err, res, log)
	}
	if got := accepted.Load(); got != before {
		t.Fatalf("the host listener accepted %d connections from the sandbox", got-before)
	}
	// Only a loopback interface exists, and it is down.
	log = mustSucceed(t, d.spec("cat /proc/net/dev > /out/netdev"))
	for _, line := range strings.Split(readOut(t, d, "netdev"), "\n")[2:] {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), ":"); name != "lo" {
			t.Fatalf("the sandbox sees network interface %q\nlog:\n%s", name, log)
		}
	}
}

func TestAStepCannotReadHostFilesOutsideItsBinds(t *testing.T) {
	requireTools(t, "bwrap")
	dataDir := filepath.Join(t.TempDir(), "data")
	keyFile := filepath.Join(dataDir, "keys", "builder.key")
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	const secret = "PRIVATE-KEY-material-5d1f"
	if err := os.WriteFile(keyFile, []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDirs(t)
	res, err, log := run(t, d.spec("cat "+keyFile))
	if err == nil || strings.Contains(log, secret) {
		t.Fatalf("a step read %s: err=%v result=%+v\nlog:\n%s", keyFile, err, res, log)
	}
	// Nor can it find it by searching, or see the host's /etc or /root.
	mustSucceed(t, d.spec("(find / -xdev -name builder.key 2>/dev/null || true) > /out/found; ls /etc > /out/etc; test ! -e /root && test ! -e /home && test ! -e /var"))
	if got := readOut(t, d, "found"); got != "" {
		t.Fatalf("find located the key inside the sandbox: %q", got)
	}
	if got := strings.Fields(readOut(t, d, "etc")); !slices.Equal(got, []string{"alternatives", "group", "passwd"}) && !slices.Equal(got, []string{"group", "passwd"}) {
		t.Fatalf("/etc in the sandbox holds %v, want only passwd, group (and alternatives)", got)
	}
}

func TestWritesSucceedOnlyInBuildOutCacheAndTmp(t *testing.T) {
	requireTools(t, "bwrap")
	tests := []struct {
		name   string
		path   string
		writes bool
	}{
		{"the work dir is writable", "/build/probe", true},
		{"the output dir is writable", "/out/probe", true},
		{"the cache is writable", "/cache/probe", true},
		{"tmp is writable", "/tmp/probe", true},
		{"inputs are read-only", "/inputs/probe", false},
		{"an existing input cannot be changed", "/inputs/input.txt", false},
		{"usr is read-only", "/usr/probe", false},
		{"usr/bin is read-only", "/usr/bin/probe", false},
		{"etc is read-only", "/etc/probe", false},
		{"the root is read-only", "/probe", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirs(t)
			res, err, log := run(t, d.spec("echo x >> "+tt.path))
			if tt.writes && err != nil {
				t.Fatalf("writing %s failed: %v\nlog:\n%s", tt.path, err, log)
			}
			if !tt.writes && (err == nil || res.FailedStep != 1) {
				t.Fatalf("writing %s succeeded, want a failure\nlog:\n%s", tt.path, log)
			}
		})
	}
	t.Run("files written to build and out appear on the host", func(t *testing.T) {
		d := newDirs(t)
		mustSucceed(t, d.spec("echo built > /out/result", "echo note > /build/note"))
		if got := readOut(t, d, "result"); got != "built" {
			t.Fatalf("out/result = %q", got)
		}
		if b, err := os.ReadFile(filepath.Join(d.work, "note")); err != nil || string(b) != "note\n" {
			t.Fatalf("work/note = %q, %v", b, err)
		}
	})
}

func TestAStepIsKilledAtItsTimeLimitWithTheReason(t *testing.T) {
	requireTools(t, "bwrap")
	d := newDirs(t)
	spec := d.spec("true", "sleep 60; echo woke > /out/late")
	spec.Limits.Timeout = 2 * time.Second
	start := time.Now()
	res, err, log := run(t, spec)
	elapsed := time.Since(start)
	if !errs.Is(err, errs.TooLarge) {
		t.Fatalf("err = %v (kind %v), want a too_large time limit error\nlog:\n%s", err, errs.KindOf(err), log)
	}
	if res.Failure != sandbox.FailTimeout || res.Reason != "time limit 2s exceeded" || res.FailedStep != 2 {
		t.Fatalf("result = %+v, want time_limit in step 2 with reason %q", res, "time limit 2s exceeded")
	}
	if elapsed > 10*time.Second {
		t.Fatalf("Run returned after %s, long after its 2s limit", elapsed)
	}
	if !strings.Contains(log, "killed: time limit 2s exceeded") {
		t.Fatalf("the log does not say why the build stopped:\n%s", log)
	}
	// Nothing of the sandbox survives the kill.
	if out, _ := exec.Command("pgrep", "-f", "sleep 60; echo woke").Output(); len(out) > 0 {
		t.Fatalf("sandbox processes survived the time limit: %s", out)
	}
}

func TestAFailingStepIsNamedWithItsExitStatus(t *testing.T) {
	requireTools(t, "bwrap")
	d := newDirs(t)
	res, err, log := run(t, d.spec("echo first", "echo second; exit 7", "echo third > /out/third"))
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("err = %v, want kind invalid", err)
	}
	if res.Failure != sandbox.FailStep || res.FailedStep != 2 || res.ExitCode != 7 || res.Reason != "step 2 exited with status 7" {
		t.Fatalf("result = %+v", res)
	}
	if _, err := os.Stat(filepath.Join(d.out, "third")); err == nil {
		t.Fatal("the step after the failing one ran")
	}
	for _, want := range []string{"==> step 1/3: echo first\nfirst\n", "==> step 2/3: echo second; exit 7\nsecond\n", "==> step 2/3 failed with status 7"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	t.Run("an unset variable fails the step because steps run with sh -eu", func(t *testing.T) {
		res, _, _ := run(t, d.spec("echo $NOT_SET_ANYWHERE"))
		if res.FailedStep != 1 || res.ExitCode == 0 {
			t.Fatalf("result = %+v", res)
		}
	})
}

func TestTheEnvironmentIsExactlyTheClearedSet(t *testing.T) {
	requireTools(t, "bwrap")
	t.Setenv("AFTERLIFE_HOST_SECRET", "must-not-leak")
	d := newDirs(t)
	spec := d.spec("env | sort > /out/env")
	spec.Env = map[string]string{"GOTOOLCHAIN": "local", "GOCACHE": "/cache/go-build"}
	spec.Path = []string{"/usr/local/go/bin"}
	mustSucceed(t, spec)
	want := []string{
		"GOCACHE=/cache/go-build",
		"GOTOOLCHAIN=local",
		"HOME=/build",
		"LC_ALL=C.UTF-8",
		"PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin",
		"PWD=/build", // set by sh itself
		"SOURCE_DATE_EPOCH=1700000000",
		"TZ=UTC",
	}
	if got := strings.Split(readOut(t, d, "env"), "\n"); !slices.Equal(got, want) {
		t.Fatalf("environment in the sandbox:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Run("the sandbox's own variables cannot be overridden", func(t *testing.T) {
		spec := d.spec("true")
		spec.Env = map[string]string{"SOURCE_DATE_EPOCH": "1"}
		if _, err := sandbox.Run(context.Background(), spec); !errs.Is(err, errs.Invalid) {
			t.Fatalf("err = %v, want invalid", err)
		}
	})
}

func TestUmaskIs022WhateverTheHostUses(t *testing.T) {
	requireTools(t, "bwrap")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	d := newDirs(t)
	mustSucceed(t, d.spec("umask > /out/umask", "touch /out/file && mkdir /out/dir"))
	if got := readOut(t, d, "umask"); got != "0022" {
		t.Fatalf("umask = %s, want 0022", got)
	}
	for name, want := range map[string]os.FileMode{"file": 0o644, "dir": 0o755 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(d.out, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Fatalf("%s has mode %v, want %v", name, fi.Mode(), want)
		}
	}
}

func TestTheCPULimitPinsTheBuildToThatManyCPUs(t *testing.T) {
	requireTools(t, "bwrap", "taskset")
	d := newDirs(t)
	sp := d.spec("nproc > /out/nproc")
	sp.Limits.CPUs = 1
	mustSucceed(t, sp)
	if got := readOut(t, d, "nproc"); got != "1" {
		t.Fatalf("nproc inside = %s, want 1", got)
	}
}

func TestSourceDateEpochTimezoneAndPathsAreFixed(t *testing.T) {
	requireTools(t, "bwrap")
	d := newDirs(t)
	mustSucceed(t, d.spec(
		`date -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%dT%H:%M:%S %Z' > /out/date`,
		`pwd > /out/pwd; id -u > /out/uid; id -un > /out/user; cat /inputs/input.txt > /out/input`,
	))
	checks := map[string]string{"date": "2023-11-14T22:13:20 UTC", "pwd": "/build", "uid": "1000", "user": "build", "input": "input"}
	for file, want := range checks {
		if got := readOut(t, d, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
}

func TestACanceledContextStopsTheBuild(t *testing.T) {
	requireTools(t, "bwrap")
	d := newDirs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spec := d.spec("echo started; sleep 60")
	// Cancel as soon as the step has visibly started.
	spec.Log = &onWrite{contains: "started\n", do: cancel}
	res, err := sandbox.Run(ctx, spec)
	if !errs.Is(err, errs.Unavailable) || res.Failure != sandbox.FailCanceled {
		t.Fatalf("err = %v, result %+v, want a canceled build", err, res)
	}
}

func TestBadSpecsAreRejectedBeforeAnythingRuns(t *testing.T) {
	d := newDirs(t)
	tests := []struct {
		name string
		edit func(*sandbox.Spec)
	}{
		{"a missing work dir", func(s *sandbox.Spec) { s.WorkDir = "" }},
		{"a relative output dir", func(s *sandbox.Spec) { s.OutDir = "out" }},
		{"an output dir that does not exist", func(s *sandbox.Spec) { s.OutDir = filepath.Join(d.out, "nope") }},
		{"no steps", func(s *sandbox.Spec) { s.Steps = nil }},
		{"an attempt to override PATH", func(s *sandbox.Spec) { s.Env = map[string]string{"PATH": "/evil"} }},
		{"a relative bind", func(s *sandbox.Spec) { s.Binds = []sandbox.Bind{{Host: "data"}} }},
	}
	for _, tt := range tests {
		t.Run("it refuses "+tt.name, func(t *testing.T) {
			spec := d.spec("true")
			tt.edit(&spec)
			if _, err := sandbox.Run(context.Background(), spec); !errs.Is(err, errs.Invalid) {
				t.Fatalf("err = %v, want invalid", err)
			}
		})
	}
}

// onWrite calls do once the text written so far contains contains.
type onWrite struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	contains string
	do       func()
	done     bool
}

func (w *onWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.contains) {
		w.done = true
		w.do()
	}
	return len(p), nil
}
