package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/web/browsertest"
)

// TestOwnersFindDevicesAsTheyNameThem runs the owner's search on a real
// server, on both databases: vendors named as people know them, products
// registered with the CLI, then the search page in a browser (its own
// suggestion, the words in any order, the brand's display name, a typo, a
// device id, nothing found), the API behind it, and an org renamed with
// the CLI, after which the new name finds the products and shows on them.
func TestOwnersFindDevicesAsTheyNameThem(t *testing.T) {
	b := browsertest.Start(t)
	for name, opts := range map[string]testenv.ServeOptions{
		"sqlite":   {},
		"postgres": {Args: []string{"--database", testenv.Postgres(t)}},
	} {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--local-builders", "0")
			srv := testenv.Serve(t, opts)
			as := []string{"--server", srv.URL, "--token", srv.Token}
			for _, org := range [][2]string{{"lumatek", "Lumatek Home"}, {"acme", "Acme"}} {
				afterlife(t, true, append([]string{"admin", "org", "create", org[0], "--name", org[1], "--kind", "vendor"}, as...)...)
			}
			for _, p := range [][]string{
				{"acme-thermo-2", "acme", "Thermo 2", "usb:1d6b:0104"},
				{"lumatek-glow", "lumatek", "Glow", "usb:2e8a:0101"},
				{"lumatek-glow-max", "lumatek", "Glow Max", "usb:2e8a:0102"},
				{"lumatek-bridge", "lumatek", "Bridge", "dt:lumatek,bridge-v2"},
			} {
				afterlife(t, true, append([]string{"vendor", "product", "--id", p[0], "--vendor", p[1], "--model", p[2], "--device-id", p[3]}, as...)...)
			}

			browsertest.OwnerSearches(t, b, srv.URL, []browsertest.SearchCase{
				{Query: "lumatek glow", Count: "2 products match", First: "Lumatek Home Glow"},
				{Query: "Glow Lumatek Home", Count: "2 products match", First: "Lumatek Home Glow"},
				{Query: "lumatec bridge", Count: "1 product matches", First: "Lumatek Home Bridge"},
				{Query: "Acme Thermo 2", Count: "1 product matches", First: "Acme Thermo 2"},
				{Query: "dt:lumatek,bridge-v2", Count: "1 product matches", First: "Lumatek Home Bridge"},
				{Query: "zebra kettle", Count: ""},
			})

			search := func(q string) (found struct {
				Total    int `json:"total"`
				Products []struct {
					ID         string `json:"id"`
					VendorName string `json:"vendor_name"`
				} `json:"products"`
			}) {
				body := fetch(t, srv.URL+"/v1/search?q="+url.QueryEscape(q), "", 200)
				if err := json.Unmarshal(body, &found); err != nil {
					t.Fatalf("search %q: %v: %s", q, err, body)
				}
				return found
			}
			t.Run("the API answers the total and each vendor's name", func(t *testing.T) {
				if f := search("lumatek home glow"); f.Total != 2 || f.Products[0].ID != "lumatek-glow" || f.Products[0].VendorName != "Lumatek Home" {
					t.Fatalf("%+v", f)
				}
			})
			t.Run("a renamed org is found by its new name and shown with it", func(t *testing.T) {
				out, _ := afterlife(t, true, append([]string{"admin", "org", "rename", "lumatek", "--name", "Luma Lighting"}, as...)...)
				if !strings.Contains(out, "Luma Lighting") {
					t.Fatalf("rename said %q", out)
				}
				if f := search("luma lighting bridge"); f.Total != 1 || f.Products[0].VendorName != "Luma Lighting" {
					t.Fatalf("%+v", f)
				}
				if f := search("lumatek home bridge"); f.Total != 0 {
					t.Fatalf("the old name still finds %+v", f)
				}
			})
		})
	}
}
