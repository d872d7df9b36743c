package fwupd_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// demoInstanceID is what fwupd's fake test device gets as an extra
// instance id through the tests' quirk; the product declares it.
const demoInstanceID = `AFTERLIFE\DEMO-CAM`

var vendor = principal.Principal{Name: "acme-ci", Role: principal.Vendor, Org: "acme"}

// releases stands in for the registry's release list: the tests decide
// which releases exist and in what state.
type releases struct {
	mu   sync.Mutex
	list map[string][]registry.Release
}

func (r *releases) List(_ context.Context, product string) ([]registry.Release, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]registry.Release(nil), r.list[product]...), nil
}

func (r *releases) add(rel registry.Release) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list[rel.Product] = append(r.list[rel.Product], rel)
}

// clock is the remote's injected time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	remote   *fwupd.Remote
	signer   *fwupd.Signer
	blobs    blob.Store
	releases *releases
	clock    *clock
	url      string
	dir      string
	stop     func() // the origin's server goes away
}

const interval = time.Minute

func newEnv(t *testing.T, d *db.DB) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{dir: t.TempDir(), releases: &releases{list: map[string][]registry.Release{}}, clock: &clock{t: time.Now().Truncate(time.Second)}}
	var err error
	if e.blobs, err = fsstore.New(filepath.Join(e.dir, "blobs")); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(ctx, d, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, reg := range []catalog.Registration{
		{ID: "demo-cam", Vendor: "acme", Model: "AfterLife Cam 1", FwupdIDs: []string{demoInstanceID}, RiskNotes: "The vendor app stops working."},
		{ID: "no-fwupd", Vendor: "acme", Model: "Plain Box"},
	} {
		if _, err := cat.Register(ctx, vendor, reg); err != nil {
			t.Fatal(err)
		}
	}
	if e.signer, err = fwupd.LoadSigner(filepath.Join(e.dir, "keys"), "test", e.clock.Now(), true, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	e.url, e.stop = srv.URL, srv.Close
	e.remote, err = fwupd.New(ctx, fwupd.Options{DB: d, Blobs: e.blobs, Products: cat, Releases: e.releases, Signer: e.signer,
		PublicURL: srv.URL, MinInterval: interval, Now: e.clock.Now, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{})
	e.remote.Register(api.Root())
	h = api.Engine()
	return e
}

// release stores firmware bytes and adds a release of product with them.
func (e *env) release(t *testing.T, id, product, version, channel string, firmware []byte, change func(*registry.Release)) registry.Release {
	t.Helper()
	info, err := e.blobs.Put(context.Background(), bytes.NewReader(firmware), "")
	if err != nil {
		t.Fatal(err)
	}
	r := registry.Release{ID: id, Product: product, Version: version, Channel: channel, Community: true,
		Notes: "Local status API.\n\nNo vendor cloud.", VerdictURL: e.url + "/builds/b1", Agreeing: 2, Total: 2,
		PublishedAt: e.clock.Now(),
		Artifacts:   []registry.Artifact{{Name: "fw.bin", Path: "out/fw.bin", Kind: "firmware", Digest: string(info.Digest), Size: info.Size, Target: product + "/fw.bin"}}}
	if change != nil {
		change(&r)
	}
	e.releases.add(r)
	return r
}

func (e *env) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

func unzstd(t *testing.T, b []byte) []byte {
	t.Helper()
	d, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := d.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
