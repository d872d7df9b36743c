package clustertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// cluster is everything the story runs on.
type cluster struct {
	t        *testing.T
	bin      string
	pg       *testenv.PGCluster
	minio    *testenv.MinIOServer
	replicas []*testenv.Server
	lb       *balancer
	builders []*testenv.Builder
	admin    string // admin token, from replica 1's data dir
	work     string // scratch space for CLI runs
	client   *http.Client

	mu   sync.Mutex
	clis []string // what every CLI run said, for failure messages
}

// startCluster starts PostgreSQL, MinIO, two replicas sharing one key
// directory behind the balancer, and three builder processes.
func startCluster(t *testing.T) *cluster {
	c := &cluster{t: t, bin: testenv.Binary(t), work: t.TempDir(), client: &http.Client{Timeout: 60 * time.Second}}
	// Registered after the first TempDir, so it runs before the logs go.
	t.Cleanup(c.dumpLogsOnFailure)

	c.pg = testenv.StartPostgresCluster(t)
	dsn := c.pg.CreateDB(t)
	c.minio = testenv.StartMinIO(t)
	bucket := c.minio.NewBucket(t, true)

	// The balancer listens first, so the replicas can be told the public URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	c.lb = startBalancer(t, ln, addrs)

	keys := filepath.Join(t.TempDir(), "keys")
	for i, addr := range addrs {
		// Replica 1 starts alone: it generates the shared keys.
		c.replicas = append(c.replicas, testenv.Serve(t, testenv.ServeOptions{
			Addr: addr,
			Args: []string{
				"--database", dsn, "--blobs", c.minio.URL(bucket), "--keys", keys,
				"--local-builders", "0", "--allow-local-repos", "--public-url", c.lb.URL,
				"--replica-id", fmt.Sprintf("replica-%d", i+1),
				"--lease-ttl", "6s", "--scheduler-every", "1s", "--scrub-every", "0",
				"--shutdown-grace", "5s", "--log-level", "debug",
			},
			Env: []string{"AWS_ACCESS_KEY_ID=" + c.minio.AccessKey, "AWS_SECRET_ACCESS_KEY=" + c.minio.SecretKey},
		}))
	}
	c.admin = c.replicas[0].Token

	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("user cache dir: %v", err)
	}
	keyDir := t.TempDir()
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("builder-%d", i)
		operator := fmt.Sprintf("op%d", i)
		c.mustCLI(t, "admin", "org", "create", operator, "--kind", "operator", "--server", c.lb.URL, "--token", c.admin)
		token := strings.TrimSpace(c.mustCLI(t, "admin", "token", "create", "--name", name, "--role", "builder",
			"--operator", operator, "--server", c.lb.URL, "--token", c.admin).stdout)
		c.builders = append(c.builders, testenv.StartBuilder(t, testenv.BuilderOptions{
			Coordinator: c.lb.URL, Token: token, Key: testenv.BuilderKeygen(t, keyDir, name),
			Name: name,
			// Persistent, so Go cross builds are warm on later runs.
			Work: filepath.Join(cache, "afterlife", "cluster-builder-cache", fmt.Sprint(i)),
		}))
	}
	c.waitUntil(t, "three builders registered", 60*time.Second, func() (bool, string) {
		bs := c.builderIDs()
		return len(bs) == 3, fmt.Sprintf("registered: %v", bs)
	})
	return c
}

func (c *cluster) dumpLogsOnFailure() {
	if !c.t.Failed() {
		return
	}
	for i, r := range c.replicas {
		c.t.Logf("--- replica %d (%s) log tail ---\n%s", i+1, r.URL, r.LogTail())
	}
	for _, b := range c.builders {
		c.t.Logf("--- %s log tail ---\n%s", b, b.LogTail())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.clis {
		c.t.Logf("--- cli ---\n%s", s)
	}
}

// cliResult is what one run of the afterlife CLI did.
type cliResult struct {
	args           []string
	code           int
	stdout, stderr string
	took           time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("afterlife %s\nexit %d after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.took.Round(time.Millisecond), tail(r.stdout), tail(r.stderr))
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// cli runs the afterlife binary in the scratch directory, bounded by a
// generous deadline.
func (c *cluster) cli(args ...string) cliResult {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.work
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
	}
	c.mu.Lock()
	c.clis = append(c.clis, r.String())
	c.mu.Unlock()
	return r
}

// cliAsync runs the CLI in the background.
func (c *cluster) cliAsync(args ...string) <-chan cliResult {
	ch := make(chan cliResult, 1)
	go func() { ch <- c.cli(args...) }()
	return ch
}

func (c *cluster) mustCLI(t testing.TB, args ...string) cliResult {
	t.Helper()
	r := c.cli(args...)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	return r
}

// waitUntil waits with testenv.Eventually until cond holds; cond also
// says what it last saw, for the failure message.
func (c *cluster) waitUntil(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if ok, last := cond(); !ok {
			return fmt.Errorf("%s: not yet; last: %s", what, last)
		}
		return nil
	})
}

