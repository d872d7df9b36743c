package web_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/web"
)

// client drives the demo site in-process, keeping cookies like a browser.
type client struct {
	t       *testing.T
	d       *demo
	cookies map[string]string
}

func newClient(t *testing.T, d *demo) *client {
	return &client{t: t, d: d, cookies: map[string]string{}}
}

func (c *client) do(method, target string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	c.t.Helper()
	req := httptest.NewRequest(method, target, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	w := httptest.NewRecorder()
	c.d.engine.ServeHTTP(w, req)
	for _, ck := range w.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return w
}

func (c *client) get(target string) *httptest.ResponseRecorder { return c.do("GET", target, nil, nil) }

func (c *client) postForm(target string, v url.Values) *httptest.ResponseRecorder {
	return c.do("POST", target, strings.NewReader(v.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page's forms, as a browser would send it.
func (c *client) csrf(page string) string {
	c.t.Helper()
	m := csrfRE.FindStringSubmatch(c.get(page).Body.String())
	if m == nil {
		c.t.Fatalf("no csrf field on %s", page)
	}
	return m[1]
}

func (c *client) login(token string) {
	c.t.Helper()
	w := c.postForm("/login", url.Values{"csrf": {c.csrf("/login")}, "token": {token}})
	if w.Code != http.StatusSeeOther {
		c.t.Fatalf("login: status %d: %s", w.Code, w.Body)
	}
}

func TestPagesRender(t *testing.T) {
	d := newDemo(t)
	tests := []struct {
		name, token, path string
		status            int
		want              []string
	}{
		{"the home page shows the counts", "", "/", 200, []string{"device updated by the community", "<strong>1</strong>", "reproducible builds", `href="/v1/feeds/releases.atom"`}},
		{"the search page finds a product by device id", "", "/search?q=usb:1d6b", 200, []string{`href="/products/acme-thermo-2"`, "Thermo 2"}},
		{"the search fragment has no layout", "", "/search?q=thermo&partial=1", 200, []string{`id="results-list"`}},
		{"a search without results says so calmly", "", "/search?q=nothing-like-this", 200, []string{"Nothing listed here matches", "the id printed on the device"}},
		{"a search says how many products match", "", "/search?q=thermo", 200, []string{`id="results-count"`, "product matches “thermo”", `href="/products/acme-thermo-2"`}},
		{"a search matching too many to count asks for another word", "", "/search?q=capped", 200, []string{"More than 1000 products match “capped”; the first 1 are shown. Add a word"}},
		{"the search box suggests a product this registry lists", "", "/", 200, []string{`placeholder="e.g. Acme Thermo 2"`}},
		{"the product page shows badge, digest and policy", "", "/products/acme-thermo-2", 200, []string{
			"3 of 3 independent builders agree", `href="/builds/bld_good"`, `href="/files/thermo-2.0.1.bin"`,
			"public since", `href="/deposits/dep_acme1"`, "still private", "Released when 2 of 3 trustees approve (1 so far)", "94% success",
			"Hold the reset button", "not supported", `type="application/atom+xml"`, `href="/v1/products/acme-thermo-2"`, "End of life announced"}},
		{"the product page keeps a yanked release on its channel, marked with its reason, and shows a rollout's stage", "", "/products/acme-thermo-2", 200, []string{
			`<span class="tag yanked">yanked</span>`, "<strong>Yanked:</strong> drains the battery within a day.", "stage 2 of 4: 10 % of devices"}},
		{"the product page tells fwupd owners how to opt in", "", "/products/acme-thermo-2", 200, []string{
			`href="/fwupd/afterlife.conf"`, `href="/fwupd/afterlife-ca.pem"`, "disabled until you enable it", "/etc/fwupd/remotes.d/",
			"/etc/pki/fwupd-metadata/", "<code>community</code>", "4b12940f-0816-5de9-a3e0-67d3215823f5"}},
		{"the product page says how a device gets updates: the updater with this registry and product, fwupd, and by hand", "", "/products/acme-thermo-2", 200, []string{
			"How your device gets updates", "afterlife-device init \\\n    --registry http://example.com \\\n    --product acme-thermo-2 \\\n    --id acme:thermo2 \\",
			"--trust-on-first-use", "--accept-community-firmware", "afterlife-device run", "With fwupd", "By hand", "sha256sum FILE",
			"afterlife mirror verify --root ROOT.json DIR", "version 2.0.1"}},
		{"an unknown product is a 404 page", "", "/products/nope", 404, []string{"Not Found", "product nope not found"}},
		{"a reproducible build shows its verdict and jobs", "", "/builds/bld_good", 200, []string{"Reproducible:", "3 of 3 independent builders agree", "the cold witness among them", "cold witness: empty caches", "op-gamma", "/files/attestation.json", "/builds/bld_good/jobs/job0/log"}},
		{"an unreproducible build shows the differences", "", "/builds/bld_bad", 200, []string{"Not reproducible", "Files that differ", strings.Repeat("2", 64), "diffoscope"}},
		{"the build status fragment has no layout", "", "/builds/bld_good?partial=1", 200, []string{"data-finished"}},
		{"an unknown build is a 404 page", "", "/builds/nope", 404, []string{"build nope not found"}},
		{"the login page has a labelled token field", "", "/login", 200, []string{`<label for="token">`}},
		{"the vendor area shows products and the check-in button", vendorToken, "/vendor", 200, []string{"Vendor: acme", "Thermo 2", "check in", "Register a product"}},
		{"the deposit form lists the vendor's products", vendorToken, "/vendor/deposits/new?product=acme-thermo-2", 200, []string{`value="acme-thermo-2" selected`, `<progress id="upload-progress"`}},
		{"the maintainer area has the recipe form", maintainerToken, "/maintainer", 200, []string{"Submit a recipe", `<label for="repo">`}},
		{"the admin area shows builders, scrubs, approvals and tokens", adminToken, "/admin", 200, []string{"op-alpha", "all blobs match", "dep_quorum", "acme-ci", "The TUF root is one key on this server"}},
		{"a trustee sees approvals but not tokens", trusteeToken, "/admin", 200, []string{"Approve release of dep_quorum"}},
		{"static files are served", "", "/static/site.css", 200, []string{"--fg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, d)
			if tt.token != "" {
				c.login(tt.token)
			}
			w := c.get(tt.path)
			if w.Code != tt.status {
				t.Fatalf("GET %s: status %d, want %d\n%s", tt.path, w.Code, tt.status, w.Body)
			}
			for _, s := range tt.want {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("GET %s: body lacks %q", tt.path, s)
				}
			}
		})
	}
}

func TestFragmentsAndPagesDiffer(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	if body := c.get("/search?q=thermo&partial=1").Body.String(); strings.Contains(body, "<html") {
		t.Errorf("the search fragment contains a whole page")
	}
	if body := c.get("/search?q=thermo").Body.String(); !strings.Contains(body, "<html") {
		t.Errorf("the search page lacks its layout")
	}
}

func TestHostileStringsAreEscaped(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	for _, p := range []string{"/products/evil", "/search?q=" + url.QueryEscape(hostile), "/search?q=script&partial=1", "/"} {
		body := c.get(p).Body.String()
		if strings.Contains(body, hostile) {
			t.Errorf("%s: hostile string rendered unescaped", p)
		}
		if p == "/products/evil" && !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("%s: escaped hostile string missing, so the check above proves nothing", p)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	d := newDemo(t)
	w := newClient(t, d).get("/")
	for h, want := range map[string]string{"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if got := w.Header().Get(h); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", h, got, want)
		}
	}
}

func TestAreasNeedTheRightRole(t *testing.T) {
	d := newDemo(t)
	tests := []struct {
		name, token, path string
		status            int
		location          string
	}{
		{"an anonymous visitor is sent to log in from the vendor area", "", "/vendor", 303, "/login?next=%2Fvendor"},
		{"an anonymous visitor is sent to log in from the admin area", "", "/admin", 303, "/login?next=%2Fadmin"},
		{"a maintainer may not enter the vendor area", maintainerToken, "/vendor", 403, ""},
		{"a vendor may not enter the maintainer area", vendorToken, "/maintainer", 403, ""},
		{"a vendor may not enter the admin area", vendorToken, "/admin", 403, ""},
		{"an admin may enter the vendor area", adminToken, "/maintainer", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, d)
			if tt.token != "" {
				c.login(tt.token)
			}
			w := c.get(tt.path)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.location != "" && w.Header().Get("Location") != tt.location {
				t.Errorf("Location = %q, want %q", w.Header().Get("Location"), tt.location)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	d := newDemo(t)
	t.Run("a good token sets an HttpOnly SameSite=Strict cookie and lands in the role's area", func(t *testing.T) {
		c := newClient(t, d)
		w := c.postForm("/login", url.Values{"csrf": {c.csrf("/login")}, "token": {vendorToken}})
		if w.Code != 303 || w.Header().Get("Location") != "/vendor" {
			t.Fatalf("status %d location %q", w.Code, w.Header().Get("Location"))
		}
		set := w.Header().Get("Set-Cookie")
		for _, want := range []string{"afterlife_session=", "HttpOnly", "SameSite=Strict"} {
			if !strings.Contains(set, want) {
				t.Errorf("Set-Cookie %q lacks %q", set, want)
			}
		}
	})
	t.Run("a bad token is refused with a message", func(t *testing.T) {
		c := newClient(t, d)
		w := c.postForm("/login", url.Values{"csrf": {c.csrf("/login")}, "token": {"wrong"}})
		if w.Code != 401 || !strings.Contains(w.Body.String(), "not accepted") {
			t.Fatalf("status %d", w.Code)
		}
		if _, ok := c.cookies["afterlife_session"]; ok {
			t.Errorf("a session cookie was set for a bad token")
		}
	})
	t.Run("a login without the CSRF field is refused", func(t *testing.T) {
		c := newClient(t, d)
		c.get("/login")
		w := c.postForm("/login", url.Values{"token": {vendorToken}})
		if w.Code != 403 {
			t.Fatalf("status %d, want 403", w.Code)
		}
	})
	t.Run("next never leaves the site", func(t *testing.T) {
		// Browsers drop tabs and newlines from URLs, read "\\" as "/" and
		// resolve dot segments: each hostile value below would land on
		// another host if it were sent as the Location.
		for _, tc := range []struct{ name, next, want string }{
			{"a network-path reference goes home", "//evil.example/x", "/vendor"},
			{"a backslash after the slash goes home", "/\\evil.example", "/vendor"},
			{"a tab between the slashes goes home", "/\t/evil.example", "/vendor"},
			{"a newline between the slashes goes home", "/\n/evil.example", "/vendor"},
			{"a carriage return between the slashes goes home", "/\r/evil.example", "/vendor"},
			{"two backslashes go home", "\\\\evil.example", "/vendor"},
			{"an absolute URL goes home", "https://evil.example/", "/vendor"},
			{"a scheme without slashes goes home", "http:evil.example", "/vendor"},
			{"a javascript URL goes home", "javascript:alert(1)", "/vendor"},
			{"dot segments are resolved on this site", "/./..//evil.example", "/evil.example"},
			{"a dot segment before //host goes home", "/.//evil.example", "/vendor"},
			{"a NUL goes home", "/vendor\x00", "/vendor"},
			{"a bidi override goes home", "/\u202e/evil.example", "/vendor"},
			{"a leading space goes home", " /vendor", "/vendor"},
			{"a backslash in the query goes home", "/search?q=\\evil", "/vendor"},
			{"an encoded slash that decodes to //host goes home", "/%2F/evil.example", "/vendor"},
			{"a page of this site is kept with its query", "/search?q=cam", "/search?q=cam"},
			{"a page of this site is kept", "/builds/b1", "/builds/b1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newClient(t, d)
				w := c.postForm("/login", url.Values{"csrf": {c.csrf("/login")}, "token": {vendorToken}, "next": {tc.next}})
				if loc := w.Header().Get("Location"); w.Code != 303 || loc != tc.want {
					t.Fatalf("next %q: status %d, Location %q; want 303 to %q", tc.next, w.Code, loc, tc.want)
				}
				form := c.get("/login?next=" + url.QueryEscape(tc.next)).Body.String()
				if strings.Contains(form, "evil.example") && tc.want == "/vendor" {
					t.Errorf("the login form carries the hostile next %q", tc.next)
				}
			})
		}
	})
	t.Run("logout clears the session", func(t *testing.T) {
		c := newClient(t, d)
		c.login(vendorToken)
		w := c.postForm("/logout", url.Values{"csrf": {c.csrf("/vendor")}})
		if w.Code != 303 {
			t.Fatalf("status %d", w.Code)
		}
		if c.get("/vendor").Code != 303 {
			t.Errorf("the vendor area is still open after logout")
		}
	})
}

func TestCSRF(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	c.login(vendorToken)
	good := c.csrf("/vendor")
	other := newClient(t, d)
	other.login(maintainerToken)
	foreign := other.csrf("/maintainer")
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"a form without a token is refused", "", 403},
		{"a token from another session is refused", foreign, 403},
		{"a forged token is refused", "AAAA" + good[4:], 403},
		{"the session's own token is accepted", good, 303},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.escrow.checkins
			w := c.postForm("/vendor/checkin", url.Values{"csrf": {tt.token}})
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if checked := d.escrow.checkins > before; checked != (tt.status == 303) {
				t.Errorf("check-in recorded = %v", checked)
			}
		})
	}
	t.Run("a script request without the header is refused", func(t *testing.T) {
		w := c.do("POST", "/vendor/deposits", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"})
		if w.Code != 403 {
			t.Fatalf("status %d, want 403", w.Code)
		}
	})
}

