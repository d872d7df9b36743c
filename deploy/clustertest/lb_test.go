package clustertest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestTheShippedNginxKeepsDevicesServedThroughABlobOutageAndARollingRestart
// runs two replicas behind a real nginx configured from the shipped file,
// with devices polling for updates and TUF metadata and owners
// downloading, and breaks the cluster under them: MinIO away for 5 s,
// then both replicas restarted one after the other while a builder's
// long poll is held on each; then a replica sheds update checks. No update check or metadata fetch may fail,
// nginx may take no replica out of the rotation, the blob outage must
// reach downloaders as 503 + Retry-After, and each replica must stop
// within 3 s of SIGTERM (the bound the operator is promised; it stops in
// well under a second here, so the margin is wide).
func TestTheShippedNginxKeepsDevicesServedThroughABlobOutageAndARollingRestart(t *testing.T) {
	began := time.Now()
	c := &cluster{t: t, bin: testenv.Binary(t), work: t.TempDir(), client: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(c.dumpLogsOnFailure)
	c.pg = testenv.StartPostgresCluster(t)
	dsn := c.pg.CreateDB(t)
	c.minio = testenv.StartMinIO(t)
	bucket := c.minio.NewBucket(t, true)
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	proxy := startNginx(t, addrs)
	// The cluster's helpers (cli, api, get) talk to whatever balancer URL
	// they are given: here, nginx.
	c.lb = &balancer{URL: proxy.URL}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- nginx error log ---\n%s", tail(proxy.errorLog()))
		}
	})

	keys := filepath.Join(t.TempDir(), "keys")
	for i, addr := range addrs {
		// Replica 1 starts alone: it generates the shared keys. Both keep
		// the default --shutdown-grace (20 s), longer than the 3 s bound.
		c.replicas = append(c.replicas, testenv.Serve(t, testenv.ServeOptions{
			Addr: addr,
			Args: []string{
				"--database", dsn, "--blobs", c.minio.URL(bucket), "--keys", keys,
				"--local-builders", "0", "--public-url", proxy.URL,
				"--replica-id", fmt.Sprintf("replica-%d", i+1), "--scheduler-every", "1s", "--scrub-every", "0",
			},
			Env: []string{"AWS_ACCESS_KEY_ID=" + c.minio.AccessKey, "AWS_SECRET_ACCESS_KEY=" + c.minio.SecretKey},
		}))
	}
	c.admin = c.replicas[0].Token
	admin := []string{"--server", proxy.URL, "--token", c.admin}

	// A released deposit file is what owners download during the faults.
	c.mustCLI(t, append([]string{"admin", "org", "create", org, "--kind", "vendor"}, admin...)...)
	vendorToken := strings.TrimSpace(c.mustCLI(t, append([]string{"admin", "token", "create", "--name", "demo-ci", "--role", "vendor", "--org", org}, admin...)...).stdout)
	vendor := []string{"--server", proxy.URL, "--token", vendorToken}
	c.mustCLI(t, append([]string{"vendor", "product", "--id", product, "--vendor", org, "--model", "AfterLife Cam 1", "--device-ids", deviceID}, vendor...)...)
	dir := filepath.Join(t.TempDir(), "sunset")
	firmware := bytes.Repeat([]byte("afterlife firmware image\n"), 40<<10) // 1 MiB
	d := deposited{files: map[string]string{"firmware/image.bin": writeFile(t, dir, "firmware/image.bin", firmware)}}
	r := c.mustCLI(t, append([]string{"vendor", "deposit", "--rights", "**=public", "--product", product, "--policy", "immediate",
		"--state", filepath.Join(t.TempDir(), "state.json"), "--receipt", filepath.Join(t.TempDir(), "receipt.json"), dir}, vendor...)...)
	d.id = depositID(t, r)
	c.checkReleasedIntact(t, d)
	download := "/v1/deposits/" + d.id + "/files/firmware/image.bin"

	// A builder whose long polls the restarts must end.
	c.mustCLI(t, append([]string{"admin", "org", "create", "op1", "--kind", "operator"}, admin...)...)
	builderToken := strings.TrimSpace(c.mustCLI(t, append([]string{"admin", "token", "create", "--name", "poller", "--role", "builder", "--operator", "op1"}, admin...)...).stdout)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var registered struct {
		ID string `json:"id"`
	}
	if code, body := c.farmCall(proxy.URL, "/v1/builders", builderToken, map[string]any{
		"protocol": 1, "name": "poller", "arch": runtime.GOARCH, "toolchains": []any{},
		"public_key": "ed25519:" + base64.StdEncoding.EncodeToString(pub),
	}, &registered); code != http.StatusOK {
		t.Fatalf("registering the builder answered %d %s", code, body)
	}
	t.Logf("cluster up after %s: postgres, minio, 2 replicas behind nginx %s", time.Since(began).Round(time.Millisecond), proxy.URL)

	t.Run("MinIO away for 5 s fails no update check and takes no replica out", func(t *testing.T) {
		load := c.startLoad(download, int64(len(firmware)))
		load.waitFor(t, 50)
		if err := c.minio.Stop(); err != nil {
			t.Fatal(err)
		}
		downAt := time.Now()
		// The outage itself: five seconds of a blob store that is gone.
		<-time.After(5 * time.Second)
		if err := c.minio.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("MinIO was away for %s", time.Since(downAt).Round(time.Millisecond))
		c.waitUntil(t, "a download through nginx again", 60*time.Second, func() (bool, string) {
			code, body := c.api(http.MethodGet, download, "", nil, nil)
			return code == http.StatusOK, fmt.Sprintf("%d %s", code, tail(string(body)))
		})
		got := load.stop()
		t.Logf("during and after the outage: %s", got)
		if n := got.updates.failed(); n != 0 {
			t.Errorf("%d of %d update checks failed: %v", n, got.updates.total(), got.updates.byStatus)
		}
		if n := got.tuf.failed(); n != 0 {
			t.Errorf("%d of %d TUF metadata fetches failed: %v", n, got.tuf.total(), got.tuf.byStatus)
		}
		if got.downloads.byStatus["503"] == 0 || got.downloads.retryAfter != got.downloads.byStatus["503"] {
			t.Errorf("downloads during the outage: %v, %d 503s with Retry-After; want every failure a 503 with Retry-After", got.downloads.byStatus, got.downloads.retryAfter)
		}
		for _, tl := range []*tally{got.updates, got.tuf, got.downloads} {
			if n := tl.byStatus["502"]; n > 0 {
				t.Errorf("%s: %d answers were nginx's 502", tl.what, n)
			}
		}
		if down := proxy.markedDown(); len(down) > 0 {
			t.Errorf("nginx took replicas out of the rotation:\n%s", strings.Join(down, "\n"))
		}
	})
	if t.Failed() {
		return
	}

	t.Run("a rolling restart under polling fails no update check and each replica stops within 3 s", func(t *testing.T) {
		load := c.startLoad(download, int64(len(firmware)))
		load.waitFor(t, 50)
		for i, rep := range c.replicas {
			held := c.holdLongPoll(t, rep.URL, builderToken, registered.ID)
			start := time.Now()
			rep.Stop(syscall.SIGTERM)
			took := time.Since(start)
			var poll int
			select {
			case poll = <-held:
			default:
				t.Errorf("replica %d exited with the builder's long poll unanswered", i+1)
			}
			t.Logf("replica %d stopped %s after SIGTERM; the held long poll answered %d", i+1, took.Round(time.Millisecond), poll)
			if took > 3*time.Second {
				t.Errorf("replica %d took %s to stop; want within 3 s", i+1, took.Round(time.Millisecond))
			}
			if poll != http.StatusNoContent {
				t.Errorf("the long poll held on replica %d answered %d; want 204 (no job: poll again elsewhere)", i+1, poll)
			}
			rep.Restart()
		}
		load.waitFor(t, load.count()+50)
		got := load.stop()
		t.Logf("during the rolling restart: %s", got)
		for _, tl := range []*tally{got.updates, got.tuf, got.downloads} {
			if n := tl.failed(); n != 0 {
				t.Errorf("%d of %d %s failed: %v", n, tl.total(), tl.what, tl.byStatus)
			}
		}
		if down := proxy.markedDown(); len(down) > 0 {
			t.Errorf("nginx took replicas out of the rotation:\n%s", strings.Join(down, "\n"))
		}
	})
	if t.Failed() {
		return
	}

	t.Run("load shedding reaches devices as 503 with Retry-After and takes no replica out", func(t *testing.T) {
		// A replica that sheds every update check (--max-update-load 0:
		// it serves no devices), behind an nginx of its own (both upstream
		// slots point at it). A bound of 1 would race checks that take a
		// microsecond and rarely shed; this one sheds every time, so the
		// test sees what devices get: 503 with Retry-After, never 502.
		shedding := testenv.Serve(t, testenv.ServeOptions{
			Args: []string{
				"--database", dsn, "--blobs", c.minio.URL(bucket), "--keys", keys,
				"--local-builders", "0", "--replica-id", "replica-shedding", "--scrub-every", "0",
				"--max-update-load", "0",
			},
			Env: []string{"AWS_ACCESS_KEY_ID=" + c.minio.AccessKey, "AWS_SECRET_ACCESS_KEY=" + c.minio.SecretKey},
		})
		shed := startNginx(t, []string{shedding.Addr, shedding.Addr})
		check := shed.URL + "/v1/devices/updates?version=0&channel=stable&id=" + url.QueryEscape(deviceID)
		tl := &tally{what: "update checks", byStatus: map[string]int{}, ok: func(c int) bool { return c == 503 }}
		// Every check asks a question of its own, so the shipped nginx's
		// update cache answers none of them and the replica takes the load.
		var asked atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 25 {
					resp, err := c.client.Get(fmt.Sprintf("%s&probe=%d", check, asked.Add(1)))
					if err != nil {
						tl.add("error", false)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					tl.add(fmt.Sprint(resp.StatusCode), resp.Header.Get("Retry-After") != "")
				}
			})
		}
		wg.Wait()
		t.Logf("under shedding: %s, %d 503s with Retry-After", tl, tl.retryAfter)
		if n := tl.failed(); n != 0 || tl.byStatus["503"] != 200 || tl.retryAfter != 200 {
			t.Errorf("want 200 answers of 503 with Retry-After; %d were not 503, %d of %d 503s carried Retry-After: %v", n, tl.retryAfter, tl.byStatus["503"], tl.byStatus)
		}
		if resp, err := c.client.Get(shed.URL + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("the shedding replica is not ready through nginx: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		if down := shed.markedDown(); len(down) > 0 {
			t.Errorf("nginx took the shedding replica out of the rotation:\n%s", strings.Join(down, "\n"))
		}
	})
	t.Logf("done in %s", time.Since(began).Round(time.Millisecond))
}

