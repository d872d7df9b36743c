package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/registry/handover"
)

// The access test: every route the server mounts declares who may call it
// (httpapi.Op: Public, Roles, Scope, Sealed), and a real `afterlife serve`
// on each backend is called on every route as every role, in the
// resources' owner org and in another, plus anonymous and a bad token,
// with a sealed and a released deposit, a build and a release present.
// Each answer is compared with the declaration, and no body given to
// anyone but the depositing vendor and admins holds a sealed deposit's
// content or file names.
//
// A new route needs only its declaration. A path parameter the test does
// not know yet is named in the failure: add it to accessFixture.param. A
// route that checks ownership after reading its body needs a body that
// gets that far: add it to accessFixture.body.

// accessOwner is the vendor org that owns the product, the deposits, the
// build's product and the release; accessOther is another vendor org.
const (
	accessOwner = "acme"
	accessOther = "other"
	accessNamed = "alice" // the trustee the sealed deposit's quorum names
)

// principal is one caller of the matrix.
type caller struct {
	name   string
	role   principal.Role // "" anonymous
	org    string
	token  string // its secret; the token's name is key
	key    string // short name: "vendor-acme", "alice", …
	named  bool   // named by the sealed deposit's quorum
	bad    bool   // presents a token the server never issued
	csrf   string
	cookie string
}

func accessPrincipals() []*caller {
	ps := []*caller{{name: "anonymous", key: "anonymous"}, {name: "a bad token", key: "bad", bad: true}}
	for _, r := range principal.Roles {
		for _, org := range []string{accessOwner, accessOther} {
			rel := "the owner's org"
			if org == accessOther {
				rel = "another org"
			}
			ps = append(ps, &caller{name: fmt.Sprintf("%s of %s", r, rel), role: r, org: org, key: fmt.Sprintf("%s-%s", r, org)})
		}
	}
	return append(ps, &caller{name: "the trustee the sealed deposit names", role: principal.Trustee, org: accessOther, key: accessNamed, named: true})
}

// owner reports whether p may see the sealed deposit in full.
func (p *caller) owner() bool {
	return p.role == principal.Admin || (p.role == principal.Vendor && p.org == accessOwner)
}

// variant is one concrete request of a route.
type variant struct {
	path   string
	sealed bool // names the sealed deposit
	// relation: whether p is related to the resource as the route's
	// Scope asks (own org, granted, own builder, lease, named trustee).
	related func(p *caller) bool
}

type accessFixture struct {
	t        *testing.T
	url      string
	admin    string
	ps       []*caller
	byKey    map[string]*caller
	product  string
	sealed   string
	released string
	// files and content of the deposits
	sealedFile, releasedFile, secret string
	build, job, release, spare       string
	artifact, blobDigest             string
	fwupdCab                         string // the stable release's fwupd cabinet
	spareToken                       string
	spareBuilders                    []string

	// withheld is the content of the released deposit's build-only and
	// private files: no route may show it to anyone but the owner.
	withheld string
}

