package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/tuf"
	"github.com/afterlife-oss/afterlife/registry/tufdb"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// farm stands in for the build farm's verdicts (another part, reached
// through the Builds interface).
type farm struct {
	mu     sync.Mutex
	builds map[string]Build
}

func (f *farm) ReproducibleOutputs(_ context.Context, id string) (Build, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.builds[id]
	if !ok {
		return Build{}, errs.E(errs.Conflict, "build %s has no reproducible verdict", id)
	}
	return b, nil
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t      *testing.T
	d      *db.DB
	svc    *Service
	srv    *httptest.Server
	blobs  blob.Store
	cat    *catalog.Catalog
	farm   *farm
	repo   *tuf.Repo
	clock  *clock
	admin  string // tokens
	maint  string
	lone   string // a maintainer of no org
	vendor string
}

type envOptions struct {
	blobs          blob.Store
	maxUpdateLoad  int
	reportsPerHour int
}

func newEnv(t *testing.T, d *db.DB, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, d: d, farm: &farm{builds: map[string]Build{}}, clock: &clock{t: time.Now().UTC()}}
	e.blobs = o.blobs
	if e.blobs == nil {
		fs, err := fsstore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e.blobs = fs
	}
	var err error
	if e.cat, err = catalog.New(ctx, d, e.clock.now); err != nil {
		t.Fatal(err)
	}
	store, err := tufdb.New(ctx, d, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if e.repo, err = tuf.Open(ctx, store, t.TempDir(), time.Now); err != nil {
		t.Fatal(err)
	}
	e.svc, err = New(ctx, Options{
		DB: d, Blobs: e.blobs, TUF: e.repo, Catalog: e.cat, Builds: e.farm, Now: e.clock.now,
		MaxUpdateLoad: o.maxUpdateLoad, ReportsPerHour: o.reportsPerHour, ReplicaID: "replica-a", BaseURL: "https://registry.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	authSvc, err := auth.New(ctx, d, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range [][2]string{{"acme", "vendor"}, {"openfw", "maintainers"}} {
		if err := authSvc.CreateOrg(ctx, org[0], "", org[1]); err != nil {
			t.Fatal(err)
		}
	}
	tok := func(name string, role principal.Role, org string) string {
		secret, _, err := authSvc.CreateToken(ctx, auth.TokenSpec{Name: name, Role: role, Org: org})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	e.admin = tok("root", principal.Admin, "")
	e.maint = tok("alice", principal.Maintainer, "openfw")
	e.lone = tok("bob", principal.Maintainer, "")
	e.vendor = tok("acme-ci", principal.Vendor, "acme")
	api := httpapi.New(httpapi.Options{Auth: authSvc})
	e.svc.Register(api.V1(), api.Root())
	e.srv = httptest.NewServer(api) // as serve mounts it: fast routes first
	t.Cleanup(e.srv.Close)
	if _, err := e.cat.Register(ctx, principal.Principal{Role: principal.Admin, Name: "root"}, catalog.Registration{
		ID: "demo-cam", Vendor: "acme", Model: "Demo Cam 200", DeviceIDs: []string{"usb:1d6b:0104", "dt:acme,cam200"},
		RiskNotes: "the vendor no longer tests this firmware",
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

// build stores files as a reproducible build's outputs for demo-cam and
// returns the build id.
func (e *env) build(files map[string][]byte) string {
	e.t.Helper()
	id := ids.New("bld")
	b := Build{ID: id, Products: []string{"demo-cam"}, Recipe: "cam-fw", RecipeVersion: "1", Agreeing: 2, Total: 2,
		VerdictURL: "/v1/builds/" + id + "/verdict"}
	for name, data := range files {
		info, err := e.blobs.Put(context.Background(), bytes.NewReader(data), "")
		if err != nil {
			e.t.Fatal(err)
		}
		kind := "other"
		switch {
		case strings.HasSuffix(name, ".bin"):
			kind = "firmware"
		case strings.HasSuffix(name, ".cdx.json"), strings.HasSuffix(name, ".spdx.json"):
			kind = KindSBOM
		}
		b.Outputs = append(b.Outputs, Output{Path: "out/" + name, Kind: kind, Digest: string(info.Digest), Size: info.Size})
	}
	e.farm.mu.Lock()
	e.farm.builds[id] = b
	e.farm.mu.Unlock()
	return id
}

// do sends a request with a token and JSON body; it returns the response
// with its body read.
func (e *env) do(method, path, token string, body any, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// publish publishes a build over the API as admin and returns the release.
func (e *env) publish(req PublishRequest) Release {
	e.t.Helper()
	req.Product = "demo-cam"
	resp, body := e.do("POST", "/v1/releases", e.admin, req)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("publish %s: %d %s", req.Version, resp.StatusCode, body)
	}
	var rel Release
	if err := json.Unmarshal(body, &rel); err != nil {
		e.t.Fatal(err)
	}
	return rel
}

func (e *env) firmware(version string) (string, []byte) {
	data := []byte("firmware image " + version + " " + strings.Repeat("x", 3000))
	return e.build(map[string][]byte{"fw.bin": data, "sbom.json": []byte(`{"v":"` + version + `"}`)}), data
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
