package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/lifecycle"
	"github.com/afterlife-oss/afterlife/registry/lifecycle/lifecycletest"
	"github.com/afterlife-oss/afterlife/web/browsertest"
)

// TestSupportPeriodsArePublishedSignedAndFlaggedOnlyToWhomMayKnow runs the
// support period's whole path on a real server, on both backends: a
// vendor declares it at registration and changes it later (a logged
// change); the registry serves an OpenEoX document that validates against
// the committee's schema and a CLE-shaped stream that follows ECMA-428's
// rules, both signed as TUF targets that go-tuf's own updater downloads
// and verifies, and lists them in its catalogue; a product near the end
// of security support with nothing in escrow is listed to admins and its
// vendor only, and leaves the list once a (sealed) deposit exists.
func TestSupportPeriodsArePublishedSignedAndFlaggedOnlyToWhomMayKnow(t *testing.T) {
	schema := lifecycletest.OpenEoXSchema(t)
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--local-builders", "0", "--ending-soon", "720h")
			srv := testenv.Serve(t, opts)
			as := []string{"--server", srv.URL, "--token", srv.Token}
			token := func(name, role, org string) string {
				out, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", name, "--role", role, "--org", org}, as...)...)
				return strings.TrimSpace(out)
			}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme"}, as...)...)
			afterlife(t, true, append([]string{"admin", "org", "create", "other"}, as...)...)
			vendor, otherVendor, maintainer := token("acme", "vendor", "acme"), token("other", "vendor", "other"), token("m", "maintainer", "acme")
			vs := []string{"--server", srv.URL, "--token", vendor}
			soon := time.Now().UTC().AddDate(0, 0, 10).Format(time.DateOnly)
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam 200",
				"--device-ids", "usb:acme:cam", "--general-availability", "2021-03-01", "--end-of-security-support", soon, "--end-of-life", "tba"}, vs...)...)

			var w lifecycle.Wrapper
			t.Run("the OpenEoX document validates and identifies the product", func(t *testing.T) {
				w = lifecycletest.ValidateOpenEoX(t, schema, fetch(t, srv.URL+"/v1/products/acme-cam/lifecycle/openeox.json", "", 200))
				if w.EoX.EndOfLife != "tba" || w.EoX.EndOfSecuritySupport != soon+"T00:00:00Z" || w.GeneralAvailability != "2021-03-01T00:00:00Z" ||
					w.Product.DeviceIDs[0] != "usb:acme:cam" || w.Product.Model != "Cam 200" || w.EoX.EndOfSales != "" {
					t.Fatalf("%+v", w)
				}
			})
			t.Run("the CLE stream follows ECMA-428's rules", func(t *testing.T) {
				d := lifecycletest.ValidateCLE(t, fetch(t, srv.URL+"/v1/products/acme-cam/lifecycle/cle.json", "", 200))
				if len(d.Events) != 2 || d.Events[0].Type != lifecycle.Released || d.Events[1].Type != lifecycle.EndOfSupport || d.Events[1].Claimant.Name != "acme" {
					t.Fatalf("%+v", d.Events)
				}
			})
			signed := func(t *testing.T) map[string][]byte {
				t.Helper()
				out := map[string][]byte{}
				testenv.Eventually(t, 30*time.Second, func() error {
					up := tufUpdater(t, srv.URL)
					for _, f := range []string{"openeox.json", "cle.json"} {
						ti, err := up.GetTargetInfo("acme-cam/lifecycle/" + f)
						if err != nil {
							return err
						}
						_, data, err := up.DownloadTarget(ti, filepath.Join(t.TempDir(), f), "")
						if err != nil {
							return err
						}
						if served := fetch(t, srv.URL+"/v1/products/acme-cam/lifecycle/"+f, "", 200); !bytes.Equal(data, served) {
							return fmt.Errorf("the signed %s is not the served one (yet)", f)
						}
						out[f] = data
					}
					return nil
				})
				return out
			}
			var first map[string][]byte
			t.Run("both are signed TUF targets and listed in the catalogue", func(t *testing.T) {
				first = signed(t)
				var cat struct {
					Products []struct {
						Product   string `json:"product"`
						Documents map[string]struct {
							URL, Target, SHA256 string
						} `json:"documents"`
					} `json:"products"`
				}
				if err := json.Unmarshal(fetch(t, srv.URL+"/v1/lifecycle", "", 200), &cat); err != nil {
					t.Fatal(err)
				}
				if len(cat.Products) != 1 || cat.Products[0].Product != "acme-cam" {
					t.Fatalf("%+v", cat)
				}
				for f, data := range first {
					d := cat.Products[0].Documents[f]
					sum := sha256.Sum256(data)
					if d.SHA256 != hex.EncodeToString(sum[:]) || d.Target != "acme-cam/lifecycle/"+f || d.URL != "/v1/products/acme-cam/lifecycle/"+f {
						t.Fatalf("%s: %+v", f, d)
					}
				}
			})
			t.Run("a change is logged, refused when malformed, and signed again", func(t *testing.T) {
				_, stderr := afterlife(t, false, append([]string{"vendor", "support", "acme-cam", "--end-of-life", "31/12/2030"}, vs...)...)
				if !strings.Contains(stderr, "end_of_life") {
					t.Fatalf("the refusal does not name the field: %s", stderr)
				}
				afterlife(t, false, append([]string{"vendor", "support", "acme-cam", "--end-of-life", "2031-01-01"}, "--server", srv.URL, "--token", otherVendor)...)
				afterlife(t, true, append([]string{"vendor", "support", "acme-cam", "--general-availability", "2021-03-01",
					"--end-of-security-support", soon, "--end-of-sales", "2025-12-31", "--end-of-life", "2031-01-01T00:00:00Z"}, vs...)...)
				var p struct {
					EOL    time.Time `json:"eol"`
					Events []struct {
						Seq     int64           `json:"seq"`
						Support json.RawMessage `json:"support"`
					} `json:"events"`
				}
				if err := json.Unmarshal(fetch(t, srv.URL+"/v1/products/acme-cam", "", 200), &p); err != nil {
					t.Fatal(err)
				}
				if len(p.Events) != 2 || p.Events[1].Seq <= p.Events[0].Seq || !bytes.Contains(p.Events[1].Support, []byte(`"end_of_life":"2031-01-01T00:00:00Z"`)) {
					t.Fatalf("the change is not the product log's next event: %+v", p.Events)
				}
				if !p.EOL.Equal(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)) {
					t.Fatalf("the product's end of life is %s", p.EOL)
				}
				var again map[string][]byte
				testenv.Eventually(t, 30*time.Second, func() error {
					again = signed(t)
					if bytes.Equal(again["openeox.json"], first["openeox.json"]) {
						return fmt.Errorf("not signed again yet")
					}
					return nil
				})
				w := lifecycletest.ValidateOpenEoX(t, schema, again["openeox.json"])
				if w.EoX.EndOfLife != "2031-01-01T00:00:00Z" || w.EoX.EndOfSales != "2025-12-31T00:00:00Z" {
					t.Fatalf("%+v", w.EoX)
				}
				lifecycletest.ValidateCLE(t, again["cle.json"])
			})
			type soonList struct {
				Products []struct{ Product string } `json:"products"`
			}
			listed := func(token string, want int) soonList {
				t.Helper()
				var l soonList
				if err := json.Unmarshal(fetch(t, srv.URL+"/v1/lifecycle/ending-soon", token, want), &l); err != nil && want == 200 {
					t.Fatal(err)
				}
				return l
			}
			t.Run("ending soon without a handover plan is for admins and the vendor only", func(t *testing.T) {
				if l := listed(vendor, 200); len(l.Products) != 1 || l.Products[0].Product != "acme-cam" {
					t.Fatalf("the vendor's list: %+v", l)
				}
				if l := listed(srv.Token, 200); len(l.Products) != 1 {
					t.Fatalf("the admin's list: %+v", l)
				}
				if l := listed(otherVendor, 200); len(l.Products) != 0 {
					t.Fatalf("another vendor sees %+v", l)
				}
				listed(maintainer, 403)
				listed("", 401)
				for _, path := range []string{"/products/acme-cam", "/v1/products/acme-cam/overview", "/v1/lifecycle", "/v1/products/acme-cam/lifecycle/openeox.json", "/v1/products/acme-cam/lifecycle/cle.json"} {
					if body := fetch(t, srv.URL+path, "", 200); bytes.Contains(bytes.ToLower(body), []byte("handover plan")) || bytes.Contains(body, []byte("ending-soon")) {
						t.Fatalf("%s tells the public about the handover plan:\n%s", path, body)
					}
				}
			})
			t.Run("a sealed deposit is a handover plan", func(t *testing.T) {
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, "d", "datasheet.txt"), []byte("acme cam datasheet\n"))
				afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-cam", "--policy", "on=2099-01-01",
					"--state", filepath.Join(dir, "state"), "--receipt", filepath.Join(dir, "receipt.json"), filepath.Join(dir, "d")}, vs...)...)
				if l := listed(vendor, 200); len(l.Products) != 0 {
					t.Fatalf("still listed with a sealed deposit: %+v", l)
				}
			})
		})
	}
}