// TestEveryRouteAnswersOnlyWhomItDeclares is the route × role × org test,
// on both backends; its sealed-deposit subtests are the regression test
// of the attack in which a maintainer, builder or trustee token of a
// vendor's org read the vendor's sealed deposit.
func TestEveryRouteAnswersOnlyWhomItDeclares(t *testing.T) {
	decls := declaredRoutes(t)
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			began := time.Now()
			opts.Args = append(opts.Args, "--allow-local-repos", "--local-builders", "2", "--fwupd-every", "1s")
			srv := testenv.Serve(t, opts)
			f := seedAccess(t, srv)
			t.Logf("server and fixture ready after %s", time.Since(began).Round(time.Millisecond))
			t.Run("sealed deposit: tokens of the vendor's org that are not the vendor get 404", func(t *testing.T) {
				for _, key := range []string{"maintainer-acme", "builder-acme", "trustee-acme", "vendor-other", "anonymous"} {
					p := f.byKey[key]
					for _, path := range []string{
						"/v1/deposits/" + f.sealed,
						"/v1/deposits/" + f.sealed + "/events",
						"/v1/deposits/" + f.sealed + "/files/" + f.sealedFile,
						"/v1/deposits/" + f.sealed + "/receipt",
						"/v1/deposits?product=" + f.product + "&state=sealed",
					} {
						code, body := f.do(p, http.MethodGet, path, nil, "")
						if strings.Contains(body, f.secret) || strings.Contains(body, f.sealedFile) || (code != 404 && code != 403 && code != 401 && strings.Contains(body, f.sealed)) {
							t.Errorf("%s GET %s: %d and the sealed deposit shows:\n%s", p.name, path, code, shorten(body, 400))
						}
						if !strings.Contains(path, "?") && code != 404 && code != 403 && code != 401 {
							t.Errorf("%s GET %s: %d, want 404", p.name, path, code)
						}
					}
				}
			})
			t.Run("sealed deposit: the named trustee sees its approval state, never its manifest or files", func(t *testing.T) {
				p := f.byKey[accessNamed]
				code, body := f.do(p, http.MethodGet, "/v1/deposits/"+f.sealed, nil, "")
				var d struct {
					ManifestDigest string   `json:"manifest_digest"`
					Approvals      []string `json:"approvals"`
					Manifest       []any    `json:"manifest"`
				}
				json.Unmarshal([]byte(body), &d)
				if code != 200 || d.ManifestDigest == "" || d.Approvals == nil || d.Manifest != nil || strings.Contains(body, f.sealedFile) {
					t.Errorf("the named trustee reads %d %s; want the approval state without a manifest", code, shorten(body, 400))
				}
				for _, path := range []string{"/v1/deposits/" + f.sealed + "/events", "/v1/deposits/" + f.sealed + "/files/" + f.sealedFile} {
					if code, body := f.do(p, http.MethodGet, path, nil, ""); code != 404 || strings.Contains(body, f.secret) {
						t.Errorf("the named trustee GET %s: %d, want 404", path, code)
					}
				}
			})
			t.Run("sealed deposit: the vendor and admins read it", func(t *testing.T) {
				for _, key := range []string{"vendor-acme", "admin-other"} {
					code, body := f.do(f.byKey[key], http.MethodGet, "/v1/deposits/"+f.sealed+"/files/"+f.sealedFile, nil, "")
					if code != 200 || body != f.secret {
						t.Errorf("%s reads the sealed file: %d %q", key, code, shorten(body, 100))
					}
				}
			})
			t.Run("public pages, feed, search and overview show only the released deposit", func(t *testing.T) {
				for _, path := range []string{"/products/" + f.product, "/v1/products/" + f.product + "/overview", "/feeds/releases.atom", "/", "/search?q=acme", "/v1/search?q=acme", "/v1/deposits"} {
					for _, key := range []string{"anonymous", "maintainer-acme", "vendor-acme"} {
						code, body := f.do(f.byKey[key], http.MethodGet, path, nil, "")
						if code != 200 || strings.Contains(body, f.sealed) && !(key == "vendor-acme" && path == "/v1/deposits") {
							t.Errorf("%s GET %s: %d, names the sealed deposit %s: %v", key, path, code, f.sealed, strings.Contains(body, f.sealed))
						}
						if strings.Contains(body, "alice") && path != "/v1/deposits" {
							t.Errorf("%s GET %s names the sealed deposit's trustees", key, path)
						}
					}
				}
				if _, body := f.do(f.byKey["anonymous"], http.MethodGet, "/products/"+f.product, nil, ""); !strings.Contains(body, f.released) {
					t.Errorf("the product page does not show the released deposit %s", f.released)
				}
			})
			t.Run("a wrong method answers 405 with an Allow header, on the API and on pages", func(t *testing.T) {
				for _, tc := range []struct{ method, path, allow string }{
					{"DELETE", "/v1/whoami", "GET"},
					{"POST", "/v1/deposits/" + f.released + "/events", "GET"},
					{"PUT", "/login", "GET, POST"},
					{"GET", "/logout", "POST"},
					{"POST", "/tuf/timestamp.json", "GET, HEAD"},
				} {
					req, _ := http.NewRequest(tc.method, f.url+tc.path, nil)
					resp, err := noRedirects.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					allow := strings.Split(resp.Header.Get("Allow"), ", ")
					slices.Sort(allow)
					if resp.StatusCode != http.StatusMethodNotAllowed || strings.Join(allow, ", ") != tc.allow {
						t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
					}
				}
			})
			t.Run("every route answers as declared", func(t *testing.T) {
				f.matrix(t, decls)
			})
		})
	}
}

