package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// searchCatalog is a small catalog of look-alike products from vendors
// whose display names differ from their org ids.
func searchCatalog(t *testing.T, d *db.DB) *Catalog {
	t.Helper()
	ctx := context.Background()
	c := newCatalog(t, d)
	for org, name := range map[string]string{"lumatek": "Lumatek Home", "acme": "Acme", "demo": "Afterlife Demo Devices"} {
		if err := c.SetVendorName(ctx, org, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []Registration{
		{ID: "lumatek-glow", Vendor: "lumatek", Model: "Glow", DeviceIDs: []string{"usb:2e8a:0101"}},
		{ID: "lumatek-glow-max", Vendor: "lumatek", Model: "Glow Max", DeviceIDs: []string{"usb:2e8a:0102"}},
		{ID: "lumatek-bridge", Vendor: "lumatek", Model: "Bridge", DeviceIDs: []string{"dt:lumatek,bridge-v2"}},
		{ID: "acme-thermo-2", Vendor: "acme", Model: "Thermo 2", DeviceIDs: []string{"usb:1d6b:0104"}},
		{ID: "acme-thermo-3", Vendor: "acme", Model: "Thermo 3"},
		{ID: "demo-cam", Vendor: "demo", Model: "AfterLife Cam 1", DeviceIDs: []string{"dt:acme,cam200"}},
	} {
		if _, err := c.Register(ctx, admin, r); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func foundIDs(f Found) []string {
	var out []string
	for _, p := range f.Products {
		out = append(out, p.ID)
	}
	return out
}

// TestSearchFindsProductsAsOwnersTypeThem runs the same cases on both
// databases: the words of a query in any order, a vendor's display name
// or its org, a device id, and a small typo all find the product, best
// first, with how many match in all.
func TestSearchFindsProductsAsOwnersTypeThem(t *testing.T) {
	cases := []struct {
		name  string
		q     string
		first string
		all   []string // every match, when the set matters
	}{
		{"a vendor's display name and a model find the product", "Lumatek Home glow", "lumatek-glow", []string{"lumatek-glow", "lumatek-glow-max"}},
		{"the vendor org and the model find the product, shortest first", "lumatek glow", "lumatek-glow", []string{"lumatek-glow", "lumatek-glow-max"}},
		{"words in any order find the same products", "glow LUMATEK", "lumatek-glow", []string{"lumatek-glow", "lumatek-glow-max"}},
		{"the display name alone finds every product of the vendor", "lumatek home", "lumatek-glow", []string{"lumatek-bridge", "lumatek-glow", "lumatek-glow-max"}},
		{"the placeholder's example finds its product", "Acme Thermo 2", "acme-thermo-2", []string{"acme-thermo-2"}},
		{"a name spread over the vendor and the model finds the product", "demo afterlife cam", "demo-cam", []string{"demo-cam"}},
		{"a misspelt model still finds the product", "lumatek glowe max", "lumatek-glow-max", []string{"lumatek-glow-max"}},
		{"a misspelt vendor still finds the product", "lumatec bridge", "lumatek-bridge", []string{"lumatek-bridge"}},
		{"two letters swapped in a vendor's name still find it", "glow lumatke", "lumatek-glow", []string{"lumatek-glow", "lumatek-glow-max"}},
		{"a usb device id finds its product", "usb:1d6b:0104", "acme-thermo-2", []string{"acme-thermo-2"}},
		{"a device-tree id with its comma finds its product", "dt:acme,cam200", "demo-cam", []string{"demo-cam"}},
		{"a device id in capitals finds its product", "USB:2E8A:0102", "lumatek-glow-max", []string{"lumatek-glow-max"}},
		{"a product id finds its product", "acme-thermo-3", "acme-thermo-3", []string{"acme-thermo-3"}},
		{"nothing like any product finds nothing", "zebra kettle", "", []string{}},
		{"LIKE wildcards are plain characters", "%", "", []string{}},
		{"control characters and broken UTF-8 separate words", "lumatek\x00glow\xff max", "lumatek-glow-max", []string{"lumatek-glow-max"}},
		{"FTS5 syntax is plain text", `glow" OR "thermo`, "", []string{}},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := searchCatalog(t, d)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				found, err := c.Search(ctx, tc.q, 10)
				if err != nil {
					t.Fatal(err)
				}
				got := foundIDs(found)
				if tc.first == "" {
					if found.Total != 0 || len(got) != 0 {
						t.Fatalf("Search(%q) = %v (total %d), want nothing", tc.q, got, found.Total)
					}
					return
				}
				if len(got) == 0 || got[0] != tc.first || found.Total != len(got) {
					t.Fatalf("Search(%q) = %v (total %d), want %s first", tc.q, got, found.Total, tc.first)
				}
				if tc.all != nil {
					sorted := slices.Sorted(slices.Values(got))
					if !slices.Equal(sorted, tc.all) {
						t.Fatalf("Search(%q) = %v, want %v", tc.q, sorted, tc.all)
					}
				}
			})
		}
		t.Run("each match carries its vendor's display name", func(t *testing.T) {
			found, err := c.Search(ctx, "glow", 10)
			if err != nil || len(found.Products) != 2 || found.Products[0].VendorName != "Lumatek Home" {
				t.Fatalf("Search(glow) = %+v, %v", found, err)
			}
		})
		t.Run("the limit cuts the list but not the total", func(t *testing.T) {
			found, err := c.Search(ctx, "lumatek", 2)
			if err != nil || found.Total != 3 || len(found.Products) != 2 {
				t.Fatalf("Search(lumatek, 2) = %+v, %v", found, err)
			}
		})
		t.Run("an empty query lists every product by id", func(t *testing.T) {
			found, err := c.Search(ctx, "  ", 10)
			if err != nil || found.Total != 6 || found.Products[0].ID != "acme-thermo-2" || found.Products[0].VendorName != "Acme" {
				t.Fatalf("Search('') = %+v, %v", found, err)
			}
		})
		t.Run("a query too long is refused", func(t *testing.T) {
			_, err := c.Search(ctx, strings.Repeat("x", 201), 10)
			wantKind(t, err, errs.Invalid)
		})
	})
}

