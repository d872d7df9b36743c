// Package testenv starts real servers (PostgreSQL, MinIO) for tests, on
// free 127.0.0.1 ports under private temporary directories. Shared servers
// start once per test process; call Main from TestMain so they stop when
// the tests end, and they die with the process if it is killed. A missing
// binary fails the test with a pointer to scripts/test-deps.sh: tests never
// skip. It also holds what tests share about waiting and logs: Eventually,
// the one way a test waits for a condition, and the check that log lines
// put errors under "err" and name each key once. It is imported only by
// tests.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Main runs the tests, then stops every server this package started and
// removes their directories. Use it as the body of TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	stopAll()
	os.Exit(code)
}

// registry holds what must be torn down at process exit: the servers
// started once per process live as long as the process, not a test.
var registry struct {
	sync.Mutex
	teardown []func()
}

func atExit(fn func()) {
	registry.Lock()
	defer registry.Unlock()
	registry.teardown = append(registry.teardown, fn)
}

func stopAll() {
	registry.Lock()
	fns := registry.teardown
	registry.teardown = nil
	registry.Unlock()
	for _, fn := range slices.Backward(fns) {
		fn()
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a server child that dies with the test process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes
}

// startProcess starts cmd with a parent-death signal. The kernel sends that
// signal when the *thread* that forked the child exits, so the fork happens
// on a locked thread that lives until the child has been reaped.
func startProcess(cmd *exec.Cmd) (*process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, and SIGKILL if the process has not exited after grace.
func (p *process) stop(sig os.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFor polls ready until it returns nil, the process exits, or the
// timeout passes.
func waitFor(what string, p *process, timeout time.Duration, ready func() error) error {
	err := Poll(context.Background(), timeout, func() error {
		if p.exited() {
			return GiveUp(fmt.Errorf("exited before it was ready: %v", p.err))
		}
		return ready()
	})
	if err != nil {
		return fmt.Errorf("%s not ready: %w", what, err)
	}
	return nil
}

// logTail is the end of a server's log, for failure messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return strings.TrimSpace(string(b))
}
