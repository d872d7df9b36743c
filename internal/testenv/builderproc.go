package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Builder is a running `afterlife builder` agent process.
type Builder struct {
	Name string
	Log  string // path of its combined output
	proc *process
}

// BuilderOptions say how to start a builder agent.
type BuilderOptions struct {
	Coordinator string // the server (or load balancer) URL
	Token       string // a token with the builder role, bound to an operator
	Key         string // key file made by BuilderKeygen
	Name        string // builder name (required: it also names the log)
	// Work is the agent's work and cache directory; give a persistent one
	// to keep Go build caches warm across test runs (default t.TempDir()).
	Work string
	Args []string // extra flags
	Env  []string // extra environment
}

// BuilderKeygen writes a builder key with `afterlife builder keygen` and
// returns its path.
func BuilderKeygen(t testing.TB, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name+".key")
	out, err := exec.Command(Binary(t), "builder", "keygen", path).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: afterlife builder keygen: %v\n%s", err, out)
	}
	return path
}

// StartBuilder starts `afterlife builder` with its output in a log file
// under t.TempDir(). It does not wait for the agent to register: poll
// GET /v1/builders for that. The process is stopped (SIGTERM, which gives
// its job back) at the end of the test, and its log is checked then, as
// Serve's is.
func StartBuilder(t testing.TB, o BuilderOptions) *Builder {
	t.Helper()
	if o.Name == "" {
		t.Fatalf("testenv: StartBuilder needs a Name")
	}
	if o.Work == "" {
		o.Work = t.TempDir()
	}
	b := &Builder{Name: o.Name, Log: filepath.Join(t.TempDir(), "builder-"+o.Name+".log")}
	logf, err := os.OpenFile(b.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("testenv: builder log: %v", err)
	}
	defer logf.Close()
	args := append([]string{"builder", "--coordinator", o.Coordinator, "--token", o.Token, "--key", o.Key,
		"--name", o.Name, "--work", o.Work}, o.Args...)
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProcess(cmd)
	if err != nil {
		t.Fatalf("testenv: start afterlife builder %s: %v", o.Name, err)
	}
	b.proc = p
	t.Cleanup(func() {
		b.Stop(syscall.SIGTERM)
		checkLogFile(t, b.Log)
	})
	return b
}

// Stop sends sig (SIGTERM gives the current job back, SIGKILL is a crash)
// and waits for the process to exit, returning its exit error.
func (b *Builder) Stop(sig syscall.Signal) error {
	b.proc.stop(sig, 30*time.Second)
	return b.proc.err
}

// Exited reports whether the process has exited.
func (b *Builder) Exited() bool { return b.proc.exited() }

// LogTail is the end of the builder's output, for failure messages.
func (b *Builder) LogTail() string { return logTail(b.Log) }

// LogLines returns the lines of the builder's log that contain s.
func (b *Builder) LogLines(s string) []string {
	data, err := os.ReadFile(b.Log)
	if err != nil {
		return []string{"(no log: " + err.Error() + ")"}
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			lines = append(lines, l)
		}
	}
	return lines
}

// String names the builder and its process, for messages.
func (b *Builder) String() string {
	return fmt.Sprintf("builder %s (pid %d)", b.Name, b.proc.cmd.Process.Pid)
}
