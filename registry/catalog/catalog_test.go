package catalog

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	acme   = principal.Principal{Name: "acme-ci", Role: principal.Vendor, Org: "acme"}
	globex = principal.Principal{Name: "globex-ci", Role: principal.Vendor, Org: "globex"}
	admin  = principal.Principal{Name: "root", Role: principal.Admin}
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
		t.Run("every product is read in one pass, with its device ids", func(t *testing.T) {
			var got []Product
			if err := c.Each(ctx, func(p Product) error { got = append(got, p); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != "demo-cam" || strings.Join(got[0].DeviceIDs, " ") != "usb:1d6b:0104 dt:acme,cam200" {
				t.Fatalf("Each = %+v", got)
			}
		})
		t.Run("search matches model, vendor and device ids", func(t *testing.T) {
			for _, q := range []string{"cam 2", "ACME", "1d6b"} {
				found, err := c.Search(ctx, q, 0)
				if err != nil || found.Total != 1 || len(found.Products) != 1 {
					t.Fatalf("Search(%q) = %+v, %v", q, found, err)
				}
			}
			found, _ := c.Search(ctx, "%", 0)
			if found.Total != 0 || len(found.Products) != 0 {
				t.Fatalf("a %% search matched %+v", found)
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

func TestADeviceIDBelongsToOneProduct(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		changes := 0
		c.OnDeviceIDsChanged(func(context.Context) error { changes++; return nil })
		if _, err := c.Register(ctx, acme, cam); err != nil {
			t.Fatal(err)
		}
		squat := Registration{ID: "globex-cam", Vendor: "globex", Model: "Not a cam", DeviceIDs: []string{"dt:globex,x1", "USB:1d6b:0104"}}
		t.Run("another vendor claiming a held id is refused and told who holds it", func(t *testing.T) {
			_, err := c.Register(ctx, globex, squat)
			wantKind(t, err, errs.Conflict)
			if !strings.Contains(err.Error(), "usb:1d6b:0104 belongs to product demo-cam") {
				t.Fatalf("the refusal does not name the holder: %v", err)
			}
			if _, err := c.Get(ctx, "globex-cam"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("the refused product was stored: %v", err)
			}
			if _, err := c.Register(ctx, admin, squat); !errs.Is(err, errs.Conflict) {
				t.Fatalf("an admin registering a held id: %v, want Conflict (admins reassign instead)", err)
			}
		})
		t.Run("the lookup finds only the holder", func(t *testing.T) {
			ps, err := c.ByDeviceID(ctx, "usb:1d6b:0104")
			if err != nil || len(ps) != 1 || ps[0].ID != "demo-cam" {
				t.Fatalf("ByDeviceID = %v, %v", ps, err)
			}
		})
		squat.DeviceIDs = []string{"dt:globex,x1"}
		if _, err := c.Register(ctx, globex, squat); err != nil {
			t.Fatal(err)
		}
		t.Run("only an admin reassigns an id", func(t *testing.T) {
			_, _, err := c.Reassign(ctx, globex, "usb:1d6b:0104", "globex-cam")
			wantKind(t, err, errs.Forbidden)
			_, _, err = c.Reassign(ctx, admin, "usb:1d6b:0104", "demo-cam")
			wantKind(t, err, errs.Conflict)
			_, _, err = c.Reassign(ctx, admin, "usb:1d6b:0104", "nope")
			wantKind(t, err, errs.NotFound)
			if changes != 0 {
				t.Fatalf("refused reassignments announced %d changes", changes)
			}
		})
		t.Run("a reassignment moves the id from one product's list to the other's", func(t *testing.T) {
			p, from, err := c.Reassign(ctx, admin, "USB:1d6b:0104", "globex-cam")
			if err != nil || from != "demo-cam" || strings.Join(p.DeviceIDs, ",") != "dt:globex,x1,usb:1d6b:0104" {
				t.Fatalf("Reassign = %+v, %q, %v", p, from, err)
			}
			old, _ := c.Get(ctx, "demo-cam")
			if strings.Join(old.DeviceIDs, ",") != "dt:acme,cam200" {
				t.Fatalf("demo-cam still lists %v", old.DeviceIDs)
			}
			ps, _ := c.ByDeviceID(ctx, "usb:1d6b:0104")
			if len(ps) != 1 || ps[0].ID != "globex-cam" || changes != 1 {
				t.Fatalf("after reassigning: %v, %d changes", ps, changes)
			}
		})
		t.Run("an id nobody holds is assigned", func(t *testing.T) {
			if _, from, err := c.Reassign(ctx, admin, "dt:free,one", "demo-cam"); err != nil || from != "" {
				t.Fatalf("Reassign of a free id: %q %v", from, err)
			}
		})
	})
}

// TestDuplicateClaimsStoredBeforeTheUpgradeGoToTheFirstProduct applies the
// first catalog migration only, stores what older versions allowed (two
// products listing one device id), and opens the catalog as a new version
// would: the product registered first keeps the id, the later claim is
// dropped and reported.
func TestDuplicateClaimsStoredBeforeTheUpgradeGoToTheFirstProduct(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		first, err := fs.ReadFile(migrations, "migrations/00001_catalog.sql")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Migrate(ctx, "catalog", fstest.MapFS{"00001_catalog.sql": {Data: first}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			id      string
			created int64
			devs    []string
		}{
			{"zz-original", 1000, []string{"demo:afterlife-cam", "usb:1"}},
			{"aa-squatter", 2000, []string{"demo:afterlife-cam", "usb:2"}},
			{"mm-also", 3000, []string{"usb:1", "usb:3"}},
		} {
			devs, _ := json.Marshal(p.devs)
			if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO products (id, vendor, model, revisions, device_ids, eol, status, risk_notes, created_at, created_by)
				VALUES (?, 'v', 'm', '[]', ?, 0, 'supported', '', ?, 'test')`), p.id, string(devs), p.created); err != nil {
				t.Fatal(err)
			}
			for _, dev := range p.devs {
				if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO product_device_ids (device_id, product) VALUES (?, ?)`), dev, p.id); err != nil {
					t.Fatal(err)
				}
			}
		}
		c := newCatalog(t, d)
		want := []DroppedClaim{
			{DeviceID: "demo:afterlife-cam", Product: "aa-squatter", Holder: "zz-original"},
			{DeviceID: "usb:1", Product: "mm-also", Holder: "zz-original"},
		}
		if got := c.DroppedAtUpgrade(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("dropped = %+v, want %+v", got, want)
		}
		for dev, holder := range map[string]string{"demo:afterlife-cam": "zz-original", "usb:1": "zz-original", "usb:2": "aa-squatter", "usb:3": "mm-also"} {
			ps, err := c.ByDeviceID(ctx, dev)
			if err != nil || len(ps) != 1 || ps[0].ID != holder {
				t.Fatalf("ByDeviceID(%s) = %v, %v; want %s", dev, ps, err, holder)
			}
		}
		if p, _ := c.Get(ctx, "aa-squatter"); strings.Join(p.DeviceIDs, ",") != "usb:2" {
			t.Fatalf("the squatter still lists %v", p.DeviceIDs)
		}
		if again := newCatalog(t, d); len(again.DroppedAtUpgrade()) != 0 {
			t.Fatalf("the next start dropped more: %+v", again.DroppedAtUpgrade())
		}
		_, err = d.ExecContext(ctx, d.Q(`INSERT INTO product_device_ids (device_id, product) VALUES (?, ?)`), "usb:2", "mm-also")
		if !db.IsUniqueViolation(err) {
			t.Fatalf("a second owner of one id was stored: %v", err)
		}
	})
}