func TestVendorCreatesProductAndDeposits(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	c.login(vendorToken)
	tok := c.csrf("/vendor")

	t.Run("a product without a model is refused with a message", func(t *testing.T) {
		w := c.postForm("/vendor/products", url.Values{"csrf": {tok}, "model": {""}})
		if w.Code != 400 || !strings.Contains(w.Body.String(), "model name is required") {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("a product with a bad date keeps what was typed", func(t *testing.T) {
		w := c.postForm("/vendor/products", url.Values{"csrf": {tok}, "model": {"Hub 9"}, "eol": {"soon"}})
		if w.Code != 400 || !strings.Contains(w.Body.String(), `value="Hub 9"`) {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("a product is registered with one device id per line, a device-tree id keeping its comma", func(t *testing.T) {
		w := c.postForm("/vendor/products", url.Values{"csrf": {tok}, "model": {"Hub 9"}, "device_ids": {"dt:acme,hub9\r\n usb:1:2 \n\n"}, "eol": {"2027-01-31"}})
		if w.Code != 303 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if !strings.Contains(c.get("/vendor?done=product").Body.String(), "Product registered.") {
			t.Errorf("no confirmation")
		}
		p, err := d.catalog.Product(t.Context(), "acme-hub-9")
		if err != nil || strings.Join(p.DeviceIDs, " ") != "dt:acme,hub9 usb:1:2" || p.EOL.Year() != 2027 {
			t.Fatalf("product = %+v, %v", p, err)
		}
	})

	file := []byte("schematics v3\n")
	sum := sha256.Sum256(file)
	hdr := map[string]string{"Content-Type": "application/json", "X-CSRF-Token": tok}
	body, _ := json.Marshal(map[string]any{"product": "acme-hub-9", "policy": web.PolicySpec{Kind: "dead-man", CheckInEvery: "30", CheckInUnit: "days", Grace: "7", GraceUnit: "days"},
		"manifest": []web.ManifestEntry{{Path: "docs/spec.txt", Size: int64(len(file)), SHA256: hex.EncodeToString(sum[:]), Kind: "spec"}},
		"rights":   []string{"**=public", "drivers/**=build-only"}, "grant": "Acme permits redistribution."})
	w := c.do("POST", "/vendor/deposits", bytes.NewReader(body), hdr)
	if w.Code != 201 {
		t.Fatalf("create deposit: %d %s", w.Code, w.Body)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	t.Run("the form's rights rules and grant reach the escrow", func(t *testing.T) {
		d.escrow.mu.Lock()
		fd := d.escrow.deposits[created.ID]
		d.escrow.mu.Unlock()
		if len(fd.rights) != 2 || fd.rights[1] != "drivers/**=build-only" || fd.grant != "Acme permits redistribution." {
			t.Fatalf("rights %q, grant %q", fd.rights, fd.grant)
		}
	})
	t.Run("a file that does not match its manifest entry is refused", func(t *testing.T) {
		w := c.do("PUT", "/vendor/deposits/"+created.ID+"/files/docs/spec.txt", strings.NewReader("tampered!!!!!\n"), map[string]string{"X-CSRF-Token": tok})
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"code":"invalid"`) {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
	})
	t.Run("committing before all files arrived is a conflict", func(t *testing.T) {
		w := c.do("POST", "/vendor/deposits/"+created.ID+"/commit", nil, map[string]string{"X-CSRF-Token": tok})
		if w.Code != 409 {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("the file is uploaded and the deposit sealed with a receipt", func(t *testing.T) {
		w := c.do("PUT", "/vendor/deposits/"+created.ID+"/files/docs/spec.txt", bytes.NewReader(file), map[string]string{"X-CSRF-Token": tok})
		if w.Code != 204 {
			t.Fatalf("upload: %d %s", w.Code, w.Body)
		}
		w = c.do("POST", "/vendor/deposits/"+created.ID+"/commit", nil, map[string]string{"X-CSRF-Token": tok})
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"next":"/vendor?done=deposit#`+created.ID) {
			t.Fatalf("commit: %d %s", w.Code, w.Body)
		}
		page := c.get("/vendor?done=deposit").Body.String()
		for _, want := range []string{"Deposit sealed.", created.ID, strings.Repeat("d", 64), "Next dead-man deadline"} {
			if !strings.Contains(page, want) {
				t.Errorf("vendor page lacks %q", want)
			}
		}
	})
}

func TestMaintainerSubmitsRecipe(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	c.login(maintainerToken)
	tok := c.csrf("/maintainer")
	t.Run("a bad repository URL is shown back with the reason", func(t *testing.T) {
		w := c.postForm("/maintainer/recipes", url.Values{"csrf": {tok}, "repo": {"ftp://x"}, "ref": {"main"}})
		if w.Code != 400 || !strings.Contains(w.Body.String(), "only https://") || !strings.Contains(w.Body.String(), `value="ftp://x"`) {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("a submitted recipe leads to its build page, which reaches a verdict", func(t *testing.T) {
		w := c.postForm("/maintainer/recipes", url.Values{"csrf": {tok}, "repo": {"https://git.example.org/fw.git"}, "ref": {"main"}})
		if w.Code != 303 {
			t.Fatalf("status %d", w.Code)
		}
		loc := w.Header().Get("Location")
		if first := c.get(loc).Body.String(); !strings.Contains(first, "data-poll") {
			t.Errorf("a running build page does not poll")
		}
		var last string
		for range 5 {
			last = c.get(loc + "?partial=1").Body.String()
			if strings.Contains(last, "data-finished") {
				break
			}
		}
		if !strings.Contains(last, "Reproducible:") {
			t.Fatalf("no verdict after polling:\n%s", last)
		}
		if !strings.Contains(c.get("/maintainer").Body.String(), strings.TrimPrefix(loc, "/builds/")) {
			t.Errorf("the maintainer's list lacks the build")
		}
	})
}

func TestJobLogFollowsOffsets(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	w := c.get("/builds/bld_good/jobs/job0/log?offset=2")
	if w.Code != 200 || w.Body.String() != "make firmware.bin\nok\n" {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	if w.Header().Get("X-Log-Next") != "23" || w.Header().Get("X-Log-Done") != "true" {
		t.Errorf("headers next=%q done=%q", w.Header().Get("X-Log-Next"), w.Header().Get("X-Log-Done"))
	}
	if c.get("/builds/bld_good/jobs/job0/log?offset=-1").Code != 400 {
		t.Errorf("a negative offset was accepted")
	}
	t.Run("a browser opening the link without an offset gets the log as a page", func(t *testing.T) {
		w := c.do("GET", "/builds/bld_good/jobs/job0/log", nil, map[string]string{"Accept": "text/html,application/xhtml+xml"})
		body := w.Body.String()
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(body, `<pre class="log"`) ||
			!strings.Contains(body, "make firmware.bin") || !strings.Contains(body, `href="/builds/bld_good"`) || !strings.Contains(body, "?offset=0") {
			t.Errorf("GET the log as a browser: %d %s\n%s", w.Code, w.Header().Get("Content-Type"), body)
		}
		if w := c.get("/builds/bld_good/jobs/job0/log"); !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
			t.Errorf("a client not asking for HTML got %s", w.Header().Get("Content-Type"))
		}
	})
}

func TestAdminActions(t *testing.T) {
	d := newDemo(t)
	t.Run("an admin creates a token and sees its secret once", func(t *testing.T) {
		c := newClient(t, d)
		c.login(adminToken)
		w := c.postForm("/admin/tokens", url.Values{"csrf": {c.csrf("/admin")}, "name": {"ci"}, "role": {"maintainer"}, "days": {"30"}})
		if w.Code != 200 || !strings.Contains(w.Body.String(), "afl_new_secret_value") {
			t.Fatalf("status %d", w.Code)
		}
		if strings.Contains(c.get("/admin").Body.String(), "afl_new_secret_value") {
			t.Errorf("the secret is shown again")
		}
	})
	t.Run("an admin revokes a token", func(t *testing.T) {
		c := newClient(t, d)
		c.login(adminToken)
		if w := c.postForm("/admin/tokens/tok_1/revoke", url.Values{"csrf": {c.csrf("/admin")}}); w.Code != 303 {
			t.Fatalf("status %d", w.Code)
		}
		if !d.admin.tokens[0].Revoked {
			t.Errorf("token not revoked")
		}
	})
	t.Run("a trustee approves a release but may not create tokens", func(t *testing.T) {
		c := newClient(t, d)
		c.login(trusteeToken)
		tok := c.csrf("/admin")
		if w := c.postForm("/admin/approvals/dep_quorum", url.Values{"csrf": {tok}}); w.Code != 303 {
			t.Fatalf("approve: status %d", w.Code)
		}
		if !strings.Contains(c.get("/admin?done=approved").Body.String(), "trustee-bo") {
			t.Errorf("the approval is not listed")
		}
		if w := c.postForm("/admin/tokens", url.Values{"csrf": {tok}, "name": {"x"}, "role": {"admin"}}); w.Code != 403 {
			t.Errorf("a trustee created a token: status %d", w.Code)
		}
	})
}

func TestNewRefusesWeakConfiguration(t *testing.T) {
	d := newDemo(t)
	_, err := web.New(web.Deps{Catalog: d.catalog, Farm: d.farm, Auth: fakeAuth{}}, web.Options{CSRFSecret: []byte("short")})
	if err == nil {
		t.Fatal("a short CSRF secret was accepted")
	}
}

func TestMaintainersRollReleasesOutFromTheirPage(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	c.login(maintainerToken)
	page := c.get("/maintainer").Body.String()
	for _, want := range []string{`id="rollouts"`, "stage 2 of 4, 10 %", `action="/maintainer/releases/rel_new/rollout"`, `value="pause"`, `name="stages" value="1,10,50,100"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the maintainer page lacks %q", want)
		}
	}
	tok := c.csrf("/maintainer")
	t.Run("starting a rollout sends the stages and the dwell time", func(t *testing.T) {
		w := c.postForm("/maintainer/releases/rel_old/rollout", url.Values{"csrf": {tok}, "action": {"start"}, "stages": {"5,100"}, "dwell_hours": {"12"}})
		if w.Code != 303 || !strings.HasPrefix(w.Header().Get("Location"), "/maintainer") {
			t.Fatalf("status %d", w.Code)
		}
		if got := d.releases.last; got.Stages != "5,100" || got.Dwell != 12*time.Hour {
			t.Fatalf("form = %+v", got)
		}
	})
	t.Run("a pause without a reason is shown back with the registry's message", func(t *testing.T) {
		w := c.postForm("/maintainer/releases/rel_new/rollout", url.Values{"csrf": {tok}, "action": {"pause"}})
		if w.Code != 400 || !strings.Contains(w.Body.String(), "needs a reason") {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("an admin finds the rollouts from the admin page", func(t *testing.T) {
		a := newClient(t, d)
		a.login(adminToken)
		if !strings.Contains(a.get("/admin").Body.String(), `href="/maintainer#rollouts"`) {
			t.Fatal("no link to the rollouts")
		}
	})
}

func TestInstallNotesAreRenderedAsSanitisedMarkdown(t *testing.T) {
	md := web.RenderMarkdownForTest
	for _, tc := range []struct {
		name, in   string
		want, lack []string
	}{
		{"steps become a list and code stays code", "1. Hold **reset**.\n2. Run `afterlife device update`.\n\n```\nflash fw.bin\n```\n",
			[]string{"<ol>", "<strong>reset</strong>", "<code>afterlife device update</code>", "<pre><code>flash fw.bin"}, nil},
		{"raw HTML and scripts are dropped", "Hi <script>alert(1)</script><img src=x onerror=alert(2)> <b onclick=x>bold</b>",
			nil, []string{"<script", "onerror", "onclick", "<img"}},
		{"javascript links lose their address", "[click](javascript:alert(1)) and [docs](https://example.org/docs)",
			[]string{`href="https://example.org/docs"`, `rel="nofollow"`}, []string{"javascript:"}},
		{"a table is a table", "| a | b |\n|---|---|\n| 1 | 2 |\n", []string{"<table>", "<td>1</td>"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(md(tc.in))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("rendered %q, want %q in it", got, w)
				}
			}
			for _, l := range tc.lack {
				if strings.Contains(got, l) {
					t.Errorf("rendered %q, which keeps %q", got, l)
				}
			}
		})
	}
	t.Run("the product page renders the install notes and shows the product's and the recipe's risk notes", func(t *testing.T) {
		d := newDemo(t)
		c := newClient(t, d)
		body := c.get("/products/acme-thermo-2").Body.String()
		if !strings.Contains(body, "<ol>") || strings.Contains(body, `<pre class="notes">`) {
			t.Errorf("the install notes are not rendered as Markdown")
		}
		for _, want := range []string{"Flashing rev-a boards", "From the people who build this firmware", "2.x has not been tried on boards older than rev-b."} {
			if !strings.Contains(body, want) {
				t.Errorf("the product page lacks %q", want)
			}
		}
	})
}

// Owners have never heard of escrow or TUF: their pages speak of what the vendor
// left and when it became public, never of deposit ids, policies firing
// or statuses spelled as the database keeps them.
func TestOwnerPagesAvoidInternalIdsAndJargon(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	for _, path := range []string{"/products/acme-thermo-2", "/search?q=thermo", "/"} {
		body := c.get(path).Body.String()
		text := regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(body, " ")
		for _, jargon := range []string{"dep_", "Policy fired", "handed-over", "Sealed deposit", "Escrow released", "escrow", "Escrow", "TUF"} {
			if strings.Contains(text, jargon) {
				t.Errorf("%s shows %q to owners", path, jargon)
			}
		}
	}
}

func TestBrowsingTheReleasedFilesShowsAFileListWithItsJSON(t *testing.T) {
	d := newDemo(t)
	c := newClient(t, d)
	w := c.get("/deposits/dep_acme1")
	body := w.Body.String()
	for _, want := range []string{"Files the vendor left", `href="/v1/deposits/dep_acme1/files/src/main.c"`, "docs/schematics.pdf", "spec", "47.1 KiB",
		`href="/v1/deposits/dep_acme1" type="application/json"`, "public since 20 Sep 2026"} {
		if w.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET /deposits/dep_acme1: %d, lacks %q", w.Code, want)
		}
	}
	if w := c.get("/deposits/dep_quorum"); w.Code != 404 || strings.Contains(w.Body.String(), "signing.key") {
		t.Errorf("a sealed deposit's files, anonymously: %d", w.Code)
	}
}
