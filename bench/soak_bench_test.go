package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

const (
	soakDevices  = 10_000
	soakBuilders = 200
	soakPoll     = 3 * time.Second
	soakDuration = 30 * time.Second
	soakConns    = 1000
)

// apiCall sends a JSON request and decodes a JSON answer into out.
func apiCall(ctx context.Context, client *http.Client, method, url, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s %s", method, url, resp.Status, raw)
	}
	if out != nil && len(raw) > 0 {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}

// startBalancer starts nginx as the replicas' load balancer, round robin
// over keep-alive connections, as deploy/ puts nginx in front of them: a
// process of its own, so that balancing costs the load generator nothing.
func startBalancer(b *testing.B, replicas []string) string {
	var servers strings.Builder
	for _, r := range replicas {
		fmt.Fprintf(&servers, "        server %s;\n", strings.TrimPrefix(r, "http://"))
	}
	return testenv.StartNginx(b, testenv.NginxConfig{
		Workers: "auto", Connections: 8192,
		HTTP: `access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    upstream afterlife {
` + servers.String() + `        keepalive 512;
    }`,
		Server: `location / {
            proxy_pass http://afterlife;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 60s;
            proxy_next_upstream off;
        }`,
	})
}

// soakCluster is replicas of `afterlife serve` on one PostgreSQL and one
// MinIO behind nginx (round robin), with one product whose devices
// are offered one release, and soakBuilders registered builders.
type soakCluster struct {
	replicas []*testenv.Server
	profile  []string // each replica's --profile-addr
	proxy    string
	client   *http.Client
	tokens   []string
}