// fetch GETs url with token (none when ""), wants status want, and
// returns the body.
func fetch(t *testing.T, url, token string, want int) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d\n%s", url, resp.StatusCode, want, body)
	}
	return body
}

// tufUpdater is go-tuf's own updater on a fresh cache, trusting the
// server's first root.
func tufUpdater(t *testing.T, base string) *updater.Updater {
	t.Helper()
	cfg, err := config.New(base+"/tuf", fetch(t, base+"/tuf/1.root.json", "", 200))
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir, cfg.LocalTargetsDir, cfg.RemoteTargetsURL = t.TempDir(), t.TempDir(), base+"/tuf/targets"
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatal(err)
	}
	return up
}

// TestAVendorDeclaresSupportDatesInTheBrowser drives Chromium through the
// vendor area of a real server: the vendor declares a product's support
// period in the form, the vendor page flags the product as ending without
// a handover plan, the owner's product page shows the dates and links the
// signed documents, the admin page lists the product, and the public page
// says nothing of a handover plan.
func TestAVendorDeclaresSupportDatesInTheBrowser(t *testing.T) {
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--local-builders", "0"}})
	as := []string{"--server", srv.URL, "--token", srv.Token}
	afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor"}, as...)...)
	out, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", "acme-web", "--role", "vendor", "--org", "acme"}, as...)...)
	vendor := strings.TrimSpace(out)
	afterlife(t, true, "vendor", "product", "--id", "acme-hub", "--vendor", "acme", "--model", "Hub 9", "--device-ids", "usb:acme:hub", "--server", srv.URL, "--token", vendor)

	soon := time.Now().UTC().AddDate(0, 0, 30)
	b := browsertest.Start(t)
	row := browsertest.VendorDeclaresSupport(t, b, srv.URL, vendor, "acme-hub", browsertest.SupportDates{
		"general_availability": "2021-03-01", "end_of_sales": "tba",
		"end_of_security_support": soon.Format(time.DateOnly), "end_of_life": "2031-12-31",
	})
	if !strings.Contains(row, soon.Format("2 January 2006")) || !strings.Contains(row, "no handover plan") {
		t.Fatalf("the vendor page's row does not show the end of security support and its flag: %q", row)
	}
	b.Navigate(t, srv.URL+"/products/acme-hub")
	b.CheckA11y(t)
	b.Screenshot(t, "product-support")
	dates := b.Text(t, "#support-dates")
	for _, want := range []string{"1 March 2021", "to be announced", soon.Format("2 January 2006"), "31 December 2031"} {
		if !strings.Contains(dates, want) {
			t.Errorf("the product page's support dates %q do not show %q", dates, want)
		}
	}
	if got := browsertest.Eval[string](t, b, `[...document.querySelectorAll("#support ~ p a, section[aria-labelledby=support] a")].map(a => a.getAttribute("href")).join(" ")`); !strings.Contains(got, "/v1/products/acme-hub/lifecycle/openeox.json") || !strings.Contains(got, "/lifecycle/cle.json") {
		t.Errorf("the product page links %q, want the OpenEoX and CLE documents", got)
	}
	if page := b.Text(t, "main"); strings.Contains(strings.ToLower(page), "handover plan") {
		t.Errorf("the public product page speaks of the handover plan:\n%s", page)
	}
	browsertest.Logout(t, b)
	browsertest.Login(t, b, srv.URL, srv.Token)
	b.Navigate(t, srv.URL+"/admin")
	b.CheckA11y(t)
	if got := b.Text(t, "section[aria-labelledby=ending-soon]"); !strings.Contains(got, "acme-hub") {
		t.Errorf("the admin page's ending-soon list: %q", got)
	}
}
