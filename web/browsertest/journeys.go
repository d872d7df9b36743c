package browsertest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The journeys below are the acceptance paths of the web pages. Each one
// drives the browser like a person would, checks accessibility on every
// page it reaches and saves screenshots (desktop and phone) named after
// the page. They work against any afterlife site: web's tests run them on
// fakes, the end-to-end test on a real `afterlife serve`.

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Login pastes token into the login form and submits it.
func Login(t testing.TB, b *Browser, base, token string) {
	t.Helper()
	b.Navigate(t, base+"/login")
	b.Do(t, "log in",
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitReady(chromedp.CSS("main h1")),
	)
	b.WaitFor(t, "leaving the login page", `!location.pathname.startsWith("/login")`)
}

// Logout submits the logout form.
func Logout(t testing.TB, b *Browser) {
	t.Helper()
	b.Do(t, "log out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
	b.WaitFor(t, "the login link", `!!document.querySelector('a[href="/login"]')`)
}

// OwnerDownloads is the device owner's path: the home page, typing query
// into the search box until a result whose text contains model appears,
// its product page with the reproducibility badge, and a download whose
// sha256 (computed in the browser from the downloaded bytes) matches the
// one the page shows. It returns the product page URL.
func OwnerDownloads(t testing.TB, b *Browser, base, query, model string) string {
	t.Helper()
	b.Navigate(t, base+"/")
	b.CheckA11y(t)
	b.Screenshot(t, "home")
	b.Do(t, "type the search", chromedp.SendKeys(chromedp.ID("q"), query))
	// Results as you type: the list appears without submitting the form.
	b.WaitFor(t, "live search results for "+query, `[...document.querySelectorAll("#results a.title")].some(a => a.textContent.includes(`+js(model)+`))`)
	b.Screenshot(t, "search-live")
	href := Eval[string](t, b, `[...document.querySelectorAll("#results a.title")].find(a => a.textContent.includes(`+js(model)+`)).href`)
	b.Navigate(t, base+"/search?q="+strings.ReplaceAll(query, " ", "+"))
	b.CheckA11y(t)
	b.Navigate(t, href)
	b.WaitFor(t, "the product heading", `document.querySelector("h1") && document.querySelector("h1").textContent.includes(`+js(model)+`)`)
	badge := b.Text(t, "a.badge")
	if !strings.Contains(badge, "independent builders agree") {
		t.Fatalf("product page badge = %q, want \"… independent builders agree\"", badge)
	}
	verdict := Eval[string](t, b, `document.querySelector("a.badge").href`)
	b.CheckA11y(t)
	b.Screenshot(t, "product")

	// Download the first artifact in the page and hash it there.
	type check struct {
		Shown, Got, Name string
		Size             int
	}
	c := Eval[check](t, b, `(async () => {
		const a = document.querySelector("a.download");
		const r = await fetch(a.href);
		if (!r.ok) throw new Error("download " + a.href + ": HTTP " + r.status);
		const buf = await r.arrayBuffer();
		const d = await crypto.subtle.digest("SHA-256", buf);
		const got = [...new Uint8Array(d)].map(x => x.toString(16).padStart(2, "0")).join("");
		const input = a.parentElement.querySelector(".digest input");
		return {Shown: input.value, Got: got, Name: a.getAttribute("download"), Size: buf.byteLength};
	})()`)
	if c.Got != c.Shown || len(c.Got) != 64 {
		t.Fatalf("downloaded %s (%d bytes) has sha256 %s, the page shows %s", c.Name, c.Size, c.Got, c.Shown)
	}

	// The badge leads to the verdict.
	b.Navigate(t, verdict)
	b.WaitFor(t, "the verdict", `!!document.querySelector(".verdict")`)
	b.CheckA11y(t)
	b.Screenshot(t, "verdict")
	return href
}

// VendorDeposits is the vendor's path: log in with token, register a
// product called model, open the deposit form for it, choose files (name →
// content, written under t.TempDir) and upload them with the form, which
// hashes, uploads with a progress bar and seals. It returns the new
// product's id.
func VendorDeposits(t testing.TB, b *Browser, base, token, model string, files map[string][]byte) string {
	t.Helper()
	Login(t, b, base, token)
	b.Navigate(t, base+"/vendor")
	b.CheckA11y(t)
	b.Screenshot(t, "vendor")
	b.Do(t, "open the product form", chromedp.Evaluate[chromedp.Void](`document.querySelector("details:has(#new-product)").open = true`))
	b.Do(t, "register a product",
		chromedp.SendKeys(chromedp.ID("model"), model),
		chromedp.SendKeys(chromedp.ID("device_ids"), "dt:acme,"+strings.ToLower(strings.ReplaceAll(model, " ", "-"))),
		chromedp.Submit(chromedp.ID("model")),
	)
	b.WaitFor(t, "the registered product", `[...document.querySelectorAll("main td")].some(td => td.textContent.includes(`+js(model)+`))`)
	deposit := Eval[string](t, b, `[...document.querySelectorAll("main tr")].find(tr => tr.textContent.includes(`+js(model)+`)).querySelector('a[href^="/vendor/deposits/new"]').href`)
	productID := Eval[string](t, b, `new URL(`+js(deposit)+`).searchParams.get("product")`)

	dir := t.TempDir()
	var paths []string
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	b.Navigate(t, deposit)
	b.CheckA11y(t)
	b.Do(t, "choose files", chromedp.SetUploadFiles(chromedp.ID("files"), paths))
	b.WaitFor(t, "the per-file kind choices", `document.querySelectorAll("#file-kinds select").length === `+js(len(files)))
	b.CheckA11y(t)
	b.Screenshot(t, "deposit-form")
	// Record the progress bar's values while the upload runs.
	b.Do(t, "watch the progress bar", chromedp.Evaluate[chromedp.Void](`sessionStorage.removeItem("progress"); new MutationObserver(() => sessionStorage.setItem("progress", (sessionStorage.getItem("progress") || "") + " " + document.getElementById("upload-progress").value)).observe(document.getElementById("upload-progress"), {attributes: true}); true`))
	b.Do(t, "start the upload", chromedp.Click(chromedp.CSS(`#deposit-form button[type="submit"]`)))
	b.WaitFor(t, "the sealed deposit", `location.search.includes("done=deposit") || (document.getElementById("upload-message") && document.getElementById("upload-message").classList.contains("error"))`)
	if msg := Eval[string](t, b, `location.search.includes("done=deposit") ? "" : document.getElementById("upload-message").textContent`); msg != "" {
		t.Fatalf("deposit upload failed in the browser: %s", msg)
	}
	progress := strings.Fields(Eval[string](t, b, `sessionStorage.getItem("progress") || ""`))
	if len(progress) == 0 || progress[len(progress)-1] != "100" {
		t.Errorf("the progress bar went through %v, want it to end at 100", progress)
	}
	b.WaitFor(t, "the receipt", `[...document.querySelectorAll("main article")].some(a => a.textContent.includes(`+js(productID)+`) && a.textContent.includes("Manifest sha256"))`)
	b.CheckA11y(t)
	b.Screenshot(t, "vendor-receipt")
	return productID
}

// MaintainerBuilds is the maintainer's path: log in, submit repo at ref
// (recipe at path, empty for the default), land on the build page and
// wait until it shows a verdict, waiting at most wait. It returns the
// build page URL and the verdict text.
func MaintainerBuilds(t testing.TB, b *Browser, base, token, repo, ref, path string, wait time.Duration) (string, string) {
	t.Helper()
	Login(t, b, base, token)
	b.Navigate(t, base+"/maintainer")
	b.CheckA11y(t)
	b.Screenshot(t, "maintainer")
	steps := []chromedp.Action[chromedp.Void]{chromedp.SendKeys(chromedp.ID("repo"), repo), chromedp.SendKeys(chromedp.ID("ref"), ref)}
	if path != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.ID("path"), path))
	}
	steps = append(steps, chromedp.Submit(chromedp.ID("repo")))
	b.Do(t, "submit the recipe", steps...)
	b.WaitFor(t, "the build page", `location.pathname.startsWith("/builds/")`)
	old := b.Timeout
	b.Timeout = wait
	b.WaitFor(t, "the build's verdict", `!!document.querySelector("#build-status [data-finished]")`)
	b.Timeout = old
	url := Eval[string](t, b, `location.href`)
	verdict := b.Text(t, "#verdict-text")
	b.CheckA11y(t)
	b.Screenshot(t, "build")
	return url, verdict
}
