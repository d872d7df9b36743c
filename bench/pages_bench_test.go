package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// BenchmarkDemoPages starts `afterlife serve --demo` (its builders keep a
// warm cache in the user cache dir), waits until the demo's build has
// finished, and reports the median and p95 latency of the main pages, each
// fetched sequentially over keep-alive.
func BenchmarkDemoPages(b *testing.B) {
	base, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	cache := filepath.Join(base, "afterlife", "builder-cache")
	srv := testenv.Serve(b, testenv.ServeOptions{Args: []string{"--demo", "--builder-cache", cache}, Ready: 3 * time.Minute})
	done := filepath.Join(srv.Data, "demo.done")
	testenv.Eventually(b, 8*time.Minute, func() error {
		_, err := os.Stat(done)
		switch {
		case err == nil:
			return nil
		case srv.Exited():
			return testenv.GiveUp(fmt.Errorf("the server exited before the demo finished\n%s", srv.LogTail()))
		}
		return fmt.Errorf("the demo did not finish (%v)\n%s", err, srv.LogTail())
	})
	pages := []struct{ name, path string }{
		{"home", "/"},
		{"search", "/search?q=cam"},
		{"product", "/products/demo-cam"},
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for b.Loop() {
		for _, p := range pages {
			var lat []time.Duration
			for i := range 101 {
				start := time.Now()
				resp, err := client.Get(srv.URL + p.path)
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %s %v", p.path, resp.Status, err)
				}
				if i > 0 { // the first request warms caches and the connection
					lat = append(lat, time.Since(start))
				}
			}
			sortDurations(lat)
			b.ReportMetric(ms(percentile(lat, 50)), p.name+"-p50-ms")
			b.ReportMetric(ms(percentile(lat, 95)), p.name+"-p95-ms")
			figure("page %s (%s) on serve --demo: median %.2f ms, p95 %.2f ms", p.name, p.path, ms(percentile(lat, 50)), ms(percentile(lat, 95)))
		}
	}
}
