package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
)

// MinIOServer is a MinIO server of our own, on a single local drive.
type MinIOServer struct {
	Endpoint  string // 127.0.0.1:PORT
	AccessKey string
	SecretKey string

	bin         string
	dir         string // holds data/, certs/ and minio.log
	consolePort int
	bucketSeq   atomic.Int64
	mu          sync.Mutex
	proc        *process
}

// MinIOBinary is where scripts/test-deps.sh builds MinIO:
// $AFTERLIFE_CACHE/bin/minio, by default ~/.cache/afterlife/bin/minio.
func MinIOBinary() string {
	cache := os.Getenv("AFTERLIFE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		cache = filepath.Join(home, ".cache", "afterlife")
	}
	return filepath.Join(cache, "bin", "minio")
}

// MinIO returns a server started once per test process. Do not stop it:
// tests that take MinIO away use StartMinIO.
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	shared.minioOnce.Do(func() {
		shared.minio, shared.minioErr = newMinIO()
		if shared.minioErr == nil {
			atExit(shared.minio.destroy)
		}
	})
	if shared.minioErr != nil {
		t.Fatalf("testenv: start MinIO: %v", shared.minioErr)
	}
	return shared.minio
}

// StartMinIO starts a server of the test's own, which it may Stop and
// Start again; it is removed when the test ends.
func StartMinIO(t testing.TB) *MinIOServer {
	t.Helper()
	s, err := newMinIO()
	if err != nil {
		t.Fatalf("testenv: start MinIO: %v", err)
	}
	t.Cleanup(s.destroy)
	return s
}

func newMinIO() (*MinIOServer, error) {
	bin := MinIOBinary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s is missing (%v): run scripts/test-deps.sh", bin, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "afterlife-minio-")
	if err != nil {
		return nil, err
	}
	s := &MinIOServer{
		Endpoint:    fmt.Sprintf("127.0.0.1:%d", port),
		AccessKey:   "afterlife-test",
		SecretKey:   "afterlife-test-" + randomHex(8),
		bin:         bin,
		dir:         dir,
		consolePort: consolePort,
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *MinIOServer) logPath() string { return filepath.Join(s.dir, "minio.log") }

// Start runs the server (again) on the same data directory and port, and
// waits until it reports itself ready.
func (s *MinIOServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return nil
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "server", filepath.Join(s.dir, "data"),
		"--address", s.Endpoint,
		"--console-address", "127.0.0.1:"+strconv.Itoa(s.consolePort),
		"--certs-dir", filepath.Join(s.dir, "certs"), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("minio: %w", err)
	}
	s.proc = p
	client := &http.Client{Timeout: 2 * time.Second}
	err = waitFor("minio", p, 90*time.Second, func() error {
		for _, path := range []string{"/minio/health/live", "/minio/health/ready"} {
			resp, err := client.Get("http://" + s.Endpoint + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", path, resp.Status)
			}
		}
		// The health endpoints answer before the S3 API has loaded its
		// users; until then it answers 503 to everything.
		resp, err := client.Get("http://" + s.Endpoint + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			return fmt.Errorf("S3 API: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.stop(syscall.SIGKILL, 0)
		return fmt.Errorf("%w\n%s", err, logTail(s.logPath()))
	}
	return nil
}

// Stop shuts the server down and waits for it to exit; the data stays for
// the next Start.
func (s *MinIOServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	s.proc.stop(syscall.SIGTERM, 20*time.Second)
	return nil
}

func (s *MinIOServer) destroy() {
	s.Stop()
	os.RemoveAll(s.dir)
}

// Config is an s3store configuration for bucket on this server.
func (s *MinIOServer) Config(bucket string) s3store.Config {
	return s3store.Config{
		Endpoint:  s.Endpoint,
		Bucket:    bucket,
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
	}
}

// URL is the s3:// URL of bucket on this server, for configurations that
// take one (credentials go in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
func (s *MinIOServer) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&secure=false", bucket, s.Endpoint)
}

// NewBucket creates an empty bucket with a unique name, with object lock
// enabled when lock is true.
func (s *MinIOServer) NewBucket(t testing.TB, lock bool) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", s.bucketSeq.Add(1), randomHex(6))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if lock { // as afterlife admin blobs init makes it
		_, err = s3store.Init(ctx, s.Config(name))
	} else {
		err = s3store.EnsureBucket(ctx, s.Config(name), false)
	}
	if err != nil {
		t.Fatalf("testenv: create bucket %s: %v", name, err)
	}
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