func newSoakCluster(b *testing.B, replicas int) *soakCluster {
	ctx := context.Background()
	pg := testenv.Postgres(b)
	mc := testenv.MinIO(b)
	bucket := mc.NewBucket(b, true)
	keyDir := filepath.Join(b.TempDir(), "keys")
	env := []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey}
	c := &soakCluster{}
	var urls []string
	for i := range replicas {
		addr := freeAddr(b)
		args := []string{"--database", pg, "--blobs", mc.URL(bucket), "--keys", keyDir, "--local-builders", "0", "--log-level", "warn",
			"--profile-addr", addr}
		o := testenv.ServeOptions{Args: args, Env: env}
		if i > 0 {
			// Later replicas share the database, so the first one's admin
			// token is valid there too; serve writes one only on a fresh
			// database.
			o.Data = b.TempDir()
			if err := os.WriteFile(filepath.Join(o.Data, "admin.token"), []byte(c.replicas[0].Token+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		r := testenv.Serve(b, o)
		c.replicas = append(c.replicas, r)
		c.profile = append(c.profile, addr)
		urls = append(urls, r.URL)
	}
	r1 := c.replicas[0]
	c.proxy = startBalancer(b, urls)

	cli(b, r1, r1.Token, "admin", "org", "create", "soak", "--name", "Soak Devices", "--kind", "vendor")
	cli(b, r1, r1.Token, "vendor", "product", "--id", "soak-cam", "--vendor", "soak", "--model", "Soak Cam", "--device-ids", "usb:soak")
	d, err := db.Open(ctx, pg)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	_, err = d.ExecContext(ctx, d.Q(`INSERT INTO releases (id, product, version, channel, notes, min_version, build_id, recipe, recipe_version,
		install_notes, verdict_url, attestations_url, agreeing, total, artifacts, community, published_at, published_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		"rel_soak", "soak-cam", "2.0.0", "stable", "soak release", "", "bld_soak", "soak", "1.0.0", "copy it", "/builds/bld_soak", "/builds/bld_soak/attestations", 3, 3,
		`[{"name":"fw.bin","path":"fw.bin","kind":"firmware","digest":"sha256:`+fmt.Sprintf("%064x", 1)+`","size":1048576,"target":"soak-cam/2.0.0/fw.bin"}]`,
		1, time.Now().UnixMilli(), "soak")
	if err == nil {
		_, err = d.ExecContext(ctx, `UPDATE registry_generation SET generation = generation + 1 WHERE id = 1`)
	}
	if err != nil {
		b.Fatalf("insert the soak release: %v", err)
	}
	// The simulated devices share soakConns connections: one process
	// holding 10,000 client and 10,000 proxy sockets runs out of file
	// descriptors before the replicas are loaded.
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxConnsPerHost: soakConns, MaxIdleConnsPerHost: soakConns, IdleConnTimeout: time.Minute}}
	for _, r := range c.replicas { // every replica has picked the release up
		testenv.Eventually(b, 30*time.Second, func() error {
			code, err := apiCall(ctx, c.client, "GET", r.URL+"/v1/devices/updates?id=usb:soak&version=1.0.0&channel=stable", "", nil, nil)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("replica %s offers no update: %d %v", r.URL, code, err)
			}
			return nil
		})
	}

	// Builders: a token bound to an operator and a registration each.
	if _, err := apiCall(ctx, c.client, "POST", r1.URL+"/v1/admin/orgs", r1.Token, map[string]string{"id": "soak-operator", "kind": "operator"}, nil); err != nil {
		b.Fatal(err)
	}
	c.tokens = make([]string, soakBuilders)
	for i := range c.tokens {
		var out struct {
			Token string `json:"token"`
		}
		if _, err := apiCall(ctx, c.client, "POST", r1.URL+"/v1/admin/tokens", r1.Token, map[string]string{"name": "soak-builder-" + strconv.Itoa(i), "role": "builder", "operator": "soak-operator"}, &out); err != nil {
			b.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		reg := builder.Registration{Name: "soak-" + strconv.Itoa(i), PublicKey: keys.PublicKeyString(pub), Arch: "amd64",
			Toolchains: []builder.ToolchainInfo{{Name: "busybox", Version: "1.36.1"}}}
		if _, err := apiCall(ctx, c.client, "POST", c.proxy+"/v1/builders", out.Token, reg, nil); err != nil {
			b.Fatal(err)
		}
		c.tokens[i] = out.Token
	}
	return c
}

// freeAddr is a 127.0.0.1 address with a port free a moment ago.
func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// soakResult is what one soak run measured.
type soakResult struct {
	offered, served    float64 // device update checks a second
	p50, p99           time.Duration
	steadyP99          time.Duration // of the checks sent after the first third of the run
	tail               string        // more percentiles, for the reader
	errors, builderErr int64
	polls              int64
	firstErr           string
	cpu                []time.Duration // each replica's CPU time during the run
	loadCPU            time.Duration   // this process's: the devices and the builders
}

// run lets devices poll the update check every poll ± 20 % for dur while
// the builders long-poll for jobs that never come. With profiles set, it
// writes a CPU profile of each replica, taken during the run, there.
func (c *soakCluster) run(b *testing.B, devices int, poll, dur time.Duration, profiles string) soakResult {
	return c.runAgainst(b, c.proxy+"/v1/devices/updates?id=usb:soak&version=1.0.0&channel=stable", devices, poll, dur, profiles)
}

// runAgainst is run with the devices asking updateURL.
func (c *soakCluster) runAgainst(b *testing.B, updateURL string, devices int, poll, dur time.Duration, profiles string) soakResult {
	ctx := context.Background()
	// Each device is a goroutine, and every collection scans all their
	// stacks: with Go's default target the load generator spent a quarter
	// of its CPU collecting (profile of 2026-12-07), which it took from the
	// replicas on the same cores. A larger target collects less often.
	defer debug.SetGCPercent(debug.SetGCPercent(800))
	runCtx, stop := context.WithTimeout(ctx, dur)
	defer stop()
	var (
		wg              sync.WaitGroup
		errCount, polls atomic.Int64
		mu              sync.Mutex
		lat, steady     []time.Duration
		firstErr        atomic.Value
		builderErr      atomic.Int64
	)
	pids := make([]int, len(c.replicas))
	cpu0 := make([]time.Duration, len(c.replicas))
	for i, r := range c.replicas {
		pids[i] = servePID(b, r.Data)
		cpu0[i] = testenv.ProcessCPU(pids[i])
	}
	load0 := processCPU()
	if profiles != "" {
		for i, addr := range c.profile {
			wg.Go(func() {
				c.profileReplica(b, addr, dur*2/3, filepath.Join(profiles, fmt.Sprintf("replica%d-%d.cpu.pprof", i+1, devices)))
			})
		}
	}
	for i := range soakBuilders {
		wg.Go(func() {
			for runCtx.Err() == nil {
				_, err := apiCall(runCtx, c.client, "POST", c.proxy+"/v1/jobs/next", c.tokens[i], map[string]int64{"wait_ms": 10_000}, nil)
				if runCtx.Err() != nil {
					return
				}
				if err != nil {
					builderErr.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				polls.Add(1)
			}
		})
	}
	start := time.Now() // before the devices start: they read it
	for i := range devices {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(i), 7))
			mine := make([]time.Duration, 0, int(dur/poll)+1)
			var steadyMine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); steady = append(steady, steadyMine...); mu.Unlock() }()
			wait := time.Duration(r.Int64N(int64(poll)))
			for {
				// Deliberate pacing: a device asks once per poll
				// interval; the wait is the load's shape, not a wait
				// for a condition.
				select {
				case <-runCtx.Done():
					return
				case <-time.After(wait):
				}
				t0 := time.Now()
				code, err := apiCall(runCtx, c.client, "GET", updateURL, "", nil, nil)
				if runCtx.Err() != nil {
					return
				}
				mine = append(mine, time.Since(t0))
				if t0.Sub(start) >= dur/3 {
					steadyMine = append(steadyMine, time.Since(t0))
				}
				if err != nil || code != http.StatusOK {
					errCount.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v", code, err))
				}
				// every poll ± 20 %
				wait = poll*8/10 + time.Duration(r.Int64N(int64(poll*4/10)))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := soakResult{offered: float64(devices) / poll.Seconds(), served: float64(len(lat)) / elapsed.Seconds(),
		errors: errCount.Load(), builderErr: builderErr.Load(), polls: polls.Load(), loadCPU: processCPU() - load0}
	for i, pid := range pids {
		res.cpu = append(res.cpu, testenv.ProcessCPU(pid)-cpu0[i])
	}
	sortDurations(lat)
	sortDurations(steady)
	res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
	res.steadyP99 = percentile(steady, 99)
	res.tail = fmt.Sprintf("p90 %.2f ms, p95 %.2f ms, p98 %.2f ms, p99.9 %.2f ms, max %.2f ms",
		ms(percentile(lat, 90)), ms(percentile(lat, 95)), ms(percentile(lat, 98)), ms(percentile(lat, 99.9)), ms(percentile(lat, 100)))
	if e := firstErr.Load(); e != nil {
		res.firstErr = e.(string)
	}
	return res
}

// profileReplica takes a CPU profile of the replica whose profiles are
// served at addr, for seconds of d, into file.
func (c *soakCluster) profileReplica(b *testing.B, addr string, d time.Duration, file string) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		b.Errorf("profile %s: %v", addr, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		b.Errorf("profile %s: %v", addr, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		b.Errorf("profile %s: %s, %v", addr, resp.Status, err)
	}
}

// soakProfiles is where BenchmarkSoak writes the replicas' CPU profiles:
// $AFTERLIFE_BENCH_PROFILES, or nowhere.
func soakProfiles(b *testing.B) string {
	dir := os.Getenv("AFTERLIFE_BENCH_PROFILES")
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkSoak runs two replicas of `afterlife serve` on one PostgreSQL
// and one MinIO behind nginx (round robin), and for 30 s lets
// 10,000 simulated devices poll the update API (every 3 s with jitter)
// while 200 registered builders long-poll for jobs that never come. It
// reports throughput, latency, errors, each replica's memory and CPU
// time, and the CPU time of the load itself (devices and builders, all in
// this process). With AFTERLIFE_BENCH_PROFILES set to a directory,
// a CPU profile of each replica taken during the run is written there.
func BenchmarkSoak(b *testing.B) {
	c := newSoakCluster(b, 2)
	// The baseline: nginx serving the same answer as a static file, asked
	// by the same devices at the same rate in the same cluster (the
	// builders still long-poll the replicas): what the machine and the
	// load generator allow a server that does nothing.
	resp, err := http.Get(c.proxy + "/v1/devices/updates?id=usb:soak&version=1.0.0&channel=stable")
	if err != nil {
		b.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "update.json"), answer, 0o644); err != nil {
		b.Fatal(err)
	}
	static := startNginx(b, root).URL + "/update.json"
	for b.Loop() {
		base := c.runAgainst(b, static, soakDevices, soakPoll, soakDuration, "")
		b.ReportMetric(ms(base.p50), "nginx-p50-ms")
		b.ReportMetric(ms(base.p99), "nginx-p99-ms")
		b.ReportMetric(base.served, "nginx-req/s")
		figure("soak baseline, nginx static file at the same rate: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d; %s",
			base.served, ms(base.p50), ms(base.p99), base.errors, base.tail)
		res := c.run(b, soakDevices, soakPoll, soakDuration, soakProfiles(b))
		b.ReportMetric(res.served, "req/s")
		b.ReportMetric(res.offered, "offered-req/s")
		b.ReportMetric(ms(res.p50), "p50-ms")
		b.ReportMetric(ms(res.p99), "p99-ms")
		b.ReportMetric(ms(res.steadyP99), "steady-p99-ms")
		b.ReportMetric(float64(res.errors+res.builderErr), "errors")
		b.ReportMetric(float64(res.polls), "builder-polls")
		b.ReportMetric(res.loadCPU.Seconds(), "load-cpu-s")
		figure("soak %s: %d devices, %d builders: %.0f req/s (offered %.0f), p50 %.2f ms, p99 %.2f ms (after the first 10 s: %.2f ms), device errors %d, builder errors %d, builder polls %d, CPU of the load (devices, builders) %.1f s",
			soakDuration, soakDevices, soakBuilders, res.served, res.offered, ms(res.p50), ms(res.p99), ms(res.steadyP99),
			res.errors, res.builderErr, res.polls, res.loadCPU.Seconds())
		figure("soak: latency tail: %s", res.tail)
		if res.firstErr != "" {
			figure("soak: first error: %v", res.firstErr)
		}
		for i, r := range c.replicas {
			hwm, rss, err := procMemory(servePID(b, r.Data))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(hwm, fmt.Sprintf("replica%d-hwm-MiB", i+1))
			b.ReportMetric(rss, fmt.Sprintf("replica%d-rss-MiB", i+1))
			b.ReportMetric(res.cpu[i].Seconds(), fmt.Sprintf("replica%d-cpu-s", i+1))
			figure("soak: replica %d peak RSS %.0f MiB, now %.0f MiB, CPU %.1f s", i+1, hwm, rss, res.cpu[i].Seconds())
		}
	}
}

// kneeRates are the offered rates BenchmarkSoakKnee steps through; past
// about 20,000 req/s the one load-generating process is the limit, not the
// replicas (its CPU time is reported with each step).
var kneeRates = []int{500, 1000, 2000, 3333, 5000, 7500, 10000, 15000, 20000, 30000}

// BenchmarkSoakKnee looks for the knee of the soak with 1 and with 2
// replicas: it raises the offered rate of update checks step by step
// (kneeRates, 10 s each, devices polling every 3 s, the 200 builders
// long-polling throughout) until errors appear or p99 passes 250 ms, and
// reports the last rate that held (0 when none did) beside the first that
// did not.
func BenchmarkSoakKnee(b *testing.B) {
	const step, limit = 10 * time.Second, 250 * time.Millisecond
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			c := newSoakCluster(b, replicas)
			for b.Loop() {
				knee, broke := 0, 0
				for _, rate := range kneeRates {
					devices := int(float64(rate) * soakPoll.Seconds())
					res := c.run(b, devices, soakPoll, step, "")
					figure("soak knee, %d replica(s): offered %d req/s: served %.0f req/s, p50 %.2f ms, p99 %.2f ms (after the first third %.2f ms), errors %d (first: %s), replica CPU %v, load CPU %.1f s",
						replicas, rate, res.served, ms(res.p50), ms(res.p99), ms(res.steadyP99), res.errors+res.builderErr, res.firstErr, res.cpu, res.loadCPU.Seconds())
					if res.errors+res.builderErr > 0 || res.p99 > limit {
						broke = rate
						b.ReportMetric(ms(res.p99), "broke-p99-ms")
						b.ReportMetric(float64(res.errors+res.builderErr), "broke-errors")
						break
					}
					knee = rate
					b.ReportMetric(ms(res.p99), "knee-p99-ms")
				}
				b.ReportMetric(float64(knee), "knee-req/s")
				b.ReportMetric(float64(broke), "broke-req/s")
				figure("soak knee, %d replica(s): %d req/s held (p99 ≤ %s, no errors); %d req/s did not", replicas, knee, limit, broke)
			}
		})
	}
}
