package registry

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

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
				Release: Release{ID: fmt.Sprintf("rel_%d_%d", p, v), Product: id, Version: ver, Channel: ch, Community: true,
					Notes:     "release notes",
					Artifacts: []Artifact{{Name: "fw.bin", Kind: "firmware", Size: 1 << 20, Digest: "sha256:" + fmt.Sprintf("%064x", p*perProduct+v), Target: id + "/" + ver + "/fw.bin"}}},
				DeviceIDs: []string{"usb:" + strconv.Itoa(p)},
			}
			if rollouts && v == perProduct-2 {
				r.Rollout = &Rollout{SignedRollout: device.SignedRollout{State: device.RolloutActive, Start: start,
					Stages: []device.RolloutStage{{Percent: 1, DwellSeconds: 1800}, {Percent: 10, DwellSeconds: 1800}, {Percent: 50, DwellSeconds: 86400}, {Percent: 100}}}}
			}
			rels = append(rels, r)
		}
	}
	ix, err := buildIndex(1, rels)
	if err != nil {
		panic(err)
	}
	return ix
}

func BenchmarkIndexLookup(b *testing.B) {
	ix := benchIndex()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if ix.lookup("usb:"+strconv.Itoa(i%100_000), "1.2.0", Stable, i%100, time.Now()) == nil {
			b.Fatal("no offer")
		}
	}
}

// BenchmarkUpdateCheck runs the whole HTTP handler, middleware included,
// against the 1M-release index.
func BenchmarkUpdateCheck(b *testing.B) { benchUpdateCheck(b, benchIndex()) }

// BenchmarkUpdateCheckWithRollouts is BenchmarkUpdateCheck with a phased
// rollout at 50 % on every product's newest stable release and devices
// sending their buckets: half are offered it, half the release before.
func BenchmarkUpdateCheckWithRollouts(b *testing.B) { benchUpdateCheck(b, benchRolloutIndex()) }

func benchUpdateCheck(b *testing.B, ix *index) {
	s := &Service{updateSem: make(chan struct{}, 1024), now: time.Now}
	s.m = newMetrics()
	s.index.Store(ix)
	api := httpapi.New(httpapi.Options{})
	s.Register(api.V1(), api.Root())
	h := api.Engine()
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "/v1/devices/updates?id=usb:"+strconv.Itoa(i*97)+"&version=1.2.0&channel=stable&bucket="+strconv.Itoa(i%100), nil)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, reqs[i%len(reqs)])
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
	}
}
