package registry

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// benchIndex is an index of 100k products with 10 releases each (1M
// releases), built directly in memory; benchRolloutIndex the same with
// every product's newest stable release in a phased rollout at 50 %.
var (
	benchIndex        = sync.OnceValue(func() *index { return newBenchIndex(false) })
	benchRolloutIndex = sync.OnceValue(func() *index { return newBenchIndex(true) })
)

func newBenchIndex(rollouts bool) *index {
	const products, perProduct = 100_000, 10
	rels := make([]indexRelease, 0, products*perProduct)
	start := time.Now().Add(-90 * time.Minute)
	for p := range products {
		id := "prod-" + strconv.Itoa(p)
		for v := range perProduct {
			ch := Stable
			if v == perProduct-1 {
				ch = Testing
			}
			ver := "1." + strconv.Itoa(v) + ".0"
			r := indexRelease{
				ID: fmt.Sprintf("rel_%d_%d", p, v), Product: id, Version: ver, Channel: ch, Community: true,
				Notes:     "release notes",
				Artifacts: []Artifact{{Name: "fw.bin", Kind: "firmware", Size: 1 << 20, Digest: "sha256:" + fmt.Sprintf("%064x", p*perProduct+v), Target: id + "/" + ver + "/fw.bin"}},
				DeviceIDs: []string{"usb:" + strconv.Itoa(p)},
			}
			if rollouts && v == perProduct-2 {
				r.Rollout = &Rollout{SignedRollout: device.SignedRollout{State: device.RolloutActive, Start: start,
					Stages: []device.RolloutStage{{Percent: 1, DwellSeconds: 1800}, {Percent: 10, DwellSeconds: 1800}, {Percent: 50, DwellSeconds: 86400}, {Percent: 100}}}}
			}
			rels = append(rels, r)
		}
	}
	return buildIndex(rels)
}

func BenchmarkIndexLookup(b *testing.B) { benchLookup(b, benchIndex()) }

// BenchmarkIndexLookupWithRollouts is BenchmarkIndexLookup on the index
// whose newest stable releases are all in a rollout at 50 %.
func BenchmarkIndexLookupWithRollouts(b *testing.B) { benchLookup(b, benchRolloutIndex()) }

func benchLookup(b *testing.B, ix *index) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, ok := ix.lookup("usb:"+strconv.Itoa(i%100_000), "1.2.0", Stable, i%100, time.Now); !ok {
			b.Fatal("no offer")
		}
	}
}

// BenchmarkUpdateCheck runs the whole handler as serve mounts it (the
// fast route before gin, metrics included) against the 1M-release index,
// with device ids percent-encoded as the device client sends them. The
// response writer is reused, as net/http reuses its own per connection,
// so the allocations counted are the handler's.
func BenchmarkUpdateCheck(b *testing.B) { benchUpdateCheck(b, benchIndex()) }

// BenchmarkUpdateCheckWithRollouts is BenchmarkUpdateCheck with a phased
// rollout at 50 % on every product's newest stable release and devices
// sending their buckets: half are offered it, half the release before.
func BenchmarkUpdateCheckWithRollouts(b *testing.B) { benchUpdateCheck(b, benchRolloutIndex()) }

// BenchmarkUpdateCheckFullStack is BenchmarkUpdateCheck through the gin
// engine alone (the way the check went before the fast route, and the way
// errors still go), for comparison.
func BenchmarkUpdateCheckFullStack(b *testing.B) {
	h, reqs := updateHandler(benchIndex())
	benchChecks(b, h.(*httpapi.API).Engine(), reqs)
}

func benchUpdateCheck(b *testing.B, ix *index) {
	h, reqs := updateHandler(ix)
	benchChecks(b, h, reqs)
}

func benchChecks(b *testing.B, h http.Handler, reqs []*http.Request) {
	b.ReportAllocs()
	w := &reusedWriter{h: http.Header{}}
	i := 0
	cpu := processCPU()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, reqs[i%len(reqs)])
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
		i++
	}
	// CPU time, unlike ns/op, does not count the time other processes
	// held the shared cores.
	b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(i), "cpu-ns/op")
}

// BenchmarkUpdateCheckRolloutOverhead serves the update check from both
// indexes above in alternating rounds of 1,000 checks, so both see the
// same load on a shared machine, and reports each one's time per check
// and their ratio (with rollouts / without; the target is at most 1.10).
func BenchmarkUpdateCheckRolloutOverhead(b *testing.B) {
	plain, plainReqs := updateHandler(benchIndex())
	rolling, rollingReqs := updateHandler(benchRolloutIndex())
	var tPlain, tRolling time.Duration
	n, i := 0, 0
	for b.Loop() {
		for round := range 2 {
			h, reqs, t := plain, plainReqs, &tPlain
			if (round+n)%2 == 1 {
				h, reqs, t = rolling, rollingReqs, &tRolling
			}
			start := time.Now()
			for range 1000 {
				serveCheck(b, h, reqs[i%len(reqs)])
				i++
			}
			*t += time.Since(start)
		}
		n++
	}
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(n*1000), "plain-ns/check")
	b.ReportMetric(float64(tRolling.Nanoseconds())/float64(n*1000), "rollout-ns/check")
	b.ReportMetric(float64(tRolling)/float64(tPlain), "rollout/plain")
}

func updateHandler(ix *index) (http.Handler, []*http.Request) {
	s := &Service{updateSem: make(chan struct{}, 1024), now: time.Now}
	s.m = newMetrics()
	s.index.Store(ix)
	api := httpapi.New(httpapi.Options{Metrics: prometheus.NewRegistry()})
	s.Register(api.V1(), api.Root())
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		q := url.Values{"id": {"usb:" + strconv.Itoa(i*97)}, "version": {"1.2.0"}, "channel": {"stable"}, "bucket": {strconv.Itoa(i % 100)}}
		reqs[i] = httptest.NewRequest("GET", "/v1/devices/updates?"+q.Encode(), nil)
	}
	return api, reqs
}

// processCPU is the CPU time this process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reusedWriter is a ResponseWriter that forgets what was written. Like
// net/http's own writer it is an io.StringWriter, so a handler writing a
// string body pays no conversion here that it would not pay in serve.
type reusedWriter struct {
	h    http.Header
	code int
}

func (w *reusedWriter) reset()                      { clear(w.h); w.code = 0 }
func (w *reusedWriter) Header() http.Header         { return w.h }
func (w *reusedWriter) WriteHeader(code int)        { w.code = code }
func (w *reusedWriter) Write(p []byte) (int, error) { return len(p), nil }

func (w *reusedWriter) WriteString(s string) (int, error) { return len(s), nil }

func serveCheck(b *testing.B, h http.Handler, r *http.Request) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		b.Fatalf("status %d: %s", w.Code, w.Body)
	}
}
