package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

const (
	benchProducts   = 100_000
	benchPerProduct = 10
	cachedProducts  = 200 // the fleet behind the shared cache
)

// benchCatalog answers for the products prod-0 … prod-99999, each with one
// device id usb:N, without a database: the update path asks the catalog
// only when the index is rebuilt.
type benchCatalog struct{}

func (benchCatalog) Get(_ context.Context, id string) (catalog.Product, error) {
	n, ok := strings.CutPrefix(id, "prod-")
	if !ok {
		return catalog.Product{}, errs.E(errs.NotFound, "product %s not found", id)
	}
	return catalog.Product{ID: id, Vendor: "bench", Model: "Bench " + n, DeviceIDs: []string{"usb:" + n}, Status: "supported"}, nil
}

func (c benchCatalog) Each(ctx context.Context, fn func(catalog.Product) error) error {
	for n := range benchProducts {
		p, _ := c.Get(ctx, "prod-"+strconv.Itoa(n))
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (c benchCatalog) Search(ctx context.Context, q string, limit int) (catalog.Found, error) {
	p, err := c.Get(ctx, q)
	if err != nil {
		return catalog.Found{}, nil
	}
	return catalog.Found{Total: 1, Products: []catalog.Match{{Product: p, VendorName: p.Vendor}}}, nil
}

func (benchCatalog) Events(context.Context, string) ([]catalog.Event, error) { return nil, nil }

func (c benchCatalog) ByDeviceID(ctx context.Context, deviceID string) ([]catalog.Product, error) {
	n, ok := strings.CutPrefix(deviceID, "usb:")
	if !ok {
		return nil, nil
	}
	p, err := c.Get(ctx, "prod-"+n)
	if err != nil {
		return nil, nil
	}
	return []catalog.Product{p}, nil
}

type noBuilds struct{}

func (noBuilds) ReproducibleOutputs(_ context.Context, id string) (registry.Build, error) {
	return registry.Build{}, errs.E(errs.NotFound, "build %s not found", id)
}

// fillReleases writes products × perProduct releases straight into the
// registry's table in one SQL statement (publishing them one by one through
// the API signs TUF metadata each time, which is not what this measures),
// then bumps the generation so that Rebuild loads them.
func fillReleases(ctx context.Context, d *db.DB, products, perProduct int) error {
	total := products * perProduct
	q := `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ` + strconv.Itoa(total-1) + `)
INSERT INTO releases (id, product, version, channel, notes, min_version, build_id, recipe, recipe_version, install_notes,
	verdict_url, attestations_url, agreeing, total, artifacts, community, published_at, published_by)
SELECT 'rel_' || i, 'prod-' || (i / ` + strconv.Itoa(perProduct) + `), '1.' || (i % ` + strconv.Itoa(perProduct) + `) || '.0',
	CASE WHEN i % ` + strconv.Itoa(perProduct) + ` = ` + strconv.Itoa(perProduct-1) + ` THEN 'testing' ELSE 'stable' END,
	'release notes', '', 'bld_' || i, 'bench', '1.0.0', 'copy it to the device', '/builds/bld_' || i, '/builds/bld_' || i || '/attestations',
	3, 3,
	'[{"name":"fw.bin","path":"fw.bin","kind":"firmware","digest":"sha256:' || printf('%064x', i) || '","size":1048576,"target":"prod-' || (i / ` + strconv.Itoa(perProduct) + `) || '/1.' || (i % ` + strconv.Itoa(perProduct) + `) || '.0/fw.bin"}]',
	1, 1700000000000 + i, 'bench'
FROM n`
	if _, err := d.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("bench: fill releases: %w", err)
	}
	if _, err := d.ExecContext(ctx, `UPDATE registry_generation SET generation = generation + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("bench: bump generation: %w", err)
	}
	return nil
}

// newBigRegistry is a registry of 100k products and 1M releases on SQLite,
// its index built by the registry itself (Rebuild), and its database.
func newBigRegistry(b *testing.B) (*registry.Service, *db.DB) {
	ctx := context.Background()
	dir := b.TempDir()
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(dir, "registry.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	blobs, err := fsstore.New(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	repo, err := tuf.Open(ctx, tuf.NewMemStore(), filepath.Join(dir, "keys"), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := registry.New(ctx, registry.Options{DB: d, Blobs: blobs, TUF: repo, Catalog: benchCatalog{}, Builds: noBuilds{},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := fillReleases(ctx, d, benchProducts, benchPerProduct); err != nil {
		b.Fatal(err)
	}
	filled := time.Since(start)
	start = time.Now()
	if err := svc.Rebuild(ctx); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "bench: %d releases written in %s, index rebuilt in %s\n",
		benchProducts*benchPerProduct, filled.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return svc, d
}

// serveHandler serves h on a free 127.0.0.1 port until the benchmark ends.
func serveHandler(b *testing.B, h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	b.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.Errorf("serve: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// randomDeviceScript makes wrk ask for a random device of the catalog on
// every request, under path (the query string is ignored by nginx), with
// the query as the device client writes it (keys sorted, the id
// percent-encoded, its rollout bucket).
func randomDeviceScript(b *testing.B, path string) string {
	return randomDeviceScriptOf(b, path, benchProducts)
}

// randomDeviceScriptOf is randomDeviceScript over the first products of
// the catalog only.
func randomDeviceScriptOf(b *testing.B, path string, products int) string {
	script := filepath.Join(b.TempDir(), "devices.lua")
	lua := fmt.Sprintf(`math.randomseed(42)
request = function()
  return wrk.format(nil, "%s?bucket=" .. math.random(0, 99) .. "&channel=stable&id=usb%%3A" .. math.random(0, %d) .. "&version=1.2.0")
end
`, path, products-1)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		b.Fatal(err)
	}
	return script
}

// everyQuestionScript makes wrk ask, in turn, every question of the
// first products devices (each rollout bucket), over and over.
func everyQuestionScript(b *testing.B, path string, products int) string {
	script := filepath.Join(b.TempDir(), "every.lua")
	lua := fmt.Sprintf(`local n = 0
request = function()
  local p, bucket = n %% %d, math.floor(n / %d) %% 100
  n = n + 1
  return wrk.format(nil, "%s?bucket=" .. bucket .. "&channel=stable&id=usb%%3A" .. p .. "&version=1.2.0")
end
`, products, products, path)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		b.Fatal(err)
	}
	return script
}

// cacheStatus asks url and returns nginx's X-Cache-Status.
func cacheStatus(b *testing.B, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Cache-Status")
}

// BenchmarkUpdateCheckLoad serves the device update check of a registry
// holding 100k products and 1M releases with the real handler stack on a
// loopback port, and drives it with wrk beside nginx serving a static file
// of the same size, in the same run and with the same load.
func BenchmarkUpdateCheckLoad(b *testing.B) {
	need(b, "wrk", "nginx")
	svc, _ := newBigRegistry(b)
	api := httpapi.New(httpapi.Options{Logger: slog.New(slog.DiscardHandler), QuietPaths: []string{"/v1/devices/updates"},
		Metrics: prometheus.NewRegistry()})
	svc.Register(api.V1(), api.Root())
	base := serveHandler(b, api) // as serve mounts it: the fast route before gin

	resp, err := http.Get(base + "/v1/devices/updates?id=usb:4242&version=1.2.0&channel=stable")
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("update check: %s %s", resp.Status, body)
	}
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "update.json"), body, 0o644); err != nil {
		b.Fatal(err)
	}
	static := startNginx(b, root)
	cache := startNginxCache(b, base)

	load := wrkOptions{Threads: 2, Conns: 64, Duration: 10 * time.Second}
	for b.Loop() {
		load.Script = randomDeviceScript(b, "/v1/devices/updates")
		cpu := processCPU()
		al := runWrk(b, load, base+"/")
		alCPU := perRequest(processCPU()-cpu, al)
		load.Script = randomDeviceScript(b, "/update.json")
		cpu = testenv.NginxCPU(b, static.URL)
		ng := runWrk(b, load, static.URL+"/")
		ngCPU := perRequest(testenv.NginxCPU(b, static.URL)-cpu, ng)
		// A shared cache in front (deploy/systemd/nginx-afterlife.conf):
		// the fleet of the first 200 products, each in its 100 rollout
		// buckets (20k distinct questions); a first, unmeasured run asks
		// each question in turn and fills the cache, as a fleet keeps it
		// full; the measured run asks them at random.
		load.Script = everyQuestionScript(b, "/v1/devices/updates", cachedProducts)
		runWrk(b, load, cache.URL+"/")
		if st := cacheStatus(b, cache.URL+"/v1/devices/updates?bucket=42&channel=stable&id=usb%3A7&version=1.2.0"); st != "HIT" {
			b.Fatalf("the shared cache answers a warm question with X-Cache-Status %q, want HIT", st)
		}
		load.Script = randomDeviceScriptOf(b, "/v1/devices/updates", cachedProducts)
		cpu = testenv.NginxCPU(b, cache.URL)
		cached := runWrk(b, load, cache.URL+"/")
		cachedCPU := perRequest(testenv.NginxCPU(b, cache.URL)-cpu, cached)
		b.ReportMetric(alCPU, "afterlife-cpu-us")
		b.ReportMetric(ngCPU, "nginx-cpu-us")
		b.ReportMetric(cachedCPU, "cached-cpu-us")
		b.ReportMetric(cached.ReqPerSec, "cached-req/s")
		b.ReportMetric(ms(cached.P50), "cached-p50-ms")
		b.ReportMetric(ms(cached.P99), "cached-p99-ms")
		b.ReportMetric(float64(cached.Errors), "cached-errors")
		b.ReportMetric(al.ReqPerSec, "afterlife-req/s")
		b.ReportMetric(ms(al.P50), "afterlife-p50-ms")
		b.ReportMetric(ms(al.P99), "afterlife-p99-ms")
		b.ReportMetric(float64(al.Errors), "afterlife-errors")
		b.ReportMetric(ng.ReqPerSec, "nginx-req/s")
		b.ReportMetric(ms(ng.P50), "nginx-p50-ms")
		b.ReportMetric(ms(ng.P99), "nginx-p99-ms")
		b.ReportMetric(float64(len(body)), "body-bytes")
		figure("update-check: afterlife %.0f req/s p50 %.2f ms p99 %.2f ms (%d errors, %.1f µs CPU a request) | nginx static %d B: %.0f req/s p50 %.2f ms p99 %.2f ms (%.1f µs) | ratio %.2f | behind nginx proxy_cache %.0f req/s p99 %.2f ms (%.1f µs)",
			al.ReqPerSec, ms(al.P50), ms(al.P99), al.Errors, alCPU, len(body), ng.ReqPerSec, ms(ng.P50), ms(ng.P99), ngCPU, al.ReqPerSec/ng.ReqPerSec,
			cached.ReqPerSec, ms(cached.P99), cachedCPU)
	}
}

// BenchmarkIndexRebuild rebuilds the update index of 100k products and 1M
// releases from SQLite, as a replica does at start, and reports its wall
// and CPU time (on a shared machine the wall time counts the time other
// processes held the cores), what it allocates, the most Go heap it took
// (the old index serves while the new one is built), and the Go heap the
// process holds afterwards (the index, the database's caches; after a
// GC). Then, on the same
// registry, it publishes a release of one product 20 times the way another
// replica would (a row and its event) and reports how long this replica
// takes to follow each (Poll), which is what a change costs every replica
// on top of the poll interval. Between the two it reports what a
// collection costs with the index held (its CPU time and wall time, the
// heap's objects): the update checks served meanwhile are the slowest
// ones.
func BenchmarkIndexRebuild(b *testing.B) {
	svc, d := newBigRegistry(b)
	ctx := context.Background()
	cpu := processCPU()
	b.ReportAllocs()
	stopWatching := watchPeakHeap()
	for b.Loop() {
		if err := svc.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(stopWatching())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "rebuild-ms")
	b.ReportMetric(float64((processCPU()-cpu).Milliseconds())/float64(b.N), "rebuild-cpu-ms")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	gc := collectWithIndexHeld(5)
	b.ReportMetric(float64(gc.cpu.Microseconds())/1000, "gc-cpu-ms")
	b.ReportMetric(float64(gc.wall.Microseconds())/1000, "gc-ms")
	b.ReportMetric(float64(gc.objects)/1e6, "heap-Mobjects")

	const changes = 20
	var followed time.Duration
	for i := range changes {
		if err := publishBehindItsBack(ctx, d, i); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := svc.Poll(ctx); err != nil {
			b.Fatal(err)
		}
		followed += time.Since(start)
	}
	if got := svc.IndexSeq(); got < changes {
		b.Fatalf("the index reflects event %d after %d changes", got, changes)
	}
	b.ReportMetric(float64(followed.Microseconds())/1000/changes, "follow-ms")
	runtime.KeepAlive(svc)
}

// gcCycle is what one collection cost with the index held.
type gcCycle struct {
	cpu, wall time.Duration // the process's CPU time (the collector's, as nothing else runs) and the time runtime.GC took
	objects   uint64        // heap objects after it
}

// collectWithIndexHeld forces n collections, one after another, and
// returns the mean cost of one. With nothing else running, what a cycle
// marks is what the process holds (the update index, mostly) and the
// CPU time the process uses meanwhile is the collector's. It is read
// from the kernel (getrusage): the runtime's own account of its workers
// (runtime/metrics' /cpu/classes/gc) is their wall time, which grows
// when other processes hold the cores.
func collectWithIndexHeld(n int) gcCycle {
	s := []metrics.Sample{{Name: "/gc/heap/objects:objects"}}
	runtime.GC() // what the rebuild left to sweep is not this figure's
	cpu, start := processCPU(), time.Now()
	for range n {
		runtime.GC()
	}
	wall, cpu := time.Since(start), processCPU()-cpu
	metrics.Read(s)
	return gcCycle{cpu: cpu / time.Duration(n), wall: wall / time.Duration(n), objects: s[0].Value.Uint64()}
}

// publishBehindItsBack writes release 2.i.0 of product prod-i and its
// event straight into the registry's tables, as another replica's
// publication looks to this one.
func publishBehindItsBack(ctx context.Context, d *db.DB, i int) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		seq, err := d.NextSeq(ctx, tx, "registry_events")
		if err != nil {
			return err
		}
		product, version := "prod-"+strconv.Itoa(i), "2."+strconv.Itoa(i)+".0"
		arts := `[{"name":"fw.bin","path":"fw.bin","kind":"firmware","digest":"sha256:` + fmt.Sprintf("%064x", 1<<40+i) +
			`","size":1048576,"target":"` + product + "/" + version + `/fw.bin"}]`
		if _, err := tx.ExecContext(ctx, d.Q(`INSERT INTO releases (id, product, version, channel, notes, min_version, build_id, recipe, recipe_version, install_notes,
			verdict_url, attestations_url, agreeing, total, artifacts, community, published_at, published_by)
			VALUES (?, ?, ?, 'stable', 'release notes', '', 'bld', 'bench', '1.0.0', '', '', '', 3, 3, ?, 1, ?, 'bench')`),
			"rel_followed_"+strconv.Itoa(i), product, version, arts, time.Now().UnixMilli()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, d.Q(`INSERT INTO registry_events (id, seq, product, release_id, at, actor, kind, detail) VALUES (?, ?, ?, ?, ?, 'bench', 'published', '')`),
			"rev_followed_"+strconv.Itoa(i), seq, product, "rel_followed_"+strconv.Itoa(i), time.Now().UnixMilli())
		return err
	})
}

// watchPeakHeap samples the bytes of Go heap objects (live or not yet
// swept) every millisecond until the returned function is called, which
// returns the most it saw.
func watchPeakHeap() func() uint64 {
	done, most := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				most <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-most
	}
}

// perRequest is the CPU time d spread over the requests of a wrk run, in
// microseconds.
func perRequest(d time.Duration, r wrkResult) float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / 1e3 / float64(r.Requests)
}

// processCPU is the CPU time this process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
