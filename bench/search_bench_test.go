package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/registry/catalog"
)

// searchProducts is the size of the catalog BenchmarkSearch searches.
const searchProducts = 100_000

var (
	searchStems   = []string{"Luma", "Acme", "Thermi", "Nova", "Brite", "Hexa", "Vanta", "Oro", "Kilo", "Zento", "Pyra", "Quanta", "Soli", "Tera", "Veri", "Wyse", "Xeno", "Yara", "Alto", "Boro"}
	searchEnds    = []string{"tek", "tron", "works", "line", "cast", "lab", "wave", "core", "link", "node", "sys", "net", "flux", "gen", "ion", "max", "tec", "nix", "soft", "ware", "bit", "dyne", "form", "mark", "path"}
	searchKinds   = []string{"Home", "Devices", "Labs", "Electronics", "Systems"}
	searchFamilie = []string{"Glow", "Thermo", "Cam", "Hub", "Plug", "Bridge", "Sense", "Lock", "Bell", "Cast", "Beam", "Air", "Pure", "Scale", "Watch", "Tag", "Dock", "Mesh", "Volt", "Drop",
		"Breeze", "Spark", "Pulse", "Orbit", "Echo", "Frame", "Glide", "Halo", "Iris", "Jet", "Kite", "Loop", "Mist", "Nest", "Opal", "Pixel", "Quill", "Ray", "Stone", "Tide",
		"Umbra", "Vista", "Wisp", "Zest", "Arc", "Bloom", "Coil", "Dune", "Ember", "Flint"}
)

// searchVendor is vendor i of 500: its org id and display name.
func searchVendor(i int) (org, name string) {
	stem, end := searchStems[i%len(searchStems)], searchEnds[i/len(searchStems)%len(searchEnds)]
	return strings.ToLower(stem + end), stem + end + " " + searchKinds[i%len(searchKinds)]
}

// searchModel is the model of vendor v's j-th product.
func searchModel(v, j int) string {
	return fmt.Sprintf("%s %d", searchFamilie[(v*7+j)%len(searchFamilie)], 1+j/len(searchFamilie)*100+j%7)
}