// declaredRoutes wires the server in process, as serve does, and returns
// its declarations after checking that every route gin serves has one.
func declaredRoutes(t *testing.T) []httpapi.Declaration {
	sys := wiredSystem(t)
	decls := sys.api.Declarations()
	find := func(method, path string) *httpapi.Declaration {
		for i := range decls {
			if decls[i].Method == method && decls[i].Path == path {
				return &decls[i]
			}
		}
		return nil
	}
	served := sys.api.Engine().Routes()
	for _, r := range served {
		d := find(r.Method, r.Path)
		switch {
		case d == nil:
			t.Errorf("%s %s is served but declares nobody: register it through httpapi.Router with an Op, or declare it (httpapi.API.Declare)", r.Method, r.Path)
		case !d.Op.Declared():
			t.Errorf("%s %s does not say who may call it: set Public or Roles in its httpapi.Op", r.Method, r.Path)
		}
	}
	for _, d := range decls {
		if !slices.ContainsFunc(served, func(r gin.RouteInfo) bool { return r.Method == d.Method && r.Path == d.Path }) {
			t.Errorf("%s %s is declared but not served", d.Method, d.Path)
		}
	}
	if len(served) < 60 {
		t.Fatalf("only %d routes served; the wiring looks incomplete", len(served))
	}
	return decls
}

