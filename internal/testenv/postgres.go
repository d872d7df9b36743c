package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGBinDir is where Debian's postgresql package puts PostgreSQL 15.
const PGBinDir = "/usr/lib/postgresql/15/bin"

// PGCluster is a PostgreSQL server of our own: its own data directory,
// port and socket directory, with trust authentication on 127.0.0.1.
type PGCluster struct {
	Port  int
	dir   string // holds data/, sock/ and postgres.log
	cred  *syscall.Credential
	dbSeq atomic.Int64
	mu    sync.Mutex
	proc  *process
}

var shared struct {
	pgOnce    sync.Once
	pg        *PGCluster
	pgErr     error
	minioOnce sync.Once
	minio     *MinIOServer
	minioErr  error
}

// Postgres returns the DSN of a fresh, empty database in a cluster that is
// started once per test process.
func Postgres(t testing.TB) string {
	t.Helper()
	return SharedPostgres(t).CreateDB(t)
}

// SharedPostgres is the cluster behind Postgres. Do not stop it: tests that
// restart PostgreSQL use StartPostgresCluster.
func SharedPostgres(t testing.TB) *PGCluster {
	t.Helper()
	shared.pgOnce.Do(func() {
		shared.pg, shared.pgErr = newPGCluster()
		if shared.pgErr == nil {
			atExit(shared.pg.destroy)
		}
	})
	if shared.pgErr != nil {
		t.Fatalf("testenv: start PostgreSQL: %v", shared.pgErr)
	}
	return shared.pg
}

// StartPostgresCluster starts a cluster of the test's own, which it may
// Stop and Start again; it is removed when the test ends.
func StartPostgresCluster(t testing.TB) *PGCluster {
	t.Helper()
	c, err := newPGCluster()
	if err != nil {
		t.Fatalf("testenv: start PostgreSQL: %v", err)
	}
	t.Cleanup(c.destroy)
	return c
}

func newPGCluster() (*PGCluster, error) {
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(PGBinDir, b)); err != nil {
			return nil, fmt.Errorf("%s is missing (%v): run scripts/test-deps.sh", filepath.Join(PGBinDir, b), err)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: that is 0700 root, and the server runs as postgres.
	dir, err := os.MkdirTemp("", "afterlife-pg-")
	if err != nil {
		return nil, err
	}
	c := &PGCluster{Port: port, dir: dir}
	if err := c.setup(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *PGCluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *PGCluster) sockDir() string { return filepath.Join(c.dir, "sock") }
func (c *PGCluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// setup creates the directories and runs initdb, as the postgres user when
// we are root (initdb refuses to run as root).
func (c *PGCluster) setup() error {
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(c.dataDir(), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(c.sockDir(), 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs a postgres user (%v): run scripts/test-deps.sh", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{c.dataDir(), c.sockDir()} {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	cmd := exec.Command(filepath.Join(PGBinDir, "initdb"), "-D", c.dataDir(), "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	return nil
}

// Start runs the server (again) on the same data directory and port, and
// waits until it accepts connections.
func (c *PGCluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && !c.proc.exited() {
		return nil
	}
	logf, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Durability is not what tests measure: turn off what makes commits slow.
	cmd := exec.Command(filepath.Join(PGBinDir, "postgres"), "-D", c.dataDir(),
		"-p", strconv.Itoa(c.Port), "-k", c.sockDir(),
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	c.proc = p
	err = waitFor("postgres", p, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	})
	if err != nil {
		p.stop(syscall.SIGKILL, 0)
		return fmt.Errorf("%w\n%s", err, logTail(c.logPath()))
	}
	return nil
}

// Stop shuts the server down (fast shutdown: open connections are cut)
// and waits for it to exit.
func (c *PGCluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	c.proc.stop(syscall.SIGINT, 30*time.Second)
	return nil
}

func (c *PGCluster) destroy() {
	c.Stop()
	os.RemoveAll(c.dir)
}

// DSN is the URL of database dbname on this cluster.
func (c *PGCluster) DSN(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, dbname)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// CreateDB creates a fresh, empty database named after the test and
// returns its DSN.
func (c *PGCluster) CreateDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", c.dbSeq.Add(1), nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("testenv: connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	return c.DSN(name)
}