// fillSearchCatalog writes 100k products of 500 vendors (200 each, two
// device ids each) and their display names straight into the catalog's
// tables, in batches, as registration leaves them: the database's triggers
// index them as they index any write. It returns the time the writes took.
func fillSearchCatalog(tb testing.TB, d *db.DB) time.Duration {
	tb.Helper()
	ctx := context.Background()
	c, err := catalog.New(ctx, d, nil)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	for v := range searchProducts / 200 {
		org, name := searchVendor(v)
		if err := c.SetVendorName(ctx, org, name); err != nil {
			tb.Fatal(err)
		}
	}
	const batch = 500
	for from := 0; from < searchProducts; from += batch {
		err := d.Tx(ctx, func(tx *sql.Tx) error {
			q := `INSERT INTO products (id, vendor, model, revisions, device_ids, eol, status, risk_notes, created_at, created_by) VALUES ` +
				strings.TrimSuffix(strings.Repeat(`(?, ?, ?, '[]', ?, 0, 'supported', '', 0, 'bench'), `, batch), ", ")
			args := make([]any, 0, batch*4)
			owners := make([]any, 0, batch*4)
			for n := from; n < from+batch; n++ {
				v, j := n/200, n%200
				org, _ := searchVendor(v)
				id, ids := fmt.Sprintf("%s-%d", org, j), []string{fmt.Sprintf("usb:%04x:%04x", 0x1000+v, j), fmt.Sprintf("dt:%s,m%d", org, j)}
				devs, _ := json.Marshal(ids)
				args = append(args, id, org, searchModel(v, j), string(devs))
				owners = append(owners, ids[0], id, ids[1], id)
			}
			if _, err := tx.ExecContext(ctx, d.Q(q), args...); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, d.Q(`INSERT INTO product_device_ids (device_id, product) VALUES `+
				strings.TrimSuffix(strings.Repeat(`(?, ?), `, 2*batch), ", ")), owners...)
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if d.Dialect == db.Postgres {
		if _, err := d.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(start)
}

// searchQuery is one query of the mix and its kind.
type searchQuery struct{ kind, q string }

// searchQueries is the mix of what owners type, drawn from the catalog:
// brand and model, org and model family, the words reversed, a model
// alone, a family alone (thousands match), a device id, a typo in the
// brand, and words that match nothing.
func searchQueries(n int) []searchQuery {
	r := rand.New(rand.NewPCG(7, 20))
	out := make([]searchQuery, 0, n)
	for len(out) < n {
		v, j := r.IntN(searchProducts/200), r.IntN(200)
		org, name := searchVendor(v)
		model := searchModel(v, j)
		family := strings.Fields(model)[0]
		typo := []rune(org)
		typo[len(typo)-1] = 'q'
		for _, q := range []searchQuery{
			{"brand and model", name + " " + model},
			{"org and family", org + " " + family},
			{"reversed", model + " " + org},
			{"model", model},
			{"family alone", family},
			{"device id", fmt.Sprintf("usb:%04x:%04x", 0x1000+v, j)},
			{"typo", string(typo) + " " + strings.ToLower(family)},
			{"no match", "zebra kettle"},
		} {
			out = append(out, q)
		}
	}
	return out[:n]
}

// BenchmarkSearch searches a catalog of 100k products on SQLite and on
// PostgreSQL with a mix of what owners type, one query at a time after a
// warm-up, and reports the p50 and p99 latency of catalog.Search (limit
// 50, with the total), overall and per kind of query. The catalog is
// opened after the fill as a start of serve opens it (on SQLite that
// merges the full-text index into one segment).
func BenchmarkSearch(b *testing.B) {
	for _, dbk := range []string{"sqlite", "postgres"} {
		b.Run(dbk, func(b *testing.B) {
			var d *db.DB
			if dbk == "sqlite" {
				d = dbtest.SQLite(b)
			} else {
				d = dbtest.Postgres(b)
			}
			fill := fillSearchCatalog(b, d)
			ctx := context.Background()
			c, err := catalog.New(ctx, d, nil)
			if err != nil {
				b.Fatal(err)
			}
			// One connection, so the CPU time of the one PostgreSQL backend
			// that answers is the database's share of each query.
			d.SetMaxOpenConns(1)
			cpu := searchCPU(b, d)
			queries := searchQueries(2000)
			for _, q := range queries[:200] { // warm-up: caches, plans
				if _, err := c.Search(ctx, q.q, 50); err != nil {
					b.Fatal(err)
				}
			}
			byKind := map[string][]time.Duration{}
			var wall, used []time.Duration
			for b.Loop() {
				wall, used = wall[:0], used[:0]
				clear(byKind)
				for _, q := range queries {
					cpu0, start := cpu(), time.Now()
					found, err := c.Search(ctx, q.q, 50)
					took, spent := time.Since(start), cpu()-cpu0
					if err != nil {
						b.Fatal(err)
					}
					if (q.kind == "no match") != (found.Total == 0) {
						b.Fatalf("search %q (%s) found %d", q.q, q.kind, found.Total)
					}
					wall, used = append(wall, took), append(used, spent)
					byKind[q.kind] = append(byKind[q.kind], spent)
				}
			}
			b.ReportMetric(float64(searchProducts), "products")
			b.ReportMetric(fill.Seconds(), "fill-s")
			b.ReportMetric(msQuantile(wall, 0.50), "p50-ms")
			b.ReportMetric(msQuantile(wall, 0.99), "p99-ms")
			b.ReportMetric(msQuantile(used, 0.50), "cpu-p50-ms")
			b.ReportMetric(msQuantile(used, 0.99), "cpu-p99-ms")
			for kind, lat := range byKind {
				b.ReportMetric(msQuantile(lat, 0.50), strings.ReplaceAll(kind, " ", "-")+"-cpu-p50-ms")
				b.ReportMetric(msQuantile(lat, 0.99), strings.ReplaceAll(kind, " ", "-")+"-cpu-p99-ms")
			}
		})
	}
}

func msQuantile(lat []time.Duration, q float64) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	return ms(s[min(len(s)-1, int(float64(len(s))*q))])
}

// searchCPU returns a clock of the CPU time a search costs: this
// process's (SQLite runs in it) plus, on PostgreSQL, the one backend's
// (from its /proc/PID/schedstat, in nanoseconds). On a machine whose cores
// are shared, it is the figure that does not count the wait for a core.
func searchCPU(tb testing.TB, d *db.DB) func() time.Duration {
	tb.Helper()
	self := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			tb.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if d.Dialect != db.Postgres {
		return self
	}
	var pid int
	if err := d.QueryRow(`SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		tb.Fatal(err)
	}
	stat := fmt.Sprintf("/proc/%d/schedstat", pid)
	return func() time.Duration {
		b, err := os.ReadFile(stat)
		if err != nil {
			tb.Fatalf("the database backend's CPU time: %v", err)
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			tb.Fatalf("%s: %q", stat, b)
		}
		return self() + time.Duration(ns)
	}
}
