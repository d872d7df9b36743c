package catalog

import (
	"context"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestSupportPeriodsAreDeclaredCheckedAndLogged(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		var told []string
		c.OnLifecycleChanged(func(_ context.Context, product string) { told = append(told, product) })
		reg := cam
		reg.EOL = ""
		reg.Support = Support{GeneralAvailability: "2021-03-01", EndOfSecuritySupport: "2029-06-30T12:00:00+02:00", EndOfLife: "TBA"}
		p, err := c.Register(ctx, acme, reg)
		if err != nil {
			t.Fatal(err)
		}
		if p.Support.GeneralAvailability != "2021-03-01T00:00:00Z" || p.Support.EndOfSecuritySupport != "2029-06-30T10:00:00Z" ||
			p.Support.EndOfLife != TBA || p.Support.EndOfSales != "" || p.Support.Updated.IsZero() {
			t.Fatalf("declared at registration: %+v", p.Support)
		}
		for _, c2 := range []struct {
			name string
			s    Support
			kind errs.Kind
		}{
			{"a date in another format is refused", Support{EndOfLife: "31/12/2030"}, errs.Invalid},
			{"an end before general availability is refused", Support{GeneralAvailability: "2021-03-01", EndOfSales: "2020-01-01"}, errs.Invalid},
			{"security support past the end of life is refused", Support{EndOfSecuritySupport: "2031-01-01", EndOfLife: "2030-01-01"}, errs.Invalid},
			{"an empty declaration is refused", Support{}, errs.Invalid},
		} {
			t.Run(c2.name, func(t *testing.T) {
				_, err := c.SetSupport(ctx, acme, "demo-cam", c2.s)
				wantKind(t, err, c2.kind)
			})
		}
		t.Run("another vendor may not declare it", func(t *testing.T) {
			_, err := c.SetSupport(ctx, globex, "demo-cam", Support{EndOfLife: "tba"})
			wantKind(t, err, errs.Forbidden)
		})
		t.Run("a change is the log's next event and sets the end of life", func(t *testing.T) {
			p, err := c.SetSupport(ctx, admin, "demo-cam", Support{EndOfSecuritySupport: "2029-06-30", EndOfLife: "2030-12-31"})
			if err != nil {
				t.Fatal(err)
			}
			if p.EOL.Format("2006-01-02") != "2030-12-31" || p.Support.GeneralAvailability != "" {
				t.Fatalf("after the change: %+v", p)
			}
			evs, err := c.Events(ctx, "demo-cam")
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 || evs[0].Support == nil || evs[0].Support.EndOfLife != TBA ||
				evs[1].Support == nil || evs[1].Support.EndOfLife != "2030-12-31T00:00:00Z" || evs[1].From != evs[1].To || evs[1].Seq <= evs[0].Seq {
				t.Fatalf("events: %+v", evs)
			}
			if len(told) != 2 || told[1] != "demo-cam" {
				t.Fatalf("the lifecycle hook heard %v", told)
			}
		})
		t.Run("a status change is heard too, and carries no declaration", func(t *testing.T) {
			if _, err := c.SetStatus(ctx, "demo-cam", Sunset, acme); err != nil {
				t.Fatal(err)
			}
			evs, _ := c.Events(ctx, "demo-cam")
			if len(told) != 3 || evs[2].Support != nil {
				t.Fatalf("heard %v; last event %+v", told, evs[2])
			}
		})
	})
}
