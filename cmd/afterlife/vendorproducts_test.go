package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/web/browsertest"
)

// TestAVendorEditsAndRetiresProducts is the vendor's journey of
// correcting a registration, on a real server and both backends: on the
// command line a vendor corrects a model name and its device ids (logged
// before and after, the signed lifecycle documents follow), is refused an
// id another product holds and the retirement of a product with a sealed
// deposit; in the browser the vendor corrects a mistaken product, is asked
// to confirm its retirement, retires it, and the product is gone from
// lists, search and its page while its device id is free again and its
// signed lifecycle documents are withdrawn.
func TestAVendorEditsAndRetiresProducts(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--local-builders", "0")
			srv := testenv.Serve(t, opts)
			as := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor"}, as...)...)
			afterlife(t, true, append([]string{"admin", "org", "create", "other"}, as...)...)
			tok := func(name, org string) string {
				out, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", name, "--role", "vendor", "--org", org}, as...)...)
				return strings.TrimSpace(out)
			}
			vendor, other := tok("acme-web", "acme"), tok("other-web", "other")
			vs := []string{"--server", srv.URL, "--token", vendor}
			register := func(id, model string, ids ...string) {
				args := []string{"vendor", "product", "--id", id, "--vendor", "acme", "--model", model}
				for _, d := range ids {
					args = append(args, "--device-id", d)
				}
				afterlife(t, true, append(args, vs...)...)
			}
			register("acme-cam", "Cam 200", "usb:acce:0001", "dt:acme,cam200")
			register("acme-kept", "Kept", "usb:acce:0009")
			register("acme-typo", "Cam 20O", "usb:acce:0002")
			dir := t.TempDir()
			spec := filepath.Join(dir, "datasheet.pdf")
			if err := os.WriteFile(spec, []byte("%PDF datasheet"), 0o644); err != nil {
				t.Fatal(err)
			}
			afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-kept", "--policy", "on=2099-01-01", "--yes",
				"--state", filepath.Join(dir, "state"), "--receipt", filepath.Join(dir, "receipt.json"), spec}, vs...)...)

			product := func(id string) catalog.ProductWithEvents {
				var p catalog.ProductWithEvents
				if err := json.Unmarshal(fetch(t, srv.URL+"/v1/products/"+id, "", 200), &p); err != nil {
					t.Fatal(err)
				}
				return p
			}
			t.Run("on the command line an edit replaces the fields given and is logged before and after", func(t *testing.T) {
				out, _ := afterlife(t, true, append([]string{"vendor", "product", "edit", "acme-cam", "--model", "Cam 200 Pro",
					"--device-id", "usb:acce:0003", "--device-id", "dt:acme,cam200", "--reason", "the USB id was mistyped"}, vs...)...)
				if !strings.Contains(out, "product acme-cam changed: Cam 200 Pro") {
					t.Errorf("the command says %q", out)
				}
				p := product("acme-cam")
				last := p.Events[len(p.Events)-1]
				if p.Model != "Cam 200 Pro" || strings.Join(p.DeviceIDs, " ") != "usb:acce:0003 dt:acme,cam200" || last.Change == nil ||
					last.Change.Before.Model != "Cam 200" || last.Change.After.DeviceIDs[0] != "usb:acce:0003" || last.Change.Reason != "the USB id was mistyped" {
					t.Fatalf("after the edit: %+v, last event %+v", p.Product, last)
				}
				if page := string(fetch(t, srv.URL+"/products/acme-cam", "", 200)); !strings.Contains(page, "Details corrected by its vendor") || !strings.Contains(page, "Cam 200 → Cam 200 Pro") {
					t.Errorf("the product page's timeline does not tell of the correction")
				}
				testenv.Eventually(t, 30*time.Second, func() error {
					if doc := string(fetch(t, srv.URL+"/v1/products/acme-cam/lifecycle/openeox.json", "", 200)); !strings.Contains(doc, "Cam 200 Pro") {
						return fmt.Errorf("the lifecycle document still reads %.200s", doc)
					}
					return nil
				})
			})
			t.Run("on the command line an id another product holds, another org's product and a product with a deposit are refused", func(t *testing.T) {
				_, errOut := afterlife(t, false, append([]string{"vendor", "product", "edit", "acme-cam", "--device-id", "usb:acce:0002"}, vs...)...)
				if !strings.Contains(errOut, "belongs to product acme-typo") {
					t.Errorf("editing to a held id says %q", errOut)
				}
				afterlife(t, false, "vendor", "product", "edit", "acme-cam", "--model", "Mine", "--server", srv.URL, "--token", other)
				_, errOut = afterlife(t, false, append([]string{"vendor", "product", "retire", "acme-kept", "--yes"}, vs...)...)
				if !strings.Contains(errOut, "1 deposit") || !strings.Contains(errOut, "sunset") {
					t.Errorf("retiring a product with a sealed deposit says %q", errOut)
				}
				product("acme-kept")
			})

			t.Run("in the browser the vendor corrects a product, then retires it after confirming", func(t *testing.T) {
				b := browsertest.Start(t)
				browsertest.Login(t, b, srv.URL, vendor)
				b.Navigate(t, srv.URL+"/vendor")
				b.Do(t, "open the change form", chromedp.Evaluate[chromedp.Void](`document.getElementById("change-acme-typo").open = true`))
				b.CheckA11y(t)
				b.Screenshot(t, "vendor-product-edit")
				b.Do(t, "correct the model name",
					chromedp.Evaluate[chromedp.Void](`document.getElementById("edit-acme-typo-model").value = ""`),
					chromedp.SendKeys(chromedp.ID("edit-acme-typo-model"), "Cam 20 Mini"),
					chromedp.SendKeys(chromedp.ID("edit-acme-typo-reason"), "a zero, not an O"),
					chromedp.Click(chromedp.CSS(`#edit-acme-typo button[type="submit"]`)),
				)
				// Conditions read the page they wait for, so a page still
				// being replaced is never read.
				b.WaitFor(t, "the change confirmed in the vendor's table", `location.search.includes("done=edited") && document.readyState === "complete" &&
					document.getElementById("product-acme-typo").textContent.includes("Cam 20 Mini")`)
				if p := product("acme-typo"); p.Model != "Cam 20 Mini" || p.Events[len(p.Events)-1].Change.Reason != "a zero, not an O" {
					t.Errorf("after the web edit: %+v", p)
				}

				b.Do(t, "retire without confirming", chromedp.Evaluate[chromedp.Void](`document.getElementById("change-acme-typo").open = true`),
					chromedp.Click(chromedp.CSS(`#retire-acme-typo button[type="submit"]`)))
				b.WaitFor(t, "the refusal to retire unconfirmed, with the form open", `document.readyState === "complete" && document.querySelector("[role=alert]") !== null &&
					document.querySelector("[role=alert]").textContent.includes("cannot be undone") && document.getElementById("change-acme-typo").open`)
				b.CheckA11y(t)
				product("acme-typo")
				b.Do(t, "retire, confirmed",
					chromedp.SendKeys(chromedp.ID("retire-acme-typo-reason"), "registered by mistake"),
					chromedp.Click(chromedp.ID("retire-acme-typo-confirm")),
					chromedp.Click(chromedp.CSS(`#retire-acme-typo button[type="submit"]`)),
				)
				b.WaitFor(t, "the retirement confirmed", `location.search.includes("done=retired") && document.readyState === "complete" &&
					document.querySelector("main").textContent.includes("Product retired")`)
				b.CheckA11y(t)
				if got := browsertest.Eval[string](t, b, `document.querySelector("main").textContent`); strings.Contains(got, "acme-typo") {
					t.Errorf("after retiring, the vendor page still names the product: %q", got)
				}

				b.Do(t, "try the product with a deposit", chromedp.Evaluate[chromedp.Void](`document.getElementById("change-acme-kept").open = true`),
					chromedp.Click(chromedp.ID("retire-acme-kept-confirm")),
					chromedp.Click(chromedp.CSS(`#retire-acme-kept button[type="submit"]`)))
				b.WaitFor(t, "the refusal to retire a product with a deposit", `document.readyState === "complete" && document.querySelector("[role=alert]") !== null &&
					document.querySelector("[role=alert]").textContent.includes("outlive it")`)
				product("acme-kept")
			})

			t.Run("a retired product is found by nothing, frees its device id and withdraws its signed documents", func(t *testing.T) {
				fetch(t, srv.URL+"/v1/products/acme-typo", "", 404)
				fetch(t, srv.URL+"/products/acme-typo", "", 404)
				if got := string(fetch(t, srv.URL+"/v1/products?q=cam", "", 200)); strings.Contains(got, "acme-typo") || !strings.Contains(got, "acme-cam") {
					t.Errorf("search finds %s", got)
				}
				if got := string(fetch(t, srv.URL+"/v1/products?device_id=usb:acce:0002", "", 200)); strings.Contains(got, "acme-typo") {
					t.Errorf("the device id still finds %s", got)
				}
				register("acme-cam20", "Cam 20 Mini", "usb:acce:0002")
				testenv.Eventually(t, 30*time.Second, func() error {
					up := tufUpdater(t, srv.URL)
					if _, err := up.GetTargetInfo("acme-typo/lifecycle/openeox.json"); err == nil {
						return fmt.Errorf("the retired product's lifecycle document is still a signed target")
					}
					if _, err := up.GetTargetInfo("acme-cam20/lifecycle/openeox.json"); err != nil {
						return err
					}
					return nil
				})
				_, errOut := afterlife(t, false, append([]string{"vendor", "product", "--id", "acme-typo", "--vendor", "acme", "--model", "Again"}, vs...)...)
				if !strings.Contains(errOut, "retired product keeps its id") {
					t.Errorf("registering the retired id again says %q", errOut)
				}
			})
		})
	}
}