// farmCall sends one farm protocol call (JSON, the builder's token, the
// protocol header) to base and decodes a 2xx answer into out.
func (c *cluster) farmCall(base, path, token string, in, out any) (int, []byte) {
	b, err := json.Marshal(in)
	if err != nil {
		return -1, []byte(err.Error())
	}
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		return -1, []byte(err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Afterlife-Farm-Protocol", "1")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return -1, data
		}
	}
	return resp.StatusCode, data
}

// holdLongPoll starts a 30 s long poll for a job directly on one replica
// and returns once the replica is waiting in it (it touched the builder's
// last-seen time); the channel gets the answer's status.
func (c *cluster) holdLongPoll(t *testing.T, replica, token, builderID string) <-chan int {
	t.Helper()
	var before time.Time
	if b, ok := c.builder(builderID); ok {
		before = b
	}
	out := make(chan int, 1)
	go func() {
		code, _ := c.farmCall(replica, "/v1/jobs/next", token, map[string]any{"wait_ms": 30000}, nil)
		out <- code
	}()
	c.waitUntil(t, "the long poll to reach "+replica, 10*time.Second, func() (bool, string) {
		seen, ok := c.builder(builderID)
		return ok && seen.After(before), fmt.Sprintf("last seen %s", seen)
	})
	return out
}

