package catalog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	acme   = auth.Principal{Name: "acme-ci", Role: auth.Vendor, Org: "acme"}
	globex = auth.Principal{Name: "globex-ci", Role: auth.Vendor, Org: "globex"}
	admin  = auth.Principal{Name: "root", Role: auth.Admin}
)

func newCatalog(t *testing.T, d *db.DB) *Catalog {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c, err := New(context.Background(), d, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var cam = Registration{ID: "demo-cam", Vendor: "acme", Model: "Cam 200", Revisions: []string{"A", "B", "A"},
	DeviceIDs: []string{"USB:1d6b:0104", "dt:acme,cam200"}, EOL: "2026-12-31"}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("err = %v, want kind %v", err, k)
	}
}

func TestProductsAreRegisteredFoundAndMovedForward(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		p, err := c.Register(ctx, acme, cam)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(p.Revisions, ",") != "A,B" || p.DeviceIDs[0] != "usb:1d6b:0104" || p.Status != Supported {
			t.Fatalf("registered = %+v", p)
		}
		t.Run("registering the same id again is a conflict", func(t *testing.T) {
			_, err := c.Register(ctx, acme, cam)
			wantKind(t, err, errs.Conflict)
		})
		t.Run("a vendor cannot register for another org", func(t *testing.T) {
			r := cam
			r.ID = "fake"
			_, err := c.Register(ctx, globex, r)
			wantKind(t, err, errs.Forbidden)
		})
		t.Run("bad registrations are refused", func(t *testing.T) {
			for _, r := range []Registration{
				{ID: "Bad_ID", Vendor: "acme", Model: "x"},
				{ID: "ok", Vendor: "acme", Model: ""},
				{ID: "ok", Vendor: "acme", Model: "x", DeviceIDs: []string{"nocolon"}},
				{ID: "ok", Vendor: "acme", Model: "x", EOL: "31/12/2026"},
			} {
				_, err := c.Register(ctx, admin, r)
				wantKind(t, err, errs.Invalid)
			}
		})
		t.Run("a device id finds its product", func(t *testing.T) {
			ps, err := c.ByDeviceID(ctx, "dt:acme,cam200")
			if err != nil || len(ps) != 1 || ps[0].ID != "demo-cam" {
				t.Fatalf("ByDeviceID = %v, %v", ps, err)
			}
		})
		t.Run("search matches model, vendor and device ids", func(t *testing.T) {
			for _, q := range []string{"cam 2", "ACME", "1d6b"} {
				ps, err := c.Search(ctx, q, 0)
				if err != nil || len(ps) != 1 {
					t.Fatalf("Search(%q) = %v, %v", q, ps, err)
				}
			}
			ps, _ := c.Search(ctx, "%", 0)
			if len(ps) != 0 {
				t.Fatalf("a %% search matched %v", ps)
			}
		})
		t.Run("status moves forward only and every change is logged", func(t *testing.T) {
			_, err := c.SetStatus(ctx, "demo-cam", Sunset, globex)
			wantKind(t, err, errs.Forbidden)
			if _, err := c.SetStatus(ctx, "demo-cam", Sunset, acme); err != nil {
				t.Fatal(err)
			}
			_, err = c.SetStatus(ctx, "demo-cam", Supported, admin)
			wantKind(t, err, errs.Conflict)
			if err := c.HandOver(ctx, "demo-cam", "escrow:dep_1"); err != nil {
				t.Fatal(err)
			}
			if err := c.HandOver(ctx, "demo-cam", "escrow:dep_2"); err != nil {
				t.Fatalf("a second hand-over: %v", err)
			}
			evs, err := c.Events(ctx, "demo-cam")
			if err != nil || len(evs) != 3 {
				t.Fatalf("events = %+v, %v", evs, err)
			}
			if evs[2].From != Sunset || evs[2].To != HandedOver || evs[2].Actor != "escrow:dep_1" {
				t.Fatalf("last event = %+v", evs[2])
			}
			ps, _ := c.List(ctx, Filter{Status: HandedOver})
			if len(ps) != 1 {
				t.Fatalf("list by status = %v", ps)
			}
		})
	})
}

type tokens map[string]auth.Principal

func (tk tokens) Authenticate(_ context.Context, s string) (auth.Principal, error) {
	if p, ok := tk[s]; ok {
		return p, nil
	}
	return auth.Principal{}, errs.E(errs.Unauthenticated, "bad token")
}

func TestTheProductRoutes(t *testing.T) {
	c := newCatalog(t, dbtest.SQLite(t))
	api := httpapi.New(httpapi.Options{Auth: tokens{"acme": acme, "globex": globex}})
	c.RegisterRoutes(api.V1())
	srv := httptest.NewServer(api.Engine())
	defer srv.Close()
	do := func(method, path, token, body string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	reg, _ := json.Marshal(cam)
	tests := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"anonymous cannot register", "POST", "/v1/products", "", string(reg), 401},
		{"another vendor cannot register for acme", "POST", "/v1/products", "globex", string(reg), 403},
		{"acme registers its product", "POST", "/v1/products", "acme", string(reg), 201},
		{"anyone reads it", "GET", "/v1/products/demo-cam", "", "", 200},
		{"anyone finds it by device id", "GET", "/v1/products?device_id=usb:1d6b:0104", "", "", 200},
		{"a bad device id is a 400", "GET", "/v1/products?device_id=bad", "", "", 400},
		{"an unknown product is a 404", "GET", "/v1/products/nope", "", "", 404},
		{"another vendor cannot move it", "POST", "/v1/products/demo-cam/status", "globex", `{"status":"sunset"}`, 403},
		{"acme moves it to sunset", "POST", "/v1/products/demo-cam/status", "acme", `{"status":"sunset"}`, 200},
		{"moving it back is a 409", "POST", "/v1/products/demo-cam/status", "acme", `{"status":"supported"}`, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := do(tt.method, tt.path, tt.token, tt.body); got != tt.want {
				t.Fatalf("status = %d, want %d", got, tt.want)
			}
		})
	}
}

func FuzzParseDeviceID(f *testing.F) {
	for _, s := range []string{"usb:1d6b:0104", "dt:acme,cam200", "dmi:Vendor/Board", ":", "a:", "x y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseDeviceID(s)
		if err != nil {
			return
		}
		again, err := ParseDeviceID(id)
		if err != nil || again != id {
			t.Fatalf("ParseDeviceID(%q) = %q, not stable: %q, %v", s, id, again, err)
		}
		if len(id) > maxDeviceIDLen || strings.ContainsAny(id, " \x00\n") {
			t.Fatalf("accepted %q", id)
		}
	})
}