// seedAccess makes the fixture on a running server: two vendor orgs, a
// token per role and org, a product, a released and a sealed deposit, a
// reproducible build of a one-line recipe by the two local builders, two
// releases of it, and registered builders.
func seedAccess(t *testing.T, srv *testenv.Server) *accessFixture {
	f := &accessFixture{t: t, url: srv.URL, admin: srv.Token, ps: accessPrincipals(), byKey: map[string]*caller{}, product: "acme-cam"}
	must := func(code int, want ...int) {
		t.Helper()
		if !slices.Contains(want, code) {
			t.Fatalf("fixture: status %d, want %v\n%s", code, want, srv.LogTail())
		}
	}
	adm := func(method, path string, body, out any) int {
		t.Helper()
		return apiJSON(t, method, srv.URL+path, srv.Token, body, out)
	}
	for _, org := range []string{accessOwner, accessOther} {
		must(adm("POST", "/v1/admin/orgs", map[string]string{"id": org, "kind": "vendor"}, nil), 201)
		// Builders count only for the operator an admin binds them to.
		must(adm("POST", "/v1/admin/orgs", map[string]string{"id": org + "-lab", "kind": "operator"}, nil), 201)
	}
	for _, p := range f.ps {
		f.byKey[p.key] = p
		if p.bad {
			p.token = "afl_" + strings.Repeat("0", 52)
			continue
		}
		if p.role == "" {
			continue
		}
		var out struct {
			Token string `json:"token"`
		}
		spec := map[string]string{"name": p.key, "role": string(p.role), "org": p.org}
		if p.role == principal.Builder {
			spec["operator"] = p.org + "-lab"
		}
		must(adm("POST", "/v1/admin/tokens", spec, &out), 201)
		p.token = out.Token
	}
	for _, name := range []string{accessNamed, "bob"} {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		must(adm("POST", "/v1/trustees", map[string]string{"name": name, "public_key": receipt.FormatPublicKey(pub)}, nil), 201)
	}
	vendor := f.byKey["vendor-acme"].token
	must(apiJSON(t, "POST", srv.URL+"/v1/products", vendor, map[string]any{"id": f.product, "vendor": accessOwner, "model": "Acme Cam", "device_ids": []string{"usb:acce:0001"}, "fwupd_ids": []string{`ACME\CAM`}}, nil), 201)

	f.releasedFile, f.sealedFile = "docs/readme.md", "keys/signing.key"
	f.secret = "-----BEGIN SEALED SIGNING KEY----- " + hex.EncodeToString(randomBytes(16))
	f.withheld = "WITHHELD BUILD-ONLY OR PRIVATE " + hex.EncodeToString(randomBytes(16))
	// The released deposit carries the vendor's handover statement and a
	// bridge image, so the product's public handover routes have them to
	// serve.
	f.released = deposit(t, srv.URL, vendor, f.product, "immediate", map[string]string{f.releasedFile: "# Acme Cam\nreleased notes\n",
		"drivers/blob.bin": f.withheld + " driver", "keys/released.key": f.withheld + " key",
		wire.HandoverFile: accessHandover(t, srv.URL, f.product, "usb:acce:0001"), wire.BridgeFile: "acme cam bridge image\n"}, "released")
	f.sealed = deposit(t, srv.URL, vendor, f.product, "quorum=2/2:alice,bob", map[string]string{f.sealedFile: f.secret, "src/main.c": "int main(void) { return 0; }\n"}, "sealed")

	var spare struct {
		Info struct {
			ID string `json:"id"`
		} `json:"info"`
	}
	must(adm("POST", "/v1/admin/tokens", map[string]string{"name": "spare", "role": "maintainer"}, &spare), 201)
	f.spareToken = spare.Info.ID

	// A one-line recipe, built reproducibly by the two local builders.
	repo := filepath.Join(t.TempDir(), "acme-fw.git")
	src := fstest.MapFS{"afterlife.yaml": {Data: []byte(`name: acme-fw
version: 1.0.0
products: [acme-cam]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - echo acme firmware > /out/fw.bin
outputs:
  - {path: fw.bin, kind: firmware}
limits: {timeout: 1m, memory: 256MiB}
`)}}
	if _, err := recipes.CommitTree(context.Background(), repo, src, "acme firmware", time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	maint := f.byKey["maintainer-acme"].token
	var sub struct {
		BuildID string `json:"build_id"`
	}
	must(apiJSON(t, "POST", srv.URL+"/v1/recipes", maint, map[string]string{"repo": "file://" + repo, "ref": "HEAD"}, &sub), 200, 201, 202)
	f.build = sub.BuildID
	testenv.Eventually(t, 4*time.Minute, func() error {
		var b struct {
			State string `json:"state"`
			Jobs  []struct {
				ID string `json:"id"`
			} `json:"jobs"`
		}
		adm("GET", "/v1/builds/"+f.build, nil, &b)
		switch {
		case b.State == "reproducible" && len(b.Jobs) > 0:
			f.job = b.Jobs[0].ID
			return nil
		case b.State == "unreproducible" || b.State == "failed":
			return testenv.GiveUp(fmt.Errorf("the fixture build %s ends %q\n%s", f.build, b.State, srv.LogTail()))
		}
		return fmt.Errorf("the fixture build %s is %q\n%s", f.build, b.State, srv.LogTail())
	})
	must(adm("POST", "/v1/products/"+f.product+"/maintainers", map[string]string{"org": accessOwner}, nil), 201)
	var rel struct {
		ID        string `json:"id"`
		Artifacts []struct {
			Name   string `json:"name"`
			Digest string `json:"digest"`
		} `json:"artifacts"`
	}
	must(apiJSON(t, "POST", srv.URL+"/v1/releases", maint, map[string]string{"build_id": f.build, "product": f.product, "version": "1.0.0", "channel": "stable"}, &rel), 201)
	f.release, f.artifact, f.blobDigest = rel.ID, rel.Artifacts[0].Name, rel.Artifacts[0].Digest
	must(apiJSON(t, "POST", srv.URL+"/v1/releases", maint, map[string]string{"build_id": f.build, "product": f.product, "version": "1.0.1", "channel": "testing"}, &rel), 201)
	f.spare = rel.ID
	// The fwupd remote exports the stable release within a second or so.
	cabName := regexp.MustCompile(`<location>[^<]*/fwupd/cabs/([^<]+)</location>`)
	testenv.Eventually(t, time.Minute, func() error {
		if m := cabName.FindSubmatch(unzstdBody(t, srv.URL+"/fwupd/firmware.xml.zst")); m != nil {
			f.fwupdCab = string(m[1])
			return nil
		}
		return fmt.Errorf("the fwupd metadata lists no cabinet yet")
	})

	// Builders register after the build, so none of them takes its jobs.
	register := func(token, name string) string {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		var b struct {
			ID string `json:"id"`
		}
		must(apiJSON(t, "POST", srv.URL+"/v1/builders", token, builder.Registration{Name: name, Operator: name, PublicKey: keys.PublicKeyString(pub), Arch: "none"}, &b), 200)
		return b.ID
	}
	for _, key := range []string{"builder-acme", "builder-other"} {
		register(f.byKey[key].token, key)
	}
	for i := range 2 {
		var out struct {
			Token string `json:"token"`
		}
		must(adm("POST", "/v1/admin/tokens", map[string]string{"name": fmt.Sprint("spare-builder-", i), "role": "builder", "operator": accessOwner + "-lab"}, &out), 201)
		f.spareBuilders = append(f.spareBuilders, register(out.Token, fmt.Sprint("spare-builder-", i)))
	}

	// Each principal's page session and CSRF token.
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	for _, p := range f.ps {
		req, _ := http.NewRequest("GET", srv.URL+"/login", nil)
		if p.token != "" && !p.bad {
			req.AddCookie(&http.Cookie{Name: "afterlife_session", Value: p.token})
			p.cookie = "afterlife_session=" + p.token
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "afterlife_nonce" {
				p.cookie = "afterlife_nonce=" + c.Value
			}
		}
		if m := csrf.FindSubmatch(body); m != nil {
			p.csrf = string(m[1])
		}
		if p.csrf == "" && !p.bad {
			t.Fatalf("no CSRF token for %s", p.name)
		}
		if p.bad {
			p.cookie = "afterlife_session=" + p.token
		}
	}
	// The transparency log has logged the fixture's events and the local
	// builders have witnessed it, so its routes have entries and a
	// checkpoint to answer with.
	testenv.Eventually(t, time.Minute, func() error {
		var info struct {
			Witnessed int64 `json:"witnessed_size"`
		}
		if code := apiJSON(t, "GET", srv.URL+"/v1/log", "", nil, &info); code != 200 || info.Witnessed == 0 {
			return fmt.Errorf("no witnessed checkpoint yet (%d)", code)
		}
		return nil
	})
	return f
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// deposit makes a deposit through the API and waits for its state.
func deposit(t *testing.T, url, token, product, policy string, files map[string]string, want string) string {
	t.Helper()
	var manifest []map[string]any
	for path, content := range files {
		sum := sha256.Sum256([]byte(content))
		kind := "source"
		if strings.HasPrefix(path, "keys/") {
			kind = "keys"
		} else if strings.HasPrefix(path, "docs/") {
			kind = "spec"
		}
		manifest = append(manifest, map[string]any{"path": path, "size": len(content), "sha256": hex.EncodeToString(sum[:]), "kind": kind})
	}
	var d struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if code := apiJSON(t, "POST", url+"/v1/deposits", token, map[string]any{"product": product, "policy": policy, "manifest": manifest, "rights": []map[string]string{
		{"pattern": "**", "rights": "public"}, {"pattern": "drivers/**", "rights": "build-only"}, {"pattern": "keys/**", "rights": "private"}}}, &d); code != 201 {
		t.Fatalf("create deposit: %d", code)
	}
	for path, content := range files {
		req, _ := http.NewRequest("PUT", url+"/v1/deposits/"+d.ID+"/files/"+path, strings.NewReader(content))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("upload %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	if code := apiJSON(t, "POST", url+"/v1/deposits/"+d.ID+"/commit", token, nil, nil); code != 200 {
		t.Fatalf("commit deposit: %d", code)
	}
	if code := apiJSON(t, "GET", url+"/v1/deposits/"+d.ID, token, nil, &d); code != 200 || d.State != want {
		t.Fatalf("deposit %s is %d %q, want %q", d.ID, code, d.State, want)
	}
	return d.ID
}

// do sends one request as p and returns the status and body.
func (f *accessFixture) do(p *caller, method, path string, body []byte, contentType string) (int, string) {
	req, err := http.NewRequest(method, f.url+path, bytes.NewReader(body))
	if err != nil {
		f.t.Errorf("%s %s: %v", method, path, err)
		return 0, ""
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	if p.cookie != "" {
		req.Header.Set("Cookie", p.cookie)
	}
	if p.csrf != "" {
		req.Header.Set("X-CSRF-Token", p.csrf)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		f.t.Errorf("%s %s as %s: %v", method, path, p.name, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
		return resp.StatusCode, "Location: " + resp.Header.Get("Location") + "\n" + string(b)
	}
	return resp.StatusCode, string(b)
}

var noRedirects = &http.Client{
	Timeout:       time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// param fills one path parameter of route pattern for p.
func (f *accessFixture) param(pattern, name string, p *caller) (string, bool) {
	switch {
	case name == "path":
		return "{file}", true
	case name == "org":
		return accessOwner, true
	case name == "job":
		return f.job, true
	case name == "name" && strings.Contains(pattern, "/artifacts/"):
		return f.artifact, true
	case name == "digest":
		return f.blobDigest, true
	case name == "filepath":
		return "/site.css", true
	case name == "name" && strings.HasPrefix(pattern, "/tuf/"):
		return "/timestamp.json", true
	case name == "tile":
		return "/0/000.p/1", true
	case name == "index":
		return "0", true
	case name == "id" && strings.HasPrefix(pattern, "/v1/log/"):
		return f.product, true
	case name == "name" && strings.HasPrefix(pattern, "/fwupd/cabs/"):
		return f.fwupdCab, true
	case name == "n" && strings.HasPrefix(pattern, "/fwupd/generations/"):
		return "1", true
	case name == "file" && strings.HasPrefix(pattern, "/fwupd/generations/"):
		return "firmware.xml.zst.jcat", true
	case name != "id":
		return "", false
	}
	switch {
	case strings.Contains(pattern, "/deposits/:id"), strings.HasPrefix(pattern, "/admin/approvals/"):
		return "{deposit}", true
	case strings.HasSuffix(pattern, "/promote"), strings.HasSuffix(pattern, "/yank"):
		return f.spare, true
	case strings.Contains(pattern, "/releases/:id"):
		return f.release, true
	case strings.Contains(pattern, "/products/:id"):
		return f.product, true
	case strings.Contains(pattern, "/builds/:id"):
		return f.build, true
	case strings.Contains(pattern, "/jobs/:id"):
		return f.job, true
	case strings.Contains(pattern, "/builders/:id"):
		if p.key == "admin-other" {
			return f.spareBuilders[1], true
		}
		return f.spareBuilders[0], true
	case strings.Contains(pattern, "/tokens/:id"):
		return f.spareToken, true
	case strings.HasPrefix(pattern, "/v1/admin/orgs/"):
		return accessOwner, true
	}
	return "", false
}

var patternParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// variants are the concrete requests of one route for p: one per deposit
// (sealed and released) where the route names a deposit.
func (f *accessFixture) variants(d httpapi.Declaration, p *caller) ([]variant, error) {
	path, missing := d.Path, ""
	path = patternParam.ReplaceAllStringFunc(path, func(m string) string {
		v, ok := f.param(d.Path, m[1:], p)
		if !ok {
			missing = m
		}
		if m[0] == '*' {
			return strings.TrimPrefix(v, "/")
		}
		return v
	})
	if missing != "" {
		return nil, fmt.Errorf("%s %s: the access test does not know a value for %s: add one to accessFixture.param", d.Method, d.Path, missing)
	}
	owner := func(p *caller) bool { return p.role == principal.Admin || p.org == accessOwner }
	var related func(*caller) bool
	switch d.Op.Scope {
	case httpapi.AnyResource:
		related = func(*caller) bool { return true }
	case httpapi.OwnOrg, httpapi.Granted:
		related = owner // the product is granted to the owner's org
	case httpapi.OwnBuilder:
		related = func(p *caller) bool { return p.role == principal.Builder } // both registered
	case httpapi.LeaseHolder:
		related = func(*caller) bool { return false } // the fixture's job is done
	case httpapi.NamedTrustee:
		related = func(p *caller) bool { return p.named }
	default:
		return nil, fmt.Errorf("%s %s: scope %q is new to the access test", d.Method, d.Path, d.Op.Scope)
	}
	if !strings.Contains(path, "{deposit}") {
		return []variant{{path: path, related: related}}, nil
	}
	on := func(dep, file string) string {
		return strings.Replace(strings.Replace(path, "{deposit}", dep, 1), "{file}", file, 1)
	}
	releasedRelated := related
	if d.Op.Scope == httpapi.NamedTrustee {
		releasedRelated = func(*caller) bool { return false } // the released deposit names no trustee
	}
	return []variant{
		{path: on(f.released, f.releasedFile), related: releasedRelated},
		{path: on(f.sealed, f.sealedFile), sealed: true, related: related},
	}, nil
}

// body is what the matrix sends to a route: enough to get past parsing to
// the route's own checks, never enough to change what other cases read.
func (f *accessFixture) body(d httpapi.Declaration) ([]byte, string) {
	js := func(v any) ([]byte, string) {
		b, _ := json.Marshal(v)
		return b, "application/json"
	}
	badEntry := []map[string]any{{"path": "a", "size": 1, "sha256": "zz", "kind": "other"}}
	switch d.Method + " " + d.Path {
	case "POST /v1/deposits":
		return js(map[string]any{"product": f.product, "policy": "immediate", "manifest": badEntry})
	case "POST /vendor/deposits":
		return js(map[string]any{"product": f.product, "policy": map[string]string{"kind": "immediate"}, "manifest": badEntry})
	case "POST /v1/products":
		return js(map[string]any{"id": "acme-new", "vendor": accessOwner, "model": ""})
	case "POST /v1/products/:id/status":
		return js(map[string]string{"status": "sunset"})
	case "POST /v1/products/:id/edit":
		return js(map[string]string{"model": ""})
	case "POST /v1/products/:id/retire":
		return js(map[string]string{"reason": "access test"}) // refused: the product has releases and deposits
	case "POST /v1/products/:id/support":
		return js(map[string]string{"end_of_life": "tba"})
	case "POST /v1/releases":
		return js(map[string]string{"build_id": f.build, "product": f.product, "version": "1.0.0", "channel": "stable"})
	case "POST /v1/releases/:id/yank", "POST /v1/releases/:id/pull-back", "POST /v1/releases/:id/resume":
		return js(map[string]string{"reason": "access test"})
	case "POST /v1/deposits/:id/approvals":
		return js(map[string]string{"trustee": accessNamed, "signature": "AAAA"})
	case "POST /v1/jobs/next":
		return js(map[string]int{"wait_ms": 1})
	case "POST /v1/admin/keys/rotate":
		return js(map[string]string{"role": "none"})
	case "POST /v1/admin/root":
		return js(map[string]any{"root": map[string]any{}})
	case "POST /login":
		return []byte("token=" + f.byKey["vendor-acme"].token), "application/x-www-form-urlencoded"
	}
	switch {
	case d.Method == http.MethodPut:
		return []byte("x"), "application/octet-stream"
	case d.Method == http.MethodPost && d.Op.Page:
		return nil, "application/x-www-form-urlencoded"
	case d.Method == http.MethodPost:
		return []byte("{}"), "application/json"
	}
	return nil, ""
}

// declaredAllows is what the declaration says of p on variant v.
func declaredAllows(op httpapi.Op, v variant, p *caller) bool {
	if p.bad {
		return false
	}
	ok := op.Public || (p.role != "" && (p.role == principal.Admin || slices.Contains(op.Roles, p.role)))
	if op.Scope != httpapi.AnyResource && !v.related(p) {
		ok = false
	}
	if v.sealed && op.Sealed != nil {
		sees := p.role == principal.Admin || (slices.Contains(op.Sealed.Roles, p.role) && p.org == accessOwner) || (op.Sealed.NamedTrustee && p.named)
		ok = ok && sees
	}
	return ok
}

type accessCase struct {
	d    httpapi.Declaration
	v    variant
	p    *caller
	body []byte
	ct   string
}

func (f *accessFixture) matrix(t *testing.T, decls []httpapi.Declaration) {
	var cases []accessCase
	for _, d := range decls {
		for _, p := range f.ps {
			vs, err := f.variants(d, p)
			if err != nil {
				t.Error(err)
				break
			}
			body, ct := f.body(d)
			for _, v := range vs {
				cases = append(cases, accessCase{d: d, v: v, p: p, body: body, ct: ct})
			}
		}
	}
	began := time.Now()
	var wg sync.WaitGroup
	work := make(chan accessCase)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				f.check(t, c)
			}
		}()
	}
	for _, c := range cases {
		work <- c
	}
	close(work)
	wg.Wait()
	t.Logf("%d requests (%d routes × %d callers) in %s", len(cases), len(decls), len(f.ps), time.Since(began).Round(time.Millisecond))
}

func (f *accessFixture) check(t *testing.T, c accessCase) {
	code, body := f.do(c.p, c.d.Method, c.v.path, c.body, c.ct)
	what := fmt.Sprintf("%s %s as %s", c.d.Method, c.v.path, c.p.name)
	want := declaredAllows(c.d.Op, c.v, c.p)
	switch {
	case c.p.bad:
		if code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401 for a token the server never issued", what, code)
		}
	case want:
		if code >= 500 || code == 0 || slices.Contains([]int{401, 403, 404, 405}, code) {
			t.Errorf("%s: %d, but %s declares it allowed (%s)\n%s", what, code, c.d.Path, declared(c.d.Op), shorten(body, 300))
		}
	default:
		denied := code == 401 || code == 403 || code == 404 ||
			(c.d.Op.Scope == httpapi.LeaseHolder && code == http.StatusConflict) ||
			(c.d.Op.Page && c.p.role == "" && code == http.StatusSeeOther && strings.HasPrefix(body, "Location: /login?next="))
		if !denied {
			t.Errorf("%s: %d, but %s declares it denied (%s)\n%s", what, code, c.d.Path, declared(c.d.Op), shorten(body, 300))
		}
		if c.v.sealed && c.d.Op.Sealed != nil && code != 404 && code != 401 && code != 403 {
			t.Errorf("%s: %d on a sealed deposit, want 404", what, code)
		}
	}
	if !c.p.owner() && strings.Contains(body, f.withheld) {
		t.Errorf("%s: the body shows a released deposit's build-only or private content:\n%s", what, shorten(body, 300))
	}
	if !c.p.owner() && (strings.Contains(body, f.secret) || strings.Contains(body, f.sealedFile)) {
		t.Errorf("%s: the body shows the sealed deposit's content or file names:\n%s", what, shorten(body, 300))
	}
	if !c.p.owner() && !c.p.named && !strings.Contains(c.v.path, f.sealed) && strings.Contains(body, f.sealed) {
		t.Errorf("%s: the body names the sealed deposit %s", what, f.sealed)
	}
}

func declared(op httpapi.Op) string {
	s := strings.Join(op.Who(), ", ")
	if op.Scope != "" {
		s += "; scope " + string(op.Scope)
	}
	if op.Sealed != nil {
		s += "; sealed: " + strings.Join(httpapi.Op{Roles: op.Sealed.Roles}.Who(), ", ")
		if op.Sealed.NamedTrustee {
			s += ", named trustees"
		}
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// accessHandover signs a handover statement of product's device id to the
// server's current root with a fresh vendor key.
func accessHandover(t *testing.T, url, product, deviceID string) string {
	t.Helper()
	root, err := handover.RootSubject(get(t, url+"/tuf/root.json"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := handover.Sign(context.Background(), ed25519Key(t), "", nil, handover.Statement{Root: root, Predicate: handover.Predicate{
		Product: product, DeviceIDs: []string{deviceID}, TakesEffect: handover.TakesEffectOnRelease, Scope: handover.ScopeUpdates,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(env)
}