type tokens map[string]principal.Principal

func (tk tokens) Authenticate(_ context.Context, s string) (principal.Principal, error) {
	if p, ok := tk[s]; ok {
		return p, nil
	}
	return principal.Principal{}, errs.E(errs.Unauthenticated, "bad token")
}

func TestTheProductRoutes(t *testing.T) {
	c := newCatalog(t, dbtest.SQLite(t))
	api := httpapi.New(httpapi.Options{Auth: tokens{"acme": acme, "globex": globex, "root": admin}})
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
		{"another vendor claiming its device id is a 409", "POST", "/v1/products", "globex", `{"id":"squat","vendor":"globex","model":"x","device_ids":["usb:1d6b:0104"]}`, 409},
		{"another vendor registers its own product", "POST", "/v1/products", "globex", `{"id":"squat","vendor":"globex","model":"x","device_ids":["usb:ffff:1"]}`, 201},
		{"a vendor cannot reassign a device id", "POST", "/v1/admin/device-ids/reassign", "globex", `{"device_id":"usb:1d6b:0104","to":"squat"}`, 403},
		{"anonymous cannot reassign a device id", "POST", "/v1/admin/device-ids/reassign", "", `{"device_id":"usb:1d6b:0104","to":"squat"}`, 401},
		{"an admin reassigns a device id", "POST", "/v1/admin/device-ids/reassign", "root", `{"device_id":"usb:1d6b:0104","to":"squat"}`, 200},
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

func TestAProductDeclaresTheGUIDsFwupdKnowsItsDevicesBy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		reg := cam
		// fwupd derives 4b12940f-… from this instance id (checked against
		// fwupdtool in registry/fwupd's tests).
		reg.FwupdIDs = []string{`AFTERLIFE\DEMO-CAM`, "B585990A-003E-5270-89D5-3705A17F9A43", "4b12940f-0816-5de9-a3e0-67d3215823f5"}
		p, err := c.Register(ctx, acme, reg)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"4b12940f-0816-5de9-a3e0-67d3215823f5", "b585990a-003e-5270-89d5-3705a17f9a43"}
		t.Run("instance ids become GUIDs, GUIDs are lowercased, each is kept once", func(t *testing.T) {
			got, err := c.Get(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.FwupdGUIDs, " ") != strings.Join(want, " ") {
				t.Fatalf("fwupd GUIDs = %v, want %v", got.FwupdGUIDs, want)
			}
		})
		t.Run("a GUID another product declares is refused naming it", func(t *testing.T) {
			other := Registration{ID: "globex-cam", Vendor: "globex", Model: "G", FwupdIDs: []string{`AFTERLIFE\DEMO-CAM`}}
			_, err := c.Register(ctx, globex, other)
			wantKind(t, err, errs.Conflict)
			if !strings.Contains(err.Error(), "demo-cam") {
				t.Fatalf("err = %v, want it to name the holder", err)
			}
		})
		t.Run("an id with spaces or control bytes is refused", func(t *testing.T) {
			for _, bad := range []string{"USB VID", "a\x01b", strings.Repeat("x", 201)} {
				_, err := c.Register(ctx, globex, Registration{ID: "globex-x", Vendor: "globex", Model: "X", FwupdIDs: []string{bad}})
				wantKind(t, err, errs.Invalid)
			}
		})
		t.Run("only products with fwupd GUIDs are listed for the remote", func(t *testing.T) {
			ps, err := c.WithFwupdGUIDs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 1 || ps[0].ID != p.ID {
				t.Fatalf("products with fwupd GUIDs = %+v, want only %s", ps, p.ID)
			}
		})
		t.Run("a product without fwupd ids lists none", func(t *testing.T) {
			q, err := c.Register(ctx, globex, Registration{ID: "globex-plain", Vendor: "globex", Model: "P"})
			if err != nil {
				t.Fatal(err)
			}
			if q.FwupdGUIDs == nil || len(q.FwupdGUIDs) != 0 {
				t.Fatalf("fwupd GUIDs = %#v, want an empty list", q.FwupdGUIDs)
			}
		})
	})
}

