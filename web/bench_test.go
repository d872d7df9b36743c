package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPages renders each main page on the demo data through the
// whole gin stack (identify, security headers, render). make bench turns
// ns/op into milliseconds; the target is under 50 ms at the median.
func BenchmarkPages(b *testing.B) {
	d := newDemo(b)
	pages := []struct{ name, path, token string }{
		{"home", "/", ""},
		{"search", "/search?q=thermo", ""},
		{"search-fragment", "/search?q=thermo&partial=1", ""},
		{"product", "/products/acme-thermo-2", ""},
		{"build", "/builds/bld_good", ""},
		{"build-unreproducible", "/builds/bld_bad", ""},
		{"vendor", "/vendor", vendorToken},
		{"maintainer", "/maintainer", maintainerToken},
		{"admin", "/admin", adminToken},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", p.path, nil)
				if p.token != "" {
					req.AddCookie(&http.Cookie{Name: "afterlife_session", Value: p.token})
				}
				w := httptest.NewRecorder()
				d.engine.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: status %d", p.path, w.Code)
				}
			}
		})
	}
}
