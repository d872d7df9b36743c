package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// dump writes out everything an index answers with, in one order: which
// offers each device id reaches (bodies, ETags, rollout plans,
// rollbacks), every target, the count of offers. A target whose key is
// not its path's, or whose part is not in its slot, is written out as
// such.
func (ix *index) dump() string {
	var lines []string
	show := func(o offer) string {
		s := fmt.Sprintf("%s %s min=%s etag=%s len=%s body=%s", o.releaseID, o.version, o.minVersion, o.etag, o.length, o.body)
		if o.rollout != "" {
			s += fmt.Sprintf(" rollout=%+v", decodePlan(o.rollout))
		}
		return s
	}
	rollbacks := func(part *productPart, list []rollbackRec) string {
		var out []string
		for _, r := range list {
			out = append(out, part.str(r.from)+"→"+part.offer(r.offer).releaseID)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	ix.devices.all(func(d string, list []*productPart) {
		for i, part := range list {
			lines = append(lines, fmt.Sprintf("device %s #%d %s rollback stable[%s] testing[%s]", d, i, part.product, rollbacks(part, part.stableRollback), rollbacks(part, part.testingRollback)))
			stable := 0
			for j := range part.offers {
				o := part.offer(int32(j))
				if part.offers[j].stable {
					lines = append(lines, fmt.Sprintf("device %s #%d stable %d %s", d, i, stable, show(o)))
					stable++
				}
				lines = append(lines, fmt.Sprintf("device %s #%d testing %d %s", d, i, j, show(o)))
			}
		}
	})
	ix.products.all(func(product string, part *productPart) {
		if int(part.slot) >= len(ix.parts) || ix.parts[part.slot] != part {
			lines = append(lines, fmt.Sprintf("product %s is not in its slot %d", product, part.slot))
		}
	})
	ix.targets.all(func(k pathKey, ref targetRef) {
		part := ix.parts[ref.slot]
		f := part.files[ref.file]
		p := part.str(f.path)
		if ix.seeds.key(p) != k {
			lines = append(lines, fmt.Sprintf("target %s under another path's key", p))
		}
		t, ok := ix.target(p)
		lines = append(lines, fmt.Sprintf("target %s %v %s %d %s", p, ok, t.digest(), t.size, t.release))
	})
	slices.Sort(lines)
	return strings.Join(lines, "\n") + fmt.Sprintf("\noffers %d devices %d targets %d", ix.offers, ix.devices.len(), ix.targets.len())
}

// secondProduct registers another product with a device id of its own,
// so changes of one product can be seen not to touch the other's.
func (e *env) secondProduct() {
	e.t.Helper()
	if _, err := e.cat.Register(context.Background(), principal.Principal{Role: principal.Admin, Name: "root"}, catalog.Registration{
		ID: "other-cam", Vendor: "acme", Model: "Other Cam", DeviceIDs: []string{"usb:aaaa:0001"},
	}); err != nil {
		e.t.Fatal(err)
	}
}

// firmwareFor is firmware built for product.
func (e *env) firmwareFor(product, version string) string {
	id, _ := e.firmware(product + "-" + version)
	e.farm.mu.Lock()
	b := e.farm.builds[id]
	b.Products = []string{product}
	e.farm.builds[id] = b
	e.farm.mu.Unlock()
	return id
}

// refused is an error the registry's rules give for a change that does
// not apply to the release as it is (the random sequence tries them).
func refused(err error) bool {
	return errs.Is(err, errs.Conflict) || errs.Is(err, errs.Invalid)
}

func TestTheFollowedIndexEqualsAFullRebuildAfterRandomChanges(t *testing.T) {
	admin := principal.Principal{Role: principal.Admin, Name: "root"}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) {
				ctx := context.Background()
				a := newEnv(t, d, envOptions{})
				if seed == 1 {
					a.secondProduct()
				}
				b, err := New(ctx, Options{DB: d, Blobs: a.blobs, TUF: a.repo, Catalog: a.cat, Builds: a.farm, Now: a.clock.now, ReplicaID: "replica-b"})
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(seed, 42))
				products := []string{"demo-cam", "other-cam"}
				var rels []Release
				pick := func() (Release, bool) {
					if len(rels) == 0 {
						return Release{}, false
					}
					return rels[rng.IntN(len(rels))], true
				}
				var log []string
				for step := range 40 {
					var what string
					var err error
					switch op := rng.IntN(9); {
					case op <= 2 || len(rels) == 0:
						product := products[rng.IntN(2)]
						ch := []string{Testing, Stable}[rng.IntN(2)]
						req := PublishRequest{BuildID: a.firmwareFor(product, fmt.Sprint(step)), Product: product,
							Version: fmt.Sprintf("1.%d.%d", step, rng.IntN(3)), Channel: ch}
						if rng.IntN(3) == 0 {
							req.Rollout = []device.RolloutStage{{Percent: 10, DwellSeconds: 3600}, {Percent: 100}}
						}
						if rng.IntN(4) == 0 {
							req.MinVersion = "1.0.0"
						}
						what = "publish " + product + " " + req.Version + " " + ch
						var rel Release
						if rel, err = a.svc.Publish(ctx, admin, req); err == nil {
							rels = append(rels, rel)
						} else if errs.Is(err, errs.NotFound) && product == "other-cam" {
							what, err = what+" (not in the catalog in this run)", errs.E(errs.Invalid, "no such product")
						}
					case op == 3:
						r, _ := pick()
						what = "promote " + r.Version
						_, err = a.svc.Promote(ctx, admin, r.ID)
					case op == 4:
						r, _ := pick()
						what = "yank " + r.Version
						_, err = a.svc.Yank(ctx, admin, r.ID, "broken")
					case op == 5:
						r, _ := pick()
						what = "hold " + r.Version
						if cur, gerr := a.svc.Get(ctx, r.ID); gerr == nil && !cur.Yanked {
							err = a.svc.hold(ctx, cur, "failures")
						}
					case op == 6:
						r, _ := pick()
						what = "resume or pull back " + r.Version
						if rng.IntN(2) == 0 {
							_, err = a.svc.Resume(ctx, admin, r.ID, "looked at it")
						} else {
							_, err = a.svc.ConfirmPullBack(ctx, admin, r.ID, "bad")
						}
					default:
						r, _ := pick()
						action := []string{"start", RolloutPause, RolloutResume, RolloutAbort}[rng.IntN(4)]
						what = "rollout " + action + " " + r.Version
						if action == "start" {
							_, err = a.svc.StartRollout(ctx, admin, r.ID, []device.RolloutStage{{Percent: 50, DwellSeconds: 60}, {Percent: 100}})
						} else {
							_, err = a.svc.ChangeRollout(ctx, admin, r.ID, action, "because")
						}
					}
					if err != nil && !refused(err) {
						t.Fatalf("step %d, %s: %v", step, what, err)
					}
					log = append(log, fmt.Sprintf("%d %s: %v", step, what, err))
					a.clock.add(time.Duration(rng.IntN(120)) * time.Second)
					// Replica B follows every few steps, so it meets one
					// event and many at once.
					if rng.IntN(3) == 0 || step == 39 {
						if err := b.Poll(ctx); err != nil {
							t.Fatal(err)
						}
						full, err := b.loadIndex(ctx)
						if err != nil {
							t.Fatal(err)
						}
						if got, want := b.index.Load().dump(), full.dump(); got != want {
							t.Fatalf("after\n%s\nthe followed index differs from a full rebuild:\n%s", strings.Join(log, "\n"), diffLines(got, want))
						}
						if got, want := a.svc.index.Load().dump(), full.dump(); got != want {
							t.Fatalf("after\n%s\nthe changing replica's index differs from a full rebuild:\n%s", strings.Join(log, "\n"), diffLines(got, want))
						}
					}
				}
				applied := 0
				for _, l := range log {
					if strings.HasSuffix(l, ": <nil>") {
						applied++
					}
				}
				t.Logf("%d of %d changes applied, %d releases, replica B followed %v times", applied, len(log), len(rels), counterValue(b.m.updates))
				if n := testutilCount(b); n != 0 {
					t.Errorf("replica B rebuilt its index %d times while following; want only the rebuild at start", n)
				}
			})
		})
	}
}

