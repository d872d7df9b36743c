package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// A full rebuild reads the releases in key ranges of products at once;
// whatever the number of ranges, the index is the one a single query
// builds: offers, rollbacks, rollouts, device lists,
// targets of held, pulled-back and yanked releases.
func TestARebuildReadInRangesEqualsOneReadInOneQuery(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		a := newEnv(t, d, envOptions{})
		admin := principal.Principal{Role: principal.Admin, Name: "root"}
		products := []string{"demo-cam"}
		for i := range 9 {
			id := fmt.Sprintf("cam-%c", 'a'+i)
			ids := []string{fmt.Sprintf("usb:aaaa:%04d", i), fmt.Sprintf("usb:bbbb:%04d", i)}
			if _, err := a.cat.Register(ctx, admin, catalog.Registration{ID: id, Vendor: "acme", Model: "Cam " + id, DeviceIDs: ids}); err != nil {
				t.Fatal(err)
			}
			products = append(products, id)
		}
		for i, product := range products {
			var rels []Release
			for v := range 3 {
				req := PublishRequest{BuildID: a.firmwareFor(product, fmt.Sprint(v)), Product: product,
					Version: fmt.Sprintf("1.%d.0", v), Channel: []string{Stable, Testing}[(i+v)%2]}
				if v == 2 && i%2 == 0 {
					req.Rollout = []device.RolloutStage{{Percent: 10, DwellSeconds: 3600}, {Percent: 100}}
				}
				if v == 1 {
					req.MinVersion = "1.0.0"
				}
				rel, err := a.svc.Publish(ctx, admin, req)
				if err != nil {
					t.Fatalf("publish %s %s: %v", product, req.Version, err)
				}
				rels = append(rels, rel)
			}
			var err error
			switch i % 4 {
			case 1:
				_, err = a.svc.Yank(ctx, admin, rels[0].ID, "broken")
			case 2:
				err = a.svc.hold(ctx, rels[1], "failures")
			case 3:
				if err = a.svc.hold(ctx, rels[2], "failures"); err == nil {
					_, err = a.svc.ConfirmPullBack(ctx, admin, rels[2].ID, "bad")
				}
			}
			if err != nil {
				t.Fatalf("product %s: %v", product, err)
			}
		}
		serial, err := a.svc.loadIndexIn(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := serial.dump()
		if serial.offers == 0 || serial.targets.len() < 2*len(products) {
			t.Fatalf("the index holds %d offers and %d targets; the test means more", serial.offers, serial.targets.len())
		}
		for _, ranges := range []int{2, 3, 4, 7, 64} {
			bounds, err := a.svc.productBounds(ctx, append([]string(nil), products...), ranges)
			if err != nil {
				t.Fatal(err)
			}
			if ranges <= len(products)/2 && len(bounds) != ranges-1 {
				t.Errorf("%d ranges of %d products are split at %q", ranges, len(products), bounds)
			}
			got, err := a.svc.loadIndexIn(ctx, ranges)
			if err != nil {
				t.Fatal(err)
			}
			if g := got.dump(); g != want {
				t.Fatalf("read in %d ranges (split at %q), the index differs from one read in one query:\n%s", ranges, bounds, diffLines(g, want))
			}
		}
	})
}