// TestTheSearchIndexFollowsEveryChange changes products and vendor names
// the way the catalog and the organisations do, and straight in the
// table, as code written later might: the index follows each change,
// because the database's triggers keep it.
func TestTheSearchIndexFollowsEveryChange(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := searchCatalog(t, d)
		find := func(t *testing.T, q string) []string {
			t.Helper()
			found, err := c.Search(ctx, q, 10)
			if err != nil {
				t.Fatal(err)
			}
			return foundIDs(found)
		}
		t.Run("a product registered is found at once", func(t *testing.T) {
			if _, err := c.Register(ctx, admin, Registration{ID: "lumatek-spark", Vendor: "lumatek", Model: "Spark"}); err != nil {
				t.Fatal(err)
			}
			if got := find(t, "lumatek home spark"); !slices.Equal(got, []string{"lumatek-spark"}) {
				t.Fatalf("found %v", got)
			}
		})
		t.Run("a renamed vendor is found by its new name only", func(t *testing.T) {
			if err := c.SetVendorName(ctx, "lumatek", "Luma Lighting"); err != nil {
				t.Fatal(err)
			}
			if got := find(t, "luma lighting spark"); !slices.Equal(got, []string{"lumatek-spark"}) {
				t.Fatalf("new name found %v", got)
			}
			if got := find(t, "home spark"); len(got) != 0 {
				t.Fatalf("the old name still finds %v", got)
			}
			found, _ := c.Search(ctx, "spark", 10)
			if found.Products[0].VendorName != "Luma Lighting" {
				t.Fatalf("card shows %q", found.Products[0].VendorName)
			}
		})
		t.Run("a device id moved to another product is found there", func(t *testing.T) {
			if _, _, err := c.Reassign(ctx, admin, "usb:2e8a:0101", "lumatek-spark"); err != nil {
				t.Fatal(err)
			}
			if got := find(t, "usb:2e8a:0101"); !slices.Equal(got, []string{"lumatek-spark"}) {
				t.Fatalf("found %v", got)
			}
		})
		t.Run("a product edited in its table is found by its new model", func(t *testing.T) {
			if _, err := d.ExecContext(ctx, d.Q(`UPDATE products SET model = ? WHERE id = ?`), "Spark Pro", "lumatek-spark"); err != nil {
				t.Fatal(err)
			}
			if got := find(t, "spark pro"); !slices.Equal(got, []string{"lumatek-spark"}) {
				t.Fatalf("found %v", got)
			}
		})
		t.Run("a product removed from its table is no longer found", func(t *testing.T) {
			if _, err := d.ExecContext(ctx, d.Q(`DELETE FROM products WHERE id = ?`), "lumatek-spark"); err != nil {
				t.Fatal(err)
			}
			if got := find(t, "spark"); len(got) != 0 {
				t.Fatalf("found %v", got)
			}
		})
	})
}

// TestProductsStoredBeforeTheSearchIndexAreFound stores products with the
// catalog's tables as they were before the index, then opens the catalog:
// its migration indexes them.
func TestProductsStoredBeforeTheSearchIndexAreFound(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		old := fstest.MapFS{}
		for _, name := range []string{"00001_catalog.sql", "00002_event_seq.sql", "00003_device_id_owner.sql", "00004_fwupd_guids.sql", "00005_support.sql", "00006_handovers.sql", "00007_edits.sql", "00008_vendor_names.sql"} {
			b, err := fs.ReadFile(migrations, "migrations/"+name)
			if err != nil {
				t.Fatal(err)
			}
			old[name] = &fstest.MapFile{Data: b}
		}
		if err := d.Migrate(ctx, "catalog", old); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO vendor_names (org, name) VALUES ('lumatek', 'Lumatek Home')`)); err != nil {
			t.Fatal(err)
		}
		devs, _ := json.Marshal([]string{"usb:2e8a:0101"})
		if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO products (id, vendor, model, revisions, device_ids, eol, status, risk_notes, created_at, created_by)
			VALUES ('lumatek-glow', 'lumatek', 'Glow', '[]', ?, 0, 'supported', '', 1000, 'test')`), string(devs)); err != nil {
			t.Fatal(err)
		}
		c := newCatalog(t, d)
		for _, q := range []string{"lumatek home glow", "usb:2e8a:0101"} {
			found, err := c.Search(ctx, q, 10)
			if err != nil || !slices.Equal(foundIDs(found), []string{"lumatek-glow"}) {
				t.Fatalf("Search(%q) = %+v, %v", q, found, err)
			}
		}
	})
}