func TestDeviceIDsAreCheckedByScheme(t *testing.T) {
	for _, tc := range []struct {
		name, id, want string
		ok             bool
	}{
		{"a USB id is accepted", "usb:1d6b:0104", "usb:1d6b:0104", true},
		{"a device-tree id keeps its comma", "dt:acme,cam200", "dt:acme,cam200", true},
		{"a scheme is lowercased", "DT:acme,cam200", "dt:acme,cam200", true},
		{"two ids run together with a comma are refused", "usb:1d6b:0104,dt:acme,cam200", "", false},
		{"two ids run together with a semicolon are refused", "usb:acme:cam;usb:acme:cam2", "", false},
		{"a dt id without a model is refused", "dt:acme", "", false},
		{"a dt id with two commas is refused", "dt:acme,cam200,usb:1d6b:0104", "", false},
		{"a dt id with a colon after the comma is refused", "dt:globex,x1:usb", "", false},
		{"another scheme keeps its own value", "dmi:Vendor/Board", "dmi:Vendor/Board", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDeviceID(tc.id)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseDeviceID(%q) = %q, %v; want %q, ok=%v", tc.id, got, err, tc.want, tc.ok)
			}
			if err != nil && !errs.Is(err, errs.Invalid) {
				t.Fatalf("error %v is not invalid input", err)
			}
		})
	}
}
