package coord_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// BenchmarkQueueToStart measures the time from CreateBuild to a
// long-polling builder holding the job, and reports its p50 and p95.
func BenchmarkQueueToStart(b *testing.B) {
	for _, c := range []struct {
		name string
		open func(testing.TB) *db.DB
	}{{"sqlite", dbtest.SQLite}, {"postgres", dbtest.Postgres}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			st, err := fsstore.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			d := c.open(b)
			au, err := auth.New(ctx, d, time.Now)
			if err != nil {
				b.Fatal(err)
			}
			svc, err := coord.New(ctx, coord.Options{DB: d, Store: st, Operators: au, Quorum: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			if err := au.CreateOrg(ctx, "bench-op", "", "operator"); err != nil {
				b.Fatal(err)
			}
			_, tok, err := au.CreateToken(ctx, auth.TokenSpec{Name: "bench", Role: principal.Builder, Operator: "bench-op"})
			if err != nil {
				b.Fatal(err)
			}
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			bd, err := svc.Register(ctx, tok.ID, builder.Registration{Name: "bench", PublicKey: keys.PublicKeyString(pub), Arch: "amd64",
				Toolchains: []builder.ToolchainInfo{{Name: "busybox", Version: "1.36.1"}}})
			if err != nil {
				b.Fatal(err)
			}
			src, err := st.Put(ctx, strings.NewReader("source"), "")
			if err != nil {
				b.Fatal(err)
			}
			started := make(chan time.Time, 1)
			pollCtx, stop := context.WithCancel(ctx)
			defer stop()
			go func() {
				for pollCtx.Err() == nil {
					j, err := svc.Next(pollCtx, bd.ID, 10*time.Second)
					if err != nil || j == nil {
						continue
					}
					started <- time.Now()
				}
			}()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				sp := builder.Spec{
					Recipe:    builder.RecipeRef{Name: "bench", Version: "1", RepoURL: "https://example.org/bench.git", Commit: fmt.Sprintf("%040x", i+1), Path: "afterlife.yaml"},
					Toolchain: builder.ToolchainReq{Name: "busybox"}, Steps: []string{"true"},
					Outputs: []builder.Output{{Path: "x", Kind: "other"}}, Source: src.Digest,
				}
				t0 := time.Now()
				if _, _, err := svc.CreateBuild(ctx, coord.NewBuild{Spec: sp}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-started).Sub(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}
