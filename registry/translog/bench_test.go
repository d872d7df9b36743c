package translog

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// genSource makes n events on demand, each about as large as a release
// publication entry.
type genSource struct{ n int64 }

func (s genSource) After(_ context.Context, seq int64, limit int) ([]Event, error) {
	var out []Event
	for i := seq + 1; i <= s.n && len(out) < limit; i++ {
		out = append(out, Event{Seq: i, At: t0.Add(time.Duration(i) * time.Millisecond), Type: "release.published", Subject: "bench-product",
			Fields: map[string]any{"release": fmt.Sprintf("rel_%012d", i), "version": fmt.Sprintf("1.%d.0", i),
				"artifacts": []map[string]any{{"target": "bench-product/fw.bin", "digest": "sha256:9f2c5b0e8d8a4e3c1b7d6f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1", "size": 1 << 20}}}})
	}
	return out, nil
}

// BenchmarkLogAt1M fills a log with AFTERLIFE_BENCH_LOG_ENTRIES entries
// (default 1,000,000; PostgreSQL: a tenth, it is the slower writer) and
// reports the append rate, then the size of an inclusion proof bundle and
// of a consistency proof, and how long checking them takes, at that size.
func BenchmarkLogAt1M(b *testing.B) {
	n := int64(1_000_000)
	if s := os.Getenv("AFTERLIFE_BENCH_LOG_ENTRIES"); s != "" {
		n, _ = strconv.ParseInt(s, 10, 64)
	}
	for _, bk := range []struct {
		name string
		open func(testing.TB) *db.DB
		n    int64
	}{{"sqlite", dbtest.SQLite, n}, {"postgres", dbtest.Postgres, n / 10}} {
		b.Run(bk.name, func(b *testing.B) {
			ctx := context.Background()
			l, err := Open(ctx, Options{DB: bk.open(b), KeyDir: b.TempDir(), Origin: "bench.example/log",
				Sources: map[string]Source{"s": genSource{bk.n}}, Now: func() time.Time { return t0 }, Replica: "bench", Batch: 2000})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				began := time.Now()
				res, err := l.Tick(ctx, t0, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(began)
				if res.Size != bk.n {
					b.Fatalf("size %d, want %d", res.Size, bk.n)
				}
				b.ReportMetric(float64(bk.n)/took.Seconds(), "appends/s")
				b.ReportMetric(float64(bk.n), "entries")

				pol := verify.Policy{Origin: l.Origin(), LogKey: l.VerifierKey()}
				const samples = 200
				var bundleBytes, proveNs, verifyNs int
				for i := 0; i < samples; i++ {
					idx := (int64(i)*7919 + 13) % bk.n
					t := time.Now()
					bundle, err := l.ProofBundle(ctx, idx)
					if err != nil {
						b.Fatal(err)
					}
					proveNs += int(time.Since(t))
					bundleBytes += len(bundle)
					t = time.Now()
					if _, err := pol.Bundle(bundle); err != nil {
						b.Fatal(err)
					}
					verifyNs += int(time.Since(t))
				}
				b.ReportMetric(float64(bundleBytes)/samples, "bundle-bytes")
				b.ReportMetric(float64(proveNs)/samples/1e3, "prove-µs")
				b.ReportMetric(float64(verifyNs)/samples/1e3, "verify-µs")

				newest, _, err := l.Checkpoint(ctx)
				if err != nil {
					b.Fatal(err)
				}
				cur, err := pol.Checkpoint(newest)
				if err != nil {
					b.Fatal(err)
				}
				oldSize := bk.n/2 + 1
				p, err := l.Consistency(ctx, oldSize, bk.n)
				if err != nil {
					b.Fatal(err)
				}
				root, err := tlogRoot(ctx, l, oldSize)
				if err != nil {
					b.Fatal(err)
				}
				t := time.Now()
				for i := 0; i < samples; i++ {
					if err := verify.Consistency(verify.Checkpoint{Size: oldSize, Hash: root}, cur, p); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(p)*32), "consistency-bytes")
				b.ReportMetric(float64(time.Since(t).Nanoseconds())/samples/1e3, "consistency-verify-µs")
			}
		})
	}
}

func tlogRoot(ctx context.Context, l *Log, size int64) (tlog.Hash, error) {
	return tlog.TreeHash(size, dbHashes{ctx, l})
}