// Ordering each product's offers runs on every core once the last row is
// in, and a rebuild sizes each product's lists as the index it replaces
// had them: neither changes the index, whatever the batches' order.
func TestAnIndexOfManyProductsIsTheSameWhateverTheOrderOfItsBatches(t *testing.T) {
	var rels []indexRelease
	for p := range 3000 {
		dev, product := fmt.Sprintf("usb:%04x:0001", p), fmt.Sprintf("prod-%d", p)
		for v := range 3 {
			ver := fmt.Sprintf("1.%d.0", v)
			rels = append(rels, indexRelease{ID: "rel_" + product + ver, Product: product, Version: ver, Channel: []string{Stable, Testing}[v%2],
				Held: p%7 == 0 && v == 2, RollbackFrom: []device.YankedFrom{{Version: "0.9.0"}},
				Artifacts: []Artifact{{Kind: "firmware", Size: 10, Digest: "sha256:" + sha256Hex([]byte(product+ver)), Target: product + "/" + ver + "/fw.bin"}},
				DeviceIDs: []string{dev}})
		}
	}
	want := buildIndex(rels).dump()
	reversed := slices.Clone(rels)
	slices.Reverse(reversed)
	if got := buildIndex(reversed[:1000], reversed[1000:]).dump(); got != want {
		t.Fatalf("built from the releases in reverse, the index differs:\n%s", diffLines(got, want))
	}
	// In any order: a product's offers are then neither oldest nor
	// newest first, and are sorted with their rollbacks following them.
	shuffled := slices.Clone(rels)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if got := buildIndex(shuffled).dump(); got != want {
		t.Fatalf("built from the releases in random order, the index differs:\n%s", diffLines(got, want))
	}
	// A rebuild beside an index that held half of the products.
	prev := buildIndex(rels[:len(rels)/2])
	ib := newIndexBuilder(len(rels), 3000)
	ib.prev = prev
	ib.add(reversed)
	if got := ib.index().dump(); got != want {
		t.Fatalf("sized as an index before, the index differs:\n%s", diffLines(got, want))
	}
	held := slices.Clone(rels)
	for i := range held {
		held[i].Held = true
	}
	ib = newIndexBuilder(len(rels), 3000)
	ib.prev = buildIndex(rels)
	ib.add(held)
	if ix := ib.index(); ix.offers != 0 || ix.devices.len() != 0 {
		t.Fatalf("with every release held, an index sized as before offers %d releases to %d device ids", ix.offers, ix.devices.len())
	}
}

// A product's arena is addressed with 32-bit offsets: a release that
// would take it past its limit is left out whole (neither offered nor
// served), and what was added before it answers as it did.
func TestAReleaseThatWouldPassTheArenasLimitIsLeftOutWhole(t *testing.T) {
	rel := func(v int) indexRelease {
		ver := fmt.Sprintf("1.%d.0", v)
		return indexRelease{ID: "rel_" + ver, Product: "cam", Version: ver, Channel: Stable, Notes: strings.Repeat("n", 300),
			RollbackFrom: []device.YankedFrom{{Version: "0.9.0"}},
			Artifacts:    []Artifact{{Kind: "firmware", Size: 10, Digest: "sha256:" + sha256Hex([]byte(ver)), Target: "cam/" + ver + "/fw.bin"}}}
	}
	one := newProductPart("cam", 0, []string{"usb:1"})
	r0 := rel(0)
	one.add(&r0, pathSeeds{}, nil)
	one.finish()
	// add counts the strings it may copy besides the body, and room for
	// a rollout plan: exactly enough room for the first release, and
	// some more.
	enough := uint64(len(one.arena) + len(r0.ID) + len(r0.Version) + len(r0.Artifacts[0].Target) + planLen(maxStages))
	for _, limit := range []uint64{enough, enough + 100} {
		t.Run(fmt.Sprintf("with room for %d bytes", limit), func(t *testing.T) {
			seeds := newPathSeeds()
			targets := map[pathKey]targetRef{}
			part := newProductPart("cam", 0, []string{"usb:1"})
			part.b.limit = limit
			for v := range 3 {
				r := rel(v)
				part.add(&r, seeds, targets)
			}
			part.finish()
			if part.dropped != 2 || len(part.offers) != 1 || len(part.files) != 1 || len(targets) != 1 || uint64(len(part.arena)) > limit {
				t.Fatalf("dropped %d, kept %d offers and %d files (%d targets) in %d bytes", part.dropped, len(part.offers), len(part.files), len(targets), len(part.arena))
			}
			ix := &index{seeds: seeds, devices: layered[string, []*productPart]{base: map[string][]*productPart{"usb:1": {part}}},
				targets: layered[pathKey, targetRef]{base: targets}, parts: []*productPart{part}}
			for _, current := range []string{"0.8.0", "0.9.0"} {
				if o, ok := ix.lookup("usb:1", current, Stable, 0, time.Now); !ok || o.releaseID != "rel_1.0.0" || o.body != one.offer(0).body {
					t.Fatalf("a device on %s is offered %v %+v, want the release kept", current, ok, o)
				}
			}
			if _, ok := ix.target("cam/1.1.0/fw.bin"); ok {
				t.Fatal("a file of a release left out is served")
			}
			if got, ok := ix.target("cam/1.0.0/fw.bin"); !ok || got.release != "rel_1.0.0" {
				t.Fatalf("the file of the release kept is served %v as %+v", ok, got)
			}
		})
	}
}