// testutilCount is how often s rebuilt its index whole after New.
func testutilCount(s *Service) int { return int(counterValue(s.m.rebuilds)) - 1 }

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// diffLines lists the lines only one of got and want has.
func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var out []string
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

func TestAChangeOnOneReplicaIsAnsweredByTheOtherWithoutARebuild(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a := newEnv(t, d, envOptions{})
		b, err := New(ctx, Options{DB: d, Blobs: a.blobs, TUF: a.repo, Catalog: a.cat, Builds: a.farm, Now: a.clock.now,
			ReplicaID: "replica-b", PollInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		api := httpapi.New(httpapi.Options{})
		b.Register(api.V1(), api.Root())
		srvB := httptest.NewServer(api)
		t.Cleanup(srvB.Close)
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Error(err)
			}
		})
		// askB is replica B's answer to a device on 0.9.0, as it sends it.
		askB := func(bucket int) (int, device.Offer) {
			q := url.Values{"id": {"usb:1d6b:0104"}, "version": {"0.9.0"}, "channel": {Stable}, "bucket": {fmt.Sprint(bucket)}}
			resp, err := http.Get(srvB.URL + "/v1/devices/updates?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var o device.Offer
			if resp.StatusCode == http.StatusOK {
				if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
					t.Fatal(err)
				}
			}
			return resp.StatusCode, o
		}
		answers := func(bucket, status int, version string) func() error {
			return func() error {
				if code, o := askB(bucket); code != status || o.Version != version {
					return fmt.Errorf("replica B answers a device in bucket %d with %d %q, want %d %q", bucket, code, o.Version, status, version)
				}
				return nil
			}
		}
		admin := principal.Principal{Role: principal.Admin, Name: "root"}

		first := a.publish(PublishRequest{BuildID: a.firmwareFor("demo-cam", "1.0.0"), Version: "1.0.0", Channel: Stable})
		testenv.Eventually(t, 30*time.Second, answers(0, http.StatusOK, "1.0.0"))

		second := a.publish(PublishRequest{BuildID: a.firmwareFor("demo-cam", "1.1.0"), Version: "1.1.0", Channel: Stable,
			Rollout: []device.RolloutStage{{Percent: 20, DwellSeconds: 3600}, {Percent: 100}}})
		testenv.Eventually(t, 30*time.Second, answers(10, http.StatusOK, "1.1.0"))
		testenv.Eventually(t, 30*time.Second, answers(50, http.StatusOK, "1.0.0"))

		if _, err := a.svc.ChangeRollout(ctx, admin, second.ID, RolloutAbort, "crashes on boot"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, answers(10, http.StatusOK, "1.0.0"))

		if _, err := a.svc.Yank(ctx, admin, first.ID, "bricks cameras"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, answers(50, http.StatusNoContent, ""))
		if code, _ := askB(10); code != http.StatusNoContent {
			t.Errorf("with 1.0.0 yanked and 1.1.0's rollout aborted, replica B answers %d", code)
		}
		if n := int(counterValue(b.m.rebuilds)); n != 1 {
			t.Errorf("replica B rebuilt its index %d times; want once, at start", n)
		}
		if n := counterValue(b.m.updates); n == 0 {
			t.Error("replica B followed no event")
		}
	})
}

