package catalog

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
)

func TestPublishedHandoversAreServedUnchangedOncePerDepositAndByDeviceID(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newCatalog(t, d)
		t0 := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
		first := Handover{Deposit: "dep-1", Product: "demo-cam", Envelope: []byte(`{"payload":"first"}`), EnvelopeSHA256: "aa",
			VendorKey: "sha256:01", RootName: "2.root.json", RootSHA256: "bb", DeviceIDs: []string{"usb:1d6b:0104"}, ReleasedAt: t0,
			Bridge: &BridgeImage{Path: "afterlife-bridge.img", SHA256: "cc", Size: 9}}
		second := Handover{Deposit: "dep-2", Product: "demo-cam", Envelope: []byte(`{"payload":"second"}`), EnvelopeSHA256: "dd",
			VendorKey: "sha256:01", RootName: "2.root.json", RootSHA256: "bb", DeviceIDs: []string{"dt:acme,cam200"}, ReleasedAt: t0.Add(time.Hour)}
		for _, h := range []Handover{first, second, first} {
			if err := c.PublishHandover(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		hs, err := c.Handovers(ctx, "demo-cam")
		if err != nil || len(hs) != 2 || hs[0].Deposit != "dep-1" || hs[1].Deposit != "dep-2" {
			t.Fatalf("handovers = %+v, %v; want dep-1 then dep-2, once each", hs, err)
		}
		if hs[0].Bridge == nil || *hs[0].Bridge != *first.Bridge || hs[1].Bridge != nil || !hs[0].ReleasedAt.Equal(t0) {
			t.Fatalf("handovers = %+v", hs)
		}

		api := httpapi.New(httpapi.Options{Auth: tokens{}})
		c.RegisterRoutes(api.V1())
		srv := httptest.NewServer(api.Engine())
		defer srv.Close()
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, tc := range []struct {
			name, path string
			code       int
			body, loc  string
		}{
			{"the product's first statement is served byte for byte", "/v1/products/demo-cam/handover", 200, `{"payload":"first"}`, ""},
			{"a device id picks the statement naming it", "/v1/products/demo-cam/handover?id=DT:acme,cam200", 200, `{"payload":"second"}`, ""},
			{"a device id no statement names is not found", "/v1/products/demo-cam/handover?id=usb:0000:0000", 404, "", ""},
			{"a product without a handover is not found", "/v1/products/other-cam/handover", 404, "", ""},
			{"the bridge image redirects to the released deposit's file", "/v1/products/demo-cam/bridge", 307, "", "/v1/deposits/dep-1/files/afterlife-bridge.img"},
			{"a statement without a bridge image has none", "/v1/products/demo-cam/bridge?id=dt:acme,cam200", 404, "", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := noRedirect.Get(srv.URL + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.code || (tc.body != "" && string(b) != tc.body) || resp.Header.Get("Location") != tc.loc {
					t.Fatalf("%d %q Location %q; want %d %q %q", resp.StatusCode, b, resp.Header.Get("Location"), tc.code, tc.body, tc.loc)
				}
			})
		}
	})
}