// TestWordSimilarityCountsTrigramsLikePgTrgm pins the SQLite side's
// measure of a misspelt word to the figures PostgreSQL 15's pg_trgm gives
// for word_similarity(w, doc), so both databases forgive the same typos.
func TestWordSimilarityCountsTrigramsLikePgTrgm(t *testing.T) {
	for _, tc := range []struct {
		name   string
		w, doc string
		want   float64
	}{
		{"a word found whole scores one", "thermo", "acme thermo", 1},
		{"pg_trgm's own example scores as documented", "word", "two words", 0.8},
		{"a wrong last letter of a long word is forgiven", "lumatec", "lumatek home lumatek bridge", 0.75},
		{"an added letter is forgiven", "glowe", "lumatek glow max", 0.6667},
		{"two letters swapped in a long word are forgiven", "lumatke", "lumatek home", 0.625},
		{"a letter missing from a short word is not", "thrmo", "acme acme thermo 2 acme-thermo-2", 0.4444},
		{"a longer word than the document's is not", "thermostat", "acme thermo", 0.5455},
		{"a device id scores by its parts", "usb:1d6b:0104", "usb 1d6b 0104", 1},
		{"an unrelated word scores nothing", "zebra", "lumatek home glow", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := wordSimilarity(tc.w, tc.doc); math.Abs(s-tc.want) > 0.001 {
				t.Fatalf("wordSimilarity(%q, %q) = %.4f, want %.4f", tc.w, tc.doc, s, tc.want)
			}
		})
	}
}

// TestASearchMatchingMuchOfTheCatalogStopsCounting fills the catalog with
// more products of one family than a search counts: the answer says the
// count stopped (more match), keeps the limit and still finds an exact
// product among them first when its words say so.
func TestASearchMatchingMuchOfTheCatalogStopsCounting(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		var args []any
		for i := range maxCounted + 50 {
			args = append(args, fmt.Sprintf("glow-%04d", i), fmt.Sprintf("Glow %d", i))
		}
		if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO products (id, vendor, model, revisions, device_ids, eol, status, risk_notes, created_at, created_by) VALUES `+
			strings.TrimSuffix(strings.Repeat(`(?, 'lumatek', ?, '[]', '[]', 0, 'supported', '', 0, 'test'), `, maxCounted+50), ", ")), args...); err != nil {
			t.Fatal(err)
		}
		found, err := c.Search(ctx, "glow", 20)
		if err != nil || found.Total != maxCounted || !found.TotalCapped || len(found.Products) != 20 {
			t.Fatalf("Search(glow) = total %d capped %v, %d products, %v", found.Total, found.TotalCapped, len(found.Products), err)
		}
		found, err = c.Search(ctx, "glow 1017", 20)
		if err != nil || found.TotalCapped || found.Total != 1 || found.Products[0].ID != "glow-1017" {
			t.Fatalf("Search(glow 1017) = %+v, %v", found, err)
		}
	})
}

// FuzzSearchTakesAnyText feeds what anyone may type into the search box
// (FTS5 syntax, LIKE wildcards, quotes, odd bytes) to the SQLite search:
// it answers or refuses a too long text as Invalid, never with an error of
// the database's.
func FuzzSearchTakesAnyText(f *testing.F) {
	for _, s := range []string{`lumatek glow`, `"`, `""`, `glow"*`, `NEAR(a b)`, `a OR b`, `-x`, `^glow`, `%_\`, `usb:1d6b:0104`, `dt:acme,cam200`, "\x00\xff", `ü ß ❄`, `col:val`, `(((`} {
		f.Add(s)
	}
	d := dbtest.SQLite(f)
	ctx := context.Background()
	c, err := New(ctx, d, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := c.SetVendorName(ctx, "lumatek", "Lumatek Home"); err != nil {
		f.Fatal(err)
	}
	if _, err := c.Register(ctx, admin, Registration{ID: "lumatek-glow", Vendor: "lumatek", Model: "Glow", DeviceIDs: []string{"usb:2e8a:0101"}}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q string) {
		found, err := c.Search(ctx, q, 10)
		if err != nil && !errs.Is(err, errs.Invalid) {
			t.Fatalf("Search(%q): %v", q, err)
		}
		if err == nil && found.Total < len(found.Products) {
			t.Fatalf("Search(%q): total %d below %d products", q, found.Total, len(found.Products))
		}
	})
}