// builder is the last-seen time of a registered builder.
func (c *cluster) builder(id string) (time.Time, bool) {
	var out struct {
		Builders []struct {
			ID       string    `json:"id"`
			LastSeen time.Time `json:"last_seen"`
		} `json:"builders"`
	}
	if code, _ := c.api(http.MethodGet, "/v1/builders", "", nil, &out); code != http.StatusOK {
		return time.Time{}, false
	}
	for _, b := range out.Builders {
		if b.ID == id {
			return b.LastSeen, true
		}
	}
	return time.Time{}, false
}

// tally counts the answers to one kind of request.
type tally struct {
	what       string
	ok         func(code int) bool
	mu         sync.Mutex
	byStatus   map[string]int // "200", "503", "error" (no answer or a cut body)
	retryAfter int            // 503s that carried Retry-After
}

func (tl *tally) add(status string, retryAfter bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.byStatus[status]++
	if status == "503" && retryAfter {
		tl.retryAfter++
	}
}

func (tl *tally) total() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, v := range tl.byStatus {
		n += v
	}
	return n
}

func (tl *tally) failed() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for s, v := range tl.byStatus {
		var code int
		fmt.Sscan(s, &code)
		if !tl.ok(code) {
			n += v
		}
	}
	return n
}

func (tl *tally) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	keys := make([]string, 0, len(tl.byStatus))
	for k := range tl.byStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, tl.byStatus[k])
	}
	return fmt.Sprintf("%s %s", tl.what, strings.Join(parts, " "))
}

