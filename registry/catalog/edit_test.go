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

type keeperFunc func(product string) string

func (f keeperFunc) Keeps(_ context.Context, product string) (string, error) { return f(product), nil }

func TestProductsAreEditedAndRetiredWithEveryChangeLogged(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		var refreshed int
		var told []string
		c.OnDeviceIDsChanged(func(context.Context) error { refreshed++; return nil })
		c.OnLifecycleChanged(func(_ context.Context, product string) { told = append(told, product) })
		held := map[string]string{"kept-cam": "1 release"}
		c.KeptBy(keeperFunc(func(product string) string { return held[product] }))
		if _, err := c.Register(ctx, acme, cam); err != nil {
			t.Fatal(err)
		}
		kept := Registration{ID: "kept-cam", Vendor: "acme", Model: "Kept", DeviceIDs: []string{"usb:aaaa:0001"}}
		if _, err := c.Register(ctx, acme, kept); err != nil {
			t.Fatal(err)
		}
		str := func(s string) *string { return &s }
		list := func(s ...string) *[]string { return &s }

		for _, tc := range []struct {
			name string
			who  principal.Principal
			edit Edit
			kind errs.Kind
		}{
			{"another vendor may not edit it", globex, Edit{Model: str("Cam 300")}, errs.Forbidden},
			{"an edit that changes nothing is refused", acme, Edit{Model: str("Cam 200")}, errs.Invalid},
			{"an empty model name is refused", acme, Edit{Model: str(" ")}, errs.Invalid},
			{"two ids run together are refused", acme, Edit{DeviceIDs: list("usb:1d6b:0104,dt:acme,cam200")}, errs.Invalid},
			{"an id another product holds is refused", acme, Edit{DeviceIDs: list("usb:aaaa:0001")}, errs.Conflict},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.Edit(ctx, tc.who, "demo-cam", tc.edit)
				wantKind(t, err, tc.kind)
			})
		}

		t.Run("an edit replaces the fields given, frees the ids dropped and logs before and after", func(t *testing.T) {
			p, err := c.Edit(ctx, acme, "demo-cam", Edit{Model: str("Cam 200 Pro"), DeviceIDs: list("dt:acme,cam200", "usb:1d6b:0200"), Reason: "typo in the USB product id"})
			if err != nil {
				t.Fatal(err)
			}
			if p.Model != "Cam 200 Pro" || strings.Join(p.DeviceIDs, " ") != "dt:acme,cam200 usb:1d6b:0200" || strings.Join(p.Revisions, ",") != "A,B" {
				t.Fatalf("after the edit: %+v", p)
			}
			if got, _ := c.ByDeviceID(ctx, "usb:1d6b:0200"); len(got) != 1 || got[0].ID != "demo-cam" {
				t.Fatalf("the new id finds %v", got)
			}
			if got, _ := c.ByDeviceID(ctx, "usb:1d6b:0104"); len(got) != 0 {
				t.Fatalf("the dropped id still finds %v", got)
			}
			evs, _ := c.Events(ctx, "demo-cam")
			last := evs[len(evs)-1]
			if last.Change == nil || last.Change.Kind != ChangeEdited || last.Change.Before.Model != "Cam 200" || last.Change.After.Model != "Cam 200 Pro" ||
				!strings.Contains(strings.Join(last.Change.Before.DeviceIDs, " "), "usb:1d6b:0104") || last.Change.Reason != "typo in the USB product id" ||
				last.Actor != acme.Actor() || last.From != last.To {
				t.Fatalf("the edit's event: %+v", last)
			}
			if refreshed != 1 || len(told) != 3 || told[2] != "demo-cam" {
				t.Fatalf("device lookups refreshed %d times, lifecycle told %v", refreshed, told)
			}
			logged, err := c.LogEvents(ctx, last.Seq-1, 10)
			if err != nil || len(logged) != 1 || logged[0].Type != "product.edited" || logged[0].Fields["after"] == nil {
				t.Fatalf("the transparency log reads %+v (%v)", logged, err)
			}
		})

		t.Run("a product something outlives is not retired, and says what keeps it", func(t *testing.T) {
			err := c.Retire(ctx, acme, "kept-cam", "mistake")
			wantKind(t, err, errs.Conflict)
			if !strings.Contains(errs.Message(err), "1 release") {
				t.Fatalf("the refusal says %q", errs.Message(err))
			}
			if _, err := c.Get(ctx, "kept-cam"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("another vendor may not retire it", func(t *testing.T) {
			wantKind(t, c.Retire(ctx, globex, "demo-cam", ""), errs.Forbidden)
		})

		t.Run("a retired product is found by nothing and gives up its device ids, but keeps its id and log", func(t *testing.T) {
			if err := c.Retire(ctx, acme, "demo-cam", "registered twice by mistake"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, "demo-cam"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("Get after retiring: %v", err)
			}
			for what, got := range map[string]func() ([]Product, error){
				"list": func() ([]Product, error) { return c.List(ctx, Filter{Vendor: "acme"}) },
				"search": func() ([]Product, error) {
					found, err := c.Search(ctx, "cam 200", 10)
					if found.Total != len(found.Products) {
						t.Errorf("search counts %d products and lists %d: the retired one is counted", found.Total, len(found.Products))
					}
					var ps []Product
					for _, m := range found.Products {
						ps = append(ps, m.Product)
					}
					return ps, err
				},
				"device id": func() ([]Product, error) { return c.ByDeviceID(ctx, "dt:acme,cam200") },
				"whole catalog": func() ([]Product, error) {
					var all []Product
					err := c.Each(ctx, func(p Product) error { all = append(all, p); return nil })
					return all, err
				},
			} {
				ps, err := got()
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ps {
					if p.ID == "demo-cam" {
						t.Errorf("%s still finds the retired product", what)
					}
				}
			}
			if n, _ := c.Count(ctx); n != 1 {
				t.Errorf("count = %d, want 1", n)
			}
			wantKind(t, c.Retire(ctx, acme, "demo-cam", ""), errs.NotFound)
			_, err := c.Edit(ctx, acme, "demo-cam", Edit{Model: str("again")})
			wantKind(t, err, errs.NotFound)
			evs, _ := c.Events(ctx, "demo-cam")
			last := evs[len(evs)-1]
			if last.Change == nil || last.Change.Kind != ChangeRetired || last.Change.After != nil || len(last.Change.Before.DeviceIDs) != 2 || last.Change.Reason != "registered twice by mistake" {
				t.Fatalf("the retirement's event: %+v", last)
			}
			logged, _ := c.LogEvents(ctx, last.Seq-1, 10)
			if len(logged) != 1 || logged[0].Type != "product.retired" {
				t.Fatalf("the transparency log reads %+v", logged)
			}
			again := Registration{ID: "cam-200", Vendor: "acme", Model: "Cam 200", DeviceIDs: []string{"dt:acme,cam200"}}
			if _, err := c.Register(ctx, acme, again); err != nil {
				t.Fatalf("the right product claims the freed id: %v", err)
			}
			_, err = c.Register(ctx, acme, Registration{ID: "demo-cam", Vendor: "acme", Model: "New"})
			wantKind(t, err, errs.Conflict)
		})

		t.Run("the web form's derived id skips one a retired product keeps", func(t *testing.T) {
			first, err := c.RegisterOwn(ctx, acme, Registration{Model: "Doorbell"})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Retire(ctx, admin, first.ID, ""); err != nil {
				t.Fatal(err)
			}
			second, err := c.RegisterOwn(ctx, acme, Registration{Model: "Doorbell"})
			if err != nil || second.ID != first.ID+"-2" {
				t.Fatalf("registered again as %q (%v), want %s-2", second.ID, err, first.ID)
			}
		})
	})
}
