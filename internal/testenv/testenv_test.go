package testenv_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresGivesEachCallAFreshDatabase(t *testing.T) {
	a, b := testenv.Postgres(t), testenv.Postgres(t)
	if a == b {
		t.Fatalf("two calls returned the same DSN %s", a)
	}
	ca := connect(t, a)
	if _, err := ca.Exec(t.Context(), "CREATE TABLE things (id TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	var n int
	err := connect(t, b).QueryRow(t.Context(),
		"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&n)
	if err != nil || n != 0 {
		t.Fatalf("second database has %d tables (%v), want an empty one", n, err)
	}
	var version string
	if err := ca.QueryRow(t.Context(), "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s", version)
}

func TestPostgresClusterStopsAndStartsWithItsData(t *testing.T) {
	c := testenv.StartPostgresCluster(t)
	dsn := c.CreateDB(t)
	conn := connect(t, dsn)
	if _, err := conn.Exec(t.Context(), "CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if down, err := pgx.Connect(ctx, dsn); err == nil {
		down.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}

	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := connect(t, dsn).QueryRow(t.Context(), "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
	if got := c.DSN("x"); got != fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable", c.Port) {
		t.Errorf("DSN = %s", got)
	}
}

func live(endpoint string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + endpoint + "/minio/health/live")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func TestMinIOIsSharedAndMakesDistinctBuckets(t *testing.T) {
	s := testenv.MinIO(t)
	if testenv.MinIO(t) != s {
		t.Fatal("MinIO started a second shared server")
	}
	if err := live(s.Endpoint); err != nil {
		t.Fatalf("shared MinIO is not live: %v", err)
	}
	a, b := s.NewBucket(t, false), s.NewBucket(t, true)
	if a == b {
		t.Fatalf("two buckets named %s", a)
	}
}

func TestMinIOStopsAndStartsOnTheSamePort(t *testing.T) {
	s := testenv.StartMinIO(t)
	bucket := s.NewBucket(t, false)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := live(s.Endpoint); err == nil {
		t.Fatal("a stopped MinIO answered")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := live(s.Endpoint); err != nil {
		t.Fatalf("restarted MinIO is not live: %v", err)
	}
	// The bucket made before the restart is still there.
	if _, err := s3store.New(t.Context(), s.Config(bucket)); err != nil {
		t.Fatalf("bucket %s after restart: %v", bucket, err)
	}
}

func TestFreePortCanBeListenedOn(t *testing.T) {
	p := testenv.FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}

// The child below starts a long-running process through testenv and
// prints its pid; the parent kills the child with SIGKILL and expects the
// grandchild to die too, so no server outlives a killed test run.
func TestServersDieWithAKilledTestProcess(t *testing.T) {
	if os.Getenv("TESTENV_ORPHAN_CHILD") == "1" {
		pid := testenv.StartOrphanProbe(t)
		fmt.Printf("pid %d\n", pid)
		select {} // wait to be killed
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServersDieWithAKilledTestProcess$")
	cmd.Env = append(os.Environ(), "TESTENV_ORPHAN_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, scanErr := fmt.Sscanf(line, "pid %d", &pid); err != nil || scanErr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q (%v, %v)", line, err, scanErr)
	}
	if syscall.Kill(pid, 0) != nil {
		t.Fatalf("grandchild %d is not running before the kill", pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Cleanup(func() {
		if t.Failed() && syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		// The grandchild is re-parented to init, which reaps it; until
		// then it may linger as a zombie, which counts as dead.
		if state, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); zombie(state) {
			return nil
		}
		return fmt.Errorf("process %d outlived the killed test process", pid)
	})
}

func zombie(stat []byte) bool {
	// /proc/PID/stat: "pid (comm) S ..." with S the state letter.
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' && i+2 < len(stat) {
			return stat[i+2] == 'Z'
		}
	}
	return false
}
