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
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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

// proxyErr is the first error the proxy met talking to a replica.
var proxyErr atomic.Value

// roundRobin spreads requests over the replicas, as a load balancer would.
func roundRobin(targets []string) http.Handler {
	var next atomic.Uint64
	proxies := make([]*httputil.ReverseProxy, len(targets))
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, IdleConnTimeout: time.Minute}
	for i, t := range targets {
		u, _ := url.Parse(t)
		p := httputil.NewSingleHostReverseProxy(u)
		p.Transport = transport
		p.FlushInterval = -1
		p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil { // a client that gave up is not the backend's failure
				proxyErr.CompareAndSwap(nil, err.Error())
			}
			w.WriteHeader(http.StatusBadGateway)
		}
		proxies[i] = p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[next.Add(1)%uint64(len(proxies))].ServeHTTP(w, r)
	})
}

// BenchmarkSoak runs two replicas of `afterlife serve` on one PostgreSQL
// and one MinIO behind a round-robin reverse proxy, and for 30 s lets
// 10,000 simulated devices poll the update API (every 3 s with jitter)
// while 200 registered builders long-poll for jobs that never come. It
// reports throughput, latency, errors and each replica's memory.
func BenchmarkSoak(b *testing.B) {
	ctx := context.Background()
	pg := testenv.Postgres(b)
	mc := testenv.MinIO(b)
	bucket := mc.NewBucket(b, true)
	keyDir := filepath.Join(b.TempDir(), "keys")
	args := []string{"--database", pg, "--blobs", mc.URL(bucket), "--keys", keyDir, "--local-builders", "0", "--log-level", "warn"}
	env := []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey}
	r1 := testenv.Serve(b, testenv.ServeOptions{Args: args, Env: env})
	data2 := b.TempDir()
	// The second replica shares the database, so the first one's admin
	// token is valid there too; serve writes one only on a fresh database.
	if err := os.WriteFile(filepath.Join(data2, "admin.token"), []byte(r1.Token+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	r2 := testenv.Serve(b, testenv.ServeOptions{Data: data2, Args: args, Env: env})
	proxy := serveHandler(b, roundRobin([]string{r1.URL, r2.URL}))

	// One product whose devices are offered one release.
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
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxConnsPerHost: soakConns, MaxIdleConnsPerHost: soakConns, IdleConnTimeout: time.Minute}}
	updateURL := proxy + "/v1/devices/updates?id=usb:soak&version=1.0.0&channel=stable"
	for _, r := range []*testenv.Server{r1, r2} { // both replicas have picked the release up
		testenv.Eventually(b, 30*time.Second, func() error {
			code, err := apiCall(ctx, client, "GET", r.URL+"/v1/devices/updates?id=usb:soak&version=1.0.0&channel=stable", "", nil, nil)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("replica %s offers no update: %d %v", r.URL, code, err)
			}
			return nil
		})
	}

	// Builders: a token bound to an operator and a registration each.
	if _, err := apiCall(ctx, client, "POST", r1.URL+"/v1/admin/orgs", r1.Token, map[string]string{"id": "soak-operator", "kind": "operator"}, nil); err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, soakBuilders)
	for i := range tokens {
		var out struct {
			Token string `json:"token"`
		}
		if _, err := apiCall(ctx, client, "POST", r1.URL+"/v1/admin/tokens", r1.Token, map[string]string{"name": "soak-builder-" + strconv.Itoa(i), "role": "builder", "operator": "soak-operator"}, &out); err != nil {
			b.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		reg := builder.Registration{Name: "soak-" + strconv.Itoa(i), PublicKey: keys.PublicKeyString(pub), Arch: "amd64",
			Toolchains: []builder.ToolchainInfo{{Name: "busybox", Version: "1.36.1"}}}
		if _, err := apiCall(ctx, client, "POST", proxy+"/v1/builders", out.Token, reg, nil); err != nil {
			b.Fatal(err)
		}
		tokens[i] = out.Token
	}

	for b.Loop() {
		runCtx, stop := context.WithTimeout(ctx, soakDuration)
		var (
			wg              sync.WaitGroup
			errCount, polls atomic.Int64
			mu              sync.Mutex
			lat             []time.Duration
			firstErr        atomic.Value
			builderErr      atomic.Int64
		)
		for i := range soakBuilders {
			wg.Go(func() {
				for runCtx.Err() == nil {
					_, err := apiCall(runCtx, client, "POST", proxy+"/v1/jobs/next", tokens[i], map[string]int64{"wait_ms": 10_000}, nil)
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
		start := time.Now()
		for i := range soakDevices {
			wg.Go(func() {
				r := mrand.New(mrand.NewPCG(uint64(i), 7))
				mine := make([]time.Duration, 0, int(soakDuration/soakPoll)+1)
				defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
				wait := time.Duration(r.Int64N(int64(soakPoll)))
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
					code, err := apiCall(runCtx, client, "GET", updateURL, "", nil, nil)
					if runCtx.Err() != nil {
						return
					}
					mine = append(mine, time.Since(t0))
					if err != nil || code != http.StatusOK {
						errCount.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v", code, err))
					}
					// every 3 s ± 20 %
					wait = soakPoll*8/10 + time.Duration(r.Int64N(int64(soakPoll*4/10)))
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		stop()
		sortDurations(lat)
		rps := float64(len(lat)) / elapsed.Seconds()
		b.ReportMetric(rps, "req/s")
		b.ReportMetric(float64(soakDevices)/soakPoll.Seconds(), "offered-req/s")
		b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
		b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
		b.ReportMetric(float64(errCount.Load()+builderErr.Load()), "errors")
		b.ReportMetric(float64(polls.Load()), "builder-polls")
		figure("soak %s: %d devices, %d builders: %.0f req/s (offered %.0f), p50 %.2f ms, p99 %.2f ms, device errors %d, builder errors %d, builder polls %d",
			soakDuration, soakDevices, soakBuilders, rps, float64(soakDevices)/soakPoll.Seconds(), ms(percentile(lat, 50)), ms(percentile(lat, 99)),
			errCount.Load(), builderErr.Load(), polls.Load())
		if e := proxyErr.Load(); e != nil {
			figure("soak: first proxy error: %v", e)
		}
		if e := firstErr.Load(); e != nil {
			figure("soak: first error: %v", e)
		}
		for i, r := range []*testenv.Server{r1, r2} {
			hwm, rss, err := procMemory(servePID(b, r.Data))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(hwm, fmt.Sprintf("replica%d-hwm-MiB", i+1))
			b.ReportMetric(rss, fmt.Sprintf("replica%d-rss-MiB", i+1))
			figure("soak: replica %d peak RSS %.0f MiB, now %.0f MiB", i+1, hwm, rss)
		}
	}
}