// api calls the JSON API through the balancer once and decodes the answer
// into out when the status is 2xx. It returns the status (0 when the
// request did not get an answer, -1 when the answer did not decode) and the
// raw body. It is safe to call from any goroutine.
func (c *cluster) api(method, path, token string, in, out any) (int, []byte) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return -1, []byte(err.Error())
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.lb.URL+path, body)
	if err != nil {
		return -1, []byte(err.Error())
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return -1, fmt.Appendf(nil, "decode %s: %v", data, err)
		}
	}
	return resp.StatusCode, data
}

// get reads a public JSON resource, retrying while the cluster is
// recovering (no answer, 502, 503), within a deadline.
func (c *cluster) get(t testing.TB, path string, out any) {
	t.Helper()
	c.waitUntil(t, "GET "+path, 60*time.Second, func() (bool, string) {
		code, body := c.api(http.MethodGet, path, "", nil, out)
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
}

// builderIDs maps registered builder ids to their names.
func (c *cluster) builderIDs() map[string]string {
	var out struct {
		Builders []struct{ ID, Name string } `json:"builders"`
	}
	if code, _ := c.api(http.MethodGet, "/v1/builders", "", nil, &out); code != http.StatusOK {
		return nil
	}
	ids := map[string]string{}
	for _, b := range out.Builders {
		ids[b.ID] = b.Name
	}
	return ids
}

func (c *cluster) builderNamed(t testing.TB, name string) *testenv.Builder {
	for _, b := range c.builders {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("no builder named %q", name)
	return nil
}

// writeFile writes data under dir and returns its sha256.
func writeFile(t *testing.T, dir, rel string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256Hex(data)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// deposited is what a vendor sent in one acknowledged deposit: path →
// sha256 of the bytes.
type deposited struct {
	id    string
	files map[string]string
}

// depositID reads the deposit id from `vendor deposit`'s output.
func depositID(t *testing.T, r cliResult) string {
	t.Helper()
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "deposit" && f[2] == "committed:" {
			return f[1]
		}
	}
	t.Fatalf("no deposit id in the output:\n%s", r)
	return ""
}

// checkReleasedIntact waits until the deposit is released, then downloads
// every file anonymously through the balancer and compares its sha256
// with what the vendor sent.
func (c *cluster) checkReleasedIntact(t testing.TB, d deposited) {
	t.Helper()
	var dep struct {
		State    string `json:"state"`
		Manifest []struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"manifest"`
	}
	// Sealed deposits answer 404 to anonymous readers: 200 means released.
	c.waitUntil(t, "deposit "+d.id+" released", 90*time.Second, func() (bool, string) {
		code, body := c.api(http.MethodGet, "/v1/deposits/"+d.id, "", nil, &dep)
		return code == http.StatusOK && dep.State == "released", fmt.Sprintf("%d %s", code, tail(string(body)))
	})
	if len(dep.Manifest) != len(d.files) {
		t.Errorf("deposit %s lists %d files, the vendor sent %d", d.id, len(dep.Manifest), len(d.files))
	}
	for path, want := range d.files {
		var got string
		c.waitUntil(t, "download "+d.id+"/"+path, 60*time.Second, func() (bool, string) {
			resp, err := c.client.Get(c.lb.URL + "/v1/deposits/" + d.id + "/files/" + path)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if resp.StatusCode != http.StatusOK || err != nil {
				return false, fmt.Sprintf("%s after %d bytes: %v", resp.Status, n, err)
			}
			got = hex.EncodeToString(h.Sum(nil))
			return true, ""
		})
		if got != want {
			t.Errorf("deposit %s file %s: downloaded sha256 %s, the vendor sent %s", d.id, path, got, want)
		}
	}
}

// build is the part of GET /v1/builds/:id the test reads.
type build struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Quorum  int    `json:"quorum"`
	Verdict struct {
		State    string            `json:"state"`
		Agreeing int               `json:"agreeing"`
		Outputs  map[string]string `json:"outputs"`
		Reason   string            `json:"reason"`
	} `json:"verdict"`
	Jobs []struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		BuilderID string `json:"builder_id"`
		Attempts  int    `json:"attempts"`
	} `json:"jobs"`
	Results []struct {
		JobID     string `json:"job_id"`
		BuilderID string `json:"builder_id"`
		Failed    bool   `json:"failed"`
		Reason    string `json:"reason"`
	} `json:"results"`
}

func (c *cluster) build(id string) (build, bool) {
	var b build
	code, _ := c.api(http.MethodGet, "/v1/builds/"+id, "", nil, &b)
	return b, code == http.StatusOK
}

// release is the part of a registry release the test reads.
type release struct {
	ID        string `json:"id"`
	Product   string `json:"product"`
	Version   string `json:"version"`
	BuildID   string `json:"build_id"`
	Artifacts []struct {
		Name   string `json:"name"`
		Path   string `json:"path"`
		Kind   string `json:"kind"`
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"artifacts"`
}

func (c *cluster) releases(t testing.TB, product string) []release {
	t.Helper()
	var out struct {
		Releases []release `json:"releases"`
	}
	c.get(t, "/v1/releases?product="+url.QueryEscape(product), &out)
	return out.Releases
}
