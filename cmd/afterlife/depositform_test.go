package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/web/browsertest"
)

// TestTheWebDepositFormTakesEveryPolicyAndWholeFolders is the vendor's
// web deposit on a real server, on both backends: the form shows only the
// chosen policy's fields (with script and without); a whole folder is
// deposited with its files' paths inside it; a dead-man policy of hours,
// a date policy with its time of day and a quorum naming its trustees are
// sealed as chosen and read back in words ("every 12 hours, 6 hours
// grace", "30 June 2031 at 15:30 UTC"); the server refuses what the form
// cannot check (more approvals than trustees, a path leaving the folder).
func TestTheWebDepositFormTakesEveryPolicyAndWholeFolders(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--local-builders", "0")
			srv := testenv.Serve(t, opts)
			as := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor"}, as...)...)
			out, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", "acme-web", "--role", "vendor", "--org", "acme"}, as...)...)
			vendor := strings.TrimSpace(out)
			afterlife(t, true, "vendor", "product", "--id", "acme-hub", "--vendor", "acme", "--model", "Hub 9", "--device-id", "usb:acce:0009", "--server", srv.URL, "--token", vendor)

			b := browsertest.Start(t)
			browsertest.Login(t, b, srv.URL, vendor)
			form := srv.URL + "/vendor/deposits/new?product=acme-hub"
			shown := func() string {
				return browsertest.Eval[string](t, b, `[...document.querySelectorAll(".policy-fields")].filter(d => getComputedStyle(d).display !== "none").map(d => d.dataset.policy).join(" ")`)
			}
			choose := func(kind string) {
				b.Do(t, "choose the "+kind+" policy", chromedp.Click(chromedp.CSS(`input[name=policy][value="`+kind+`"]`)))
			}

			t.Run("only the chosen policy's fields show, with script and without", func(t *testing.T) {
				b.Navigate(t, form)
				b.CheckA11y(t)
				if got := shown(); got != "dead-man" {
					t.Errorf("with dead-man chosen the form shows %q", got)
				}
				for _, kind := range []string{"quorum", "date", "immediate"} {
					choose(kind)
					want := kind
					if kind == "immediate" {
						want = ""
					}
					if got := shown(); got != want {
						t.Errorf("with %s chosen the form shows %q", kind, got)
					}
				}
				choose("quorum")
				b.CheckA11y(t)
				b.Screenshot(t, "deposit-form-quorum")
				scripts := func(off bool) {
					if _, err := chromedp.Call(b.Ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: off}); err != nil {
						t.Fatal(err)
					}
				}
				scripts(true)
				b.Navigate(t, form)
				b.Do(t, "choose the date policy without script", chromedp.Click(chromedp.CSS(`input[name=policy][value="date"]`)))
				if got := shown(); got != "date" {
					t.Errorf("without script, with date chosen, the form shows %q", got)
				}
				scripts(false)
			})

			// deposit fills the form with setup, chooses files and a folder
			// (of n files in all), waits until the page's script lists
			// every file (a folder is read asynchronously, and the script
			// must have taken the form before it is submitted), and submits.
			deposit := func(t *testing.T, what string, setup string, files, folder []string, n int) string {
				t.Helper()
				b.Navigate(t, form)
				b.Do(t, "fill the form for "+what, chromedp.Evaluate[chromedp.Void](setup))
				if len(files) > 0 {
					b.Do(t, "choose files", chromedp.SetUploadFiles(chromedp.ID("files"), files))
				}
				if len(folder) > 0 {
					b.Do(t, "choose a folder", chromedp.SetUploadFiles(chromedp.ID("folder"), folder))
				}
				b.WaitFor(t, "every chosen file listed", `document.querySelectorAll("#file-kinds select").length === `+strconv.Itoa(n))
				b.Do(t, "deposit", chromedp.Click(chromedp.CSS(`#deposit-form button[type="submit"]`)))
				b.WaitFor(t, "the sealed deposit or an error", `(location.search.includes("done=deposit") && document.readyState === "complete") ||
					(document.getElementById("upload-message") && document.getElementById("upload-message").classList.contains("error"))`)
				if msg := browsertest.Eval[string](t, b, `location.search.includes("done=deposit") ? "" : document.getElementById("upload-message").textContent`); msg != "" {
					return "error: " + msg
				}
				return browsertest.Eval[string](t, b, `location.hash.slice(1)`)
			}
			read := func(t *testing.T, id string) (policy string, paths []string) {
				t.Helper()
				var d struct {
					Policy   string
					Manifest []struct{ Path string }
				}
				if err := json.Unmarshal(fetch(t, srv.URL+"/v1/deposits/"+id, vendor, 200), &d); err != nil {
					t.Fatal(err)
				}
				for _, e := range d.Manifest {
					paths = append(paths, e.Path)
				}
				slices.Sort(paths)
				return d.Policy, paths
			}
			card := func(id string) string {
				b.WaitFor(t, "the deposit's card", `document.getElementById(`+jsString(id)+`) !== null`)
				return browsertest.Eval[string](t, b, `document.getElementById(`+jsString(id)+`).textContent`)
			}

			dir := t.TempDir()
			root := filepath.Join(dir, "sunset")
			for path, body := range map[string]string{"src/main.c": "int main(void) { return 0; }\n", "docs/spec.txt": "Hub 9 schematics\n", "README": "Hub 9 sunset package\n"} {
				p := filepath.Join(root, filepath.FromSlash(path))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			single := filepath.Join(dir, "notes.txt")
			if err := os.WriteFile(single, []byte("one more note\n"), 0o644); err != nil {
				t.Fatal(err)
			}

			t.Run("a folder keeps its paths and a dead-man policy of hours reads in hours", func(t *testing.T) {
				id := deposit(t, "a dead-man policy of hours", `
					document.getElementById("checkin_every").value = "12"; document.getElementById("checkin_unit").value = "hours";
					document.getElementById("grace").value = "6"; document.getElementById("grace_unit").value = "hours";
					document.getElementById("rights").value = "**=public";`, []string{single}, []string{root}, 4)
				if strings.HasPrefix(id, "error") {
					t.Fatal(id)
				}
				policy, paths := read(t, id)
				if policy != "dead-man=12h,6h" || strings.Join(paths, " ") != "README docs/spec.txt notes.txt src/main.c" {
					t.Fatalf("sealed with policy %q and paths %q", policy, paths)
				}
				if got := card(id); !strings.Contains(got, "every 12 hours, 6 hours grace") {
					t.Errorf("the vendor page says %q", got)
				}
				b.CheckA11y(t)
			})
			t.Run("a date policy keeps its time of day and says its time zone", func(t *testing.T) {
				id := deposit(t, "a date policy", `document.querySelector('input[name=policy][value="date"]').checked = true;
					document.getElementById("release_at").value = "2031-06-30T15:30";`, []string{single}, nil, 1)
				if strings.HasPrefix(id, "error") {
					t.Fatal(id)
				}
				if policy, _ := read(t, id); policy != "on=2031-06-30T15:30:00Z" {
					t.Fatalf("sealed with policy %q", policy)
				}
				if got := card(id); !strings.Contains(got, "30 June 2031 at 15:30 UTC") {
					t.Errorf("the vendor page says %q", got)
				}
			})
			t.Run("a quorum names its trustees, and asking more approvals than trustees is refused", func(t *testing.T) {
				msg := deposit(t, "too many approvals", `document.querySelector('input[name=policy][value="quorum"]').checked = true;
					document.getElementById("quorum").value = "3"; document.getElementById("trustees").value = "alice\nbob";`, []string{single}, nil, 1)
				if !strings.Contains(msg, "between 1 and 2 approvals") {
					t.Errorf("three approvals of two trustees: %q", msg)
				}
				id := deposit(t, "a quorum", `document.querySelector('input[name=policy][value="quorum"]').checked = true;
					document.getElementById("quorum").value = "2"; document.getElementById("trustees").value = "alice\nbob\n\ncarol\n";`, []string{single}, nil, 1)
				if strings.HasPrefix(id, "error") {
					t.Fatal(id)
				}
				if policy, _ := read(t, id); policy != "quorum=2/3:alice,bob,carol" {
					t.Fatalf("sealed with policy %q", policy)
				}
				if got := card(id); !strings.Contains(got, "2 of 3 trustees") {
					t.Errorf("the vendor page says %q", got)
				}
			})
			t.Run("without script the form deposits a folder with its paths, hashed by the server", func(t *testing.T) {
				if _, err := chromedp.Call(b.Ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
					t.Fatal(err)
				}
				defer chromedp.Call(b.Ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false})
				b.Navigate(t, form) // axe-core needs script: the same page passed it above
				b.Do(t, "fill the form without script",
					chromedp.Click(chromedp.CSS(`input[name=policy][value="dead-man"]`)),
					chromedp.Evaluate[chromedp.Void](`document.getElementById("checkin_every").value = "36"; document.getElementById("checkin_unit").value = "hours";
						document.getElementById("grace").value = "0"; document.getElementById("rights").value = "**=public\nsrc/**=build-only";`),
					chromedp.SetUploadFiles(chromedp.ID("folder"), []string{root}),
				)
				b.WaitFor(t, "the folder read", `document.getElementById("folder").files.length === 3`)
				b.Do(t, "submit without script", chromedp.Click(chromedp.CSS(`#deposit-form button[type="submit"]`)))
				b.WaitFor(t, "the sealed deposit", `location.search.includes("done=deposit") && document.readyState === "complete"`)
				id := browsertest.Eval[string](t, b, `location.hash.slice(1)`)
				policy, paths := read(t, id)
				if policy != "dead-man=36h,0d" || strings.Join(paths, " ") != "README docs/spec.txt src/main.c" {
					t.Fatalf("sealed without script with policy %q and paths %q", policy, paths)
				}
				var d struct {
					Manifest []struct{ Path, Kind string }
				}
				if err := json.Unmarshal(fetch(t, srv.URL+"/v1/deposits/"+id, vendor, 200), &d); err != nil {
					t.Fatal(err)
				}
				for _, e := range d.Manifest {
					if e.Path == "src/main.c" && e.Kind != "source" || e.Path == "docs/spec.txt" && e.Kind != "spec" {
						t.Errorf("%s was given kind %q", e.Path, e.Kind)
					}
				}
				if got := card(id); !strings.Contains(got, "every 1 day 12 hours, no grace") {
					t.Errorf("the vendor page says %q", got)
				}
			})
			t.Run("a path leaving the folder or an absolute one is refused by the server", func(t *testing.T) {
				b.Navigate(t, form)
				for _, path := range []string{"../etc/passwd", "/etc/passwd", "src/../../x"} {
					got := browsertest.Eval[string](t, b, `(async () => { const r = await fetch("/vendor/deposits", {method: "POST", credentials: "same-origin",
						headers: {"Content-Type": "application/json", "X-CSRF-Token": document.getElementById("deposit-form").dataset.csrf},
						body: JSON.stringify({product: "acme-hub", policy: {kind: "immediate"}, manifest: [{path: `+jsString(path)+`, size: 1, sha256: "`+strings.Repeat("ab", 32)+`", kind: "source"}]})});
						return r.status + " " + await r.text(); })()`)
					if !strings.HasPrefix(got, "400 ") {
						t.Errorf("a manifest path %q: %s", path, got)
					}
					// The form without script: the same path as a file's name.
					got = browsertest.Eval[string](t, b, `(async () => { const fd = new FormData();
						if (`+jsString(path)+` !== "/etc/passwd") fd.append("csrf", document.getElementById("deposit-form").dataset.csrf);
						fd.append("product", "acme-hub"); fd.append("policy", "immediate");
						fd.append("files", new Blob(["x"]), `+jsString(path)+`);
						const r = await fetch("/vendor/deposits", {method: "POST", credentials: "same-origin", body: fd});
						return r.status + " " + await r.text(); })()`)
					want := "400 "
					if path == "/etc/passwd" {
						want = "403 " // and a form whose first field is not its csrf token is refused before anything is read
					}
					if !strings.HasPrefix(got, want) {
						t.Errorf("a form file named %q: %.300s, want %s", path, got, want)
					}
				}
			})
		})
	}
}