// load is devices and owners using the cluster through the balancer
// until stopped: update checks, TUF timestamp fetches, downloads.
type load struct {
	updates, tuf, downloads *tally
	cancel                  context.CancelFunc
	wg                      sync.WaitGroup
}

func (l *load) String() string {
	return fmt.Sprintf("%s; %s; %s (%d 503s with Retry-After)", l.updates, l.tuf, l.downloads, l.downloads.retryAfter)
}

func (l *load) count() int { return l.updates.total() }

// waitFor waits until n update checks were answered.
func (l *load) waitFor(t *testing.T, n int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		if l.count() < n {
			return fmt.Errorf("only %d of %d update checks so far: %s", l.count(), n, l)
		}
		return nil
	})
}

func (l *load) stop() *load {
	l.cancel()
	l.wg.Wait()
	return l
}

func (c *cluster) startLoad(download string, size int64) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{
		updates:   &tally{what: "update checks", byStatus: map[string]int{}, ok: func(c int) bool { return c == 200 || c == 204 || c == 304 }},
		tuf:       &tally{what: "TUF metadata fetches", byStatus: map[string]int{}, ok: func(c int) bool { return c == 200 }},
		downloads: &tally{what: "downloads", byStatus: map[string]int{}, ok: func(c int) bool { return c == 200 }},
		cancel:    cancel,
	}
	client := &http.Client{Timeout: 20 * time.Second}
	run := func(tl *tally, path string, every time.Duration, wantSize int64) {
		defer l.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			req, _ := http.NewRequest(http.MethodGet, c.lb.URL+path, nil)
			resp, err := client.Do(req)
			if err != nil {
				tl.add("error", false)
				continue
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status := fmt.Sprint(resp.StatusCode)
			if resp.StatusCode == http.StatusOK && (err != nil || (wantSize > 0 && n != wantSize)) {
				status = "error" // a body cut short
			}
			tl.add(status, resp.Header.Get("Retry-After") != "")
		}
	}
	check := "/v1/devices/updates?version=0&channel=stable&id=" + url.QueryEscape(deviceID)
	for range 3 {
		l.wg.Add(1)
		go run(l.updates, check, 10*time.Millisecond, 0)
	}
	l.wg.Add(1)
	go run(l.tuf, "/tuf/timestamp.json", 20*time.Millisecond, 0)
	// Several downloaders, so a blob outage is felt on every replica and
	// every nginx worker (each keeps its own failure counts).
	for range 4 {
		l.wg.Add(1)
		go run(l.downloads, download, 50*time.Millisecond, size)
	}
	return l
}
