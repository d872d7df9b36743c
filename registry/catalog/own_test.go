package catalog

import (
	"context"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

func TestTheCatalogDerivesTheIDOfAProductRegisteredWithoutOne(t *testing.T) {
	for _, c := range []struct{ name, org, model, want string }{
		{"org and model are joined, lowercased", "acme", "CAM-200", "acme-cam-200"},
		{"anything but letters and digits becomes one dash", "acme", "  Cam 200 / Pro++ ", "acme-cam-200-pro"},
		{"a long id is cut to 63 bytes without a trailing dash", "acme", strings.Repeat("x", 57) + " yz", "acme-" + strings.Repeat("x", 57)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := IDFor(c.org, c.model)
			if got != c.want || !ValidProductID(got) {
				t.Fatalf("IDFor(%q, %q) = %q, want %q", c.org, c.model, got, c.want)
			}
		})
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		t.Run("a vendor registers for its own org under the derived id", func(t *testing.T) {
			p, err := c.RegisterOwn(ctx, acme, Registration{ID: "ignored", Vendor: "globex", Model: "Cam 300"})
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != "acme-cam-300" || p.Vendor != "acme" {
				t.Fatalf("registered %+v", p)
			}
		})
		t.Run("a token without an org may not", func(t *testing.T) {
			_, err := c.RegisterOwn(ctx, principal.Principal{Name: "root", Role: principal.Admin}, Registration{Model: "Cam 400"})
			wantKind(t, err, errs.Forbidden)
		})
		t.Run("counts follow statuses", func(t *testing.T) {
			if _, err := c.Register(ctx, globex, Registration{ID: "globex-hub", Vendor: "globex", Model: "Hub"}); err != nil {
				t.Fatal(err)
			}
			if err := c.HandOver(ctx, "globex-hub", "test"); err != nil {
				t.Fatal(err)
			}
			for _, k := range []struct {
				statuses []Status
				want     int
			}{{nil, 2}, {[]Status{Supported}, 1}, {[]Status{HandedOver, Community}, 1}, {[]Status{Sunset}, 0}} {
				n, err := c.Count(ctx, k.statuses...)
				if err != nil || n != k.want {
					t.Fatalf("Count(%v) = %d, %v; want %d", k.statuses, n, err, k.want)
				}
			}
		})
	})
}
