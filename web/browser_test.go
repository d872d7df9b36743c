package web_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/web/browsertest"
)

// TestBrowserJourneys drives headless Chromium through the three
// acceptance journeys against the pages served with the demo fakes, checks
// every page with axe-core and saves screenshots (desktop and phone).
func TestBrowserJourneys(t *testing.T) {
	d := newDemo(t)
	srv := httptest.NewServer(d.engine)
	t.Cleanup(srv.Close)
	b := browsertest.Start(t)

	t.Run("a device owner finds a model, sees the badge and downloads matching firmware", func(t *testing.T) {
		url := browsertest.OwnerDownloads(t, b, srv.URL, "thermo", "Thermo 2")
		if !strings.HasSuffix(url, "/products/acme-thermo-2") {
			t.Errorf("product URL = %s", url)
		}
	})
	t.Run("a vendor registers a product and uploads a deposit through the form", func(t *testing.T) {
		id := browsertest.VendorDeposits(t, b, srv.URL, vendorToken, "Hub 9", map[string][]byte{
			"spec.txt":    []byte("hub 9 schematics\n"),
			"src.tar":     []byte(strings.Repeat("source code\n", 5000)),
			"signing.key": []byte("not really a key\n"),
		})
		if id != "acme-hub-9" {
			t.Errorf("product id = %q", id)
		}
		if len(d.escrow.order) != 1 || d.escrow.deposits[d.escrow.order[0]].sum.State != "sealed" {
			t.Fatalf("the escrow holds no sealed deposit")
		}
		dep := d.escrow.deposits[d.escrow.order[0]]
		if dep.sum.Files != 3 || dep.manifest["signing.key"].Kind != "keys" || dep.manifest["spec.txt"].Kind != "spec" {
			t.Errorf("manifest = %+v", dep.manifest)
		}
		browsertest.Logout(t, b)
	})
	t.Run("a maintainer submits a recipe and sees the build reach a verdict", func(t *testing.T) {
		_, verdict := browsertest.MaintainerBuilds(t, b, srv.URL, maintainerToken, "https://git.example.org/fw.git", "main", "", 30*time.Second)
		if !strings.Contains(verdict, "Reproducible") || !strings.Contains(verdict, "3 of 3") {
			t.Errorf("verdict = %q", verdict)
		}
		got := browsertest.Eval[string](t, b, `document.querySelector("pre[data-log]").textContent`)
		if !strings.Contains(got, "make firmware.bin") {
			t.Errorf("the streamed log shows %q", got)
		}
		browsertest.Logout(t, b)
	})
	t.Run("the other pages pass the accessibility check", func(t *testing.T) {
		for _, p := range []struct{ name, path, token string }{
			{"unreproducible-build", "/builds/bld_bad", ""},
			{"released-files", "/deposits/dep_acme1", ""},
			{"login", "/login", ""},
			{"not-found", "/products/nope", ""},
			{"admin", "/admin", adminToken},
		} {
			if p.token != "" {
				browsertest.Login(t, b, srv.URL, p.token)
			}
			b.Navigate(t, srv.URL+p.path)
			b.CheckA11y(t)
			b.Screenshot(t, p.name)
		}
	})
}