func TestAReplicaRebuildsWholeWhatItCannotFollow(t *testing.T) {
	tests := []struct {
		name  string
		after func(t *testing.T, a *env) // changes the database after a publication on replica A
	}{
		{"an event of a kind it does not know", func(t *testing.T, a *env) {
			a.appendEvent(t, 0, "demo-cam", "recalled")
		}},
		{"a gap in the event numbers", func(t *testing.T, a *env) {
			a.appendEvent(t, 2, "demo-cam", "published")
		}},
		{"an index event that names no product", func(t *testing.T, a *env) {
			a.appendEvent(t, 0, "", "published")
		}},
		{"more events than it applies one by one", func(t *testing.T, a *env) {
			for range followMax + 1 {
				a.appendEvent(t, 0, "demo-cam", "maintainer_granted")
			}
		}},
		{"a bumped generation (a device id moved to another product)", func(t *testing.T, a *env) {
			if _, err := a.d.ExecContext(context.Background(), `UPDATE registry_generation SET generation = generation + 1 WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
		}},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		a := newEnv(t, d, envOptions{})
		b, err := New(context.Background(), Options{DB: d, Blobs: a.blobs, TUF: a.repo, Catalog: a.cat, Builds: a.farm, Now: a.clock.now, ReplicaID: "replica-b"})
		if err != nil {
			t.Fatal(err)
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a.publish(PublishRequest{BuildID: a.firmwareFor("demo-cam", fmt.Sprint(i)), Version: fmt.Sprintf("1.%d.0", i), Channel: Stable})
				tt.after(t, a)
				before := counterValue(b.m.rebuilds)
				if err := b.Poll(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := counterValue(b.m.rebuilds); got != before+1 {
					t.Errorf("replica B rebuilt %v times; want once", got-before)
				}
				pos, err := b.position(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if ix := b.index.Load(); ix.seq != pos.seq || ix.gen != pos.gen {
					t.Errorf("replica B's index is at seq %d generation %d, the database at %d %d", ix.seq, ix.gen, pos.seq, pos.gen)
				}
				if o, ok := b.index.Load().lookup("usb:1d6b:0104", "0.9.0", Stable, 0, time.Now); !ok || o.version != fmt.Sprintf("1.%d.0", i) {
					t.Errorf("replica B offers %+v; want the new release", o)
				}
			})
		}
	})
}

// appendEvent writes an event to the registry's log as another replica
// (or a newer version of the code) might: gap extra numbers after the
// last one.
func (e *env) appendEvent(t *testing.T, gap int64, product, kind string) {
	t.Helper()
	err := e.d.Tx(context.Background(), func(tx *sql.Tx) error {
		seq, err := e.d.NextSeq(context.Background(), tx, "registry_events")
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(context.Background(), e.d.Q(`INSERT INTO registry_events (id, seq, product, release_id, at, actor, kind, detail) VALUES (?, ?, ?, '', 0, 'test', ?, '')`),
			fmt.Sprintf("rev_test_%d", seq+gap), seq+gap, product, kind)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestALayeredMapAnswersAsAPlainMapThroughAnyChanges(t *testing.T) {
	for _, size := range []int{0, 10, 100_000} {
		t.Run(fmt.Sprintf("over a base of %d keys", size), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(size), 7))
			want := map[string]int{}
			m := layered[string, int]{base: map[string]int{}}
			for i := range size {
				k := fmt.Sprint("k", i)
				want[k], m.base[k] = i, i
			}
			old, oldWant := m, maps.Clone(want)
			for range 300 {
				changes := map[string]slot[int]{}
				for range 1 + rng.IntN(40) {
					k := fmt.Sprint("k", rng.IntN(size+50))
					if rng.IntN(3) == 0 {
						changes[k] = slot[int]{del: true}
						delete(want, k)
					} else {
						v := rng.Int()
						changes[k] = slot[int]{v: v}
						want[k] = v
					}
				}
				m = m.with(changes)
			}
			got := map[string]int{}
			m.all(func(k string, v int) { got[k] = v })
			if !maps.Equal(got, want) || m.len() != len(want) {
				t.Fatalf("the layered map holds %d keys (len %d), want %d", len(got), m.len(), len(want))
			}
			for k, v := range want {
				if g, ok := m.get(k); !ok || g != v {
					t.Fatalf("get(%s) = %d %v, want %d", k, g, ok, v)
				}
			}
			if _, ok := m.get("absent"); ok {
				t.Fatal("get of an absent key found it")
			}
			for k, v := range oldWant {
				if g, ok := old.get(k); !ok || g != v {
					t.Fatalf("a change reached the map it was made from: get(%s) = %d %v, want %d", k, g, ok, v)
				}
			}
		})
	}
}
