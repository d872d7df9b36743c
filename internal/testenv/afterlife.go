package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the afterlife binary once per test process and returns its
// path.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "afterlife-bin-")
		if err != nil {
			binary.err = err
			return
		}
		atExit(func() { os.RemoveAll(dir) })
		root, err := moduleRoot()
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "afterlife")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/afterlife")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			binary.err = fmt.Errorf("go build ./cmd/afterlife: %v\n%s", err, out.String())
		}
	})
	if binary.err != nil {
		t.Fatalf("testenv: %v", binary.err)
	}
	return binary.path
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the afterlife module")
	}
	return filepath.Dir(mod), nil
}

// Server is a running `afterlife serve` process.
type Server struct {
	URL   string
	Addr  string
	Data  string
	Token string // the admin token the server wrote, if it initialised the database
	Log   string // path of its combined output
	args  []string
	env   []string
	proc  *process
	t     testing.TB
}

// ServeOptions say how to start a server.
type ServeOptions struct {
	Data string   // data dir; default a fresh t.TempDir()
	Args []string // extra flags, e.g. --database, --blobs, --demo
	Env  []string // extra environment, e.g. AWS_ACCESS_KEY_ID=…
	Addr string   // default a free 127.0.0.1 port
	// Ready is how long to wait for /readyz (default 60s).
	Ready time.Duration
}

// Serve starts `afterlife serve` and waits until /readyz answers 200. The
// process is stopped (SIGTERM) at the end of the test, and its log is
// checked then: a line that breaks the key rule (LogKeyProblem) fails t.
func Serve(t testing.TB, o ServeOptions) *Server {
	t.Helper()
	bin := Binary(t)
	if o.Data == "" {
		o.Data = t.TempDir()
	}
	if o.Addr == "" {
		o.Addr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	}
	if o.Ready == 0 {
		o.Ready = 60 * time.Second
	}
	s := &Server{
		URL: "http://" + o.Addr, Addr: o.Addr, Data: o.Data, t: t,
		Log:  filepath.Join(o.Data, fmt.Sprintf("serve-%d.log", time.Now().UnixNano())),
		args: append([]string{"serve", "--addr", o.Addr, "--data", o.Data}, o.Args...),
		env:  append(os.Environ(), o.Env...),
	}
	if err := s.start(bin, o.Ready); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		s.Stop(syscall.SIGTERM)
		checkLogFile(t, s.Log)
	})
	return s
}

func (s *Server) start(bin string, ready time.Duration) error {
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, s.args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("start afterlife serve: %w", err)
	}
	s.proc = p
	err = waitFor("afterlife serve", p, ready, func() error {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.stop(syscall.SIGKILL, 0)
		return fmt.Errorf("%v\n--- serve log ---\n%s", err, logTail(s.Log))
	}
	// Only the replica that initialised the database has the token.
	tok, err := os.ReadFile(filepath.Join(s.Data, "admin.token"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read admin token: %w", err)
	}
	s.Token = strings.TrimSpace(string(tok))
	return nil
}

// Stop sends sig (SIGTERM for a graceful stop, SIGKILL for a crash) and
// waits for the process to exit, returning its exit error.
func (s *Server) Stop(sig syscall.Signal) error {
	if s.proc == nil {
		return nil
	}
	s.proc.stop(sig, 30*time.Second)
	return s.proc.err
}

// Restart starts the same server again (same flags, data and port) after a
// Stop, as an operator would.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(Binary(s.t), 60*time.Second); err != nil {
		s.t.Fatalf("testenv: restart: %v", err)
	}
}

// Exited reports whether the process has exited.
func (s *Server) Exited() bool { return s.proc.exited() }

// LogTail is the end of the server's output, for failure messages.
func (s *Server) LogTail() string { return logTail(s.Log) }
