package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/web/browsertest"
)

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// notPages are public GET routes declared as pages that are not pages a
// person reads: the stylesheet and scripts.
var notPages = map[string]string{
	"/static/*filepath": "the stylesheet and scripts, shown on every page",
}

// TestAnOwnerFollowsTheProductPageAndEveryPublicPageIsPictured is a device
// owner's journey on a real `afterlife serve` with a small story (a
// vendor's product with fwupd ids and a released deposit, a reproducible
// build, releases, a device's install reports, a phased rollout), on each
// database: the owner copies the updater's commands from "How your device
// gets updates" and they work as written; the install reports and the
// rollout are charts with their numbers in the page's JSON; an admin sees
// the farm's charts; and every public page the server declares is checked
// with axe-core and pictured at 1280 and 390 px in test-artifacts/ (a
// public page without a picture fails the test).
func TestAnOwnerFollowsTheProductPageAndEveryPublicPageIsPictured(t *testing.T) {
	var pages []string
	for _, d := range wiredSystem(t).api.Declarations() {
		if d.Method == http.MethodGet && d.Op.Page && d.Op.Public {
			if _, skip := notPages[d.Path]; !skip {
				pages = append(pages, d.Path)
			}
		}
	}
	sort.Strings(pages)
	dev := deviceBinary(t)
	b := browsertest.Start(t)
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--allow-local-repos", "--local-builders", "2")
			srv := testenv.Serve(t, opts)
			admin := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--name", "ACME Devices", "--kind", "vendor"}, admin...)...)
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam 2",
				"--device-ids", "usb:acme:cam", "--fwupd-ids", "6f1ee2a4-1ac4-5ae1-a4a4-9f1ea1a7e0c1"}, admin...)...)
			pkg := t.TempDir()
			os.WriteFile(filepath.Join(pkg, "datasheet.md"), []byte("# Cam 2\nSoC: ARMv7\n"), 0o644)
			out, _ := afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-cam", "--policy", "immediate", "--yes",
				"--state", filepath.Join(t.TempDir(), "state"), "--receipt", filepath.Join(t.TempDir(), "receipt.json"), pkg}, admin...)...)
			deposit := regexp.MustCompile(`dep_[0-9a-z]+`).FindString(out)
			if deposit == "" {
				t.Fatalf("the deposit printed no id:\n%s", out)
			}
			build := submitRecipe(t, admin, spoofRecipe, "acme-fw 1.0.0")
			waitReproducible(t, srv, build, 3*time.Minute)
			var bj struct {
				Jobs []struct {
					ID string `json:"id"`
				} `json:"jobs"`
			}
			apiJSON(t, "GET", srv.URL+"/v1/builds/"+build, "", nil, &bj)
			if len(bj.Jobs) == 0 {
				t.Fatalf("build %s has no jobs", build)
			}
			publish := func(v string) string {
				var rel struct {
					ID string `json:"id"`
				}
				req := map[string]string{"build_id": build, "product": "acme-cam", "version": v, "channel": "stable"}
				if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, req, &rel); code != http.StatusCreated {
					t.Fatalf("publish %s: %d", v, code)
				}
				return rel.ID
			}
			publish("1.0.0")

			state := filepath.Join(t.TempDir(), "device")
			device := func(t *testing.T, wantOK bool, args ...string) string {
				t.Helper()
				cmd := exec.Command(dev, args...)
				cmd.Env = append(os.Environ(), "AFTERLIFE_DEVICE_STATE="+state, "AFTERLIFE_REGISTRY=")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); (err == nil) != wantOK {
					t.Fatalf("afterlife-device %s: %v, want success=%v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantOK, stdout.String(), stderr.String())
				}
				return stdout.String() + stderr.String()
			}

			t.Run("the updater's commands on the product page work as written", func(t *testing.T) {
				b.Navigate(t, srv.URL+"/products/acme-cam")
				b.WaitFor(t, "the update steps", `!!document.getElementById("cmd-init")`)
				text := b.Text(t, "#cmd-init")
				args := strings.Fields(strings.ReplaceAll(text, "\\\n", " "))
				if len(args) < 2 || args[0] != "afterlife-device" || !strings.Contains(text, "--registry "+srv.URL) || !strings.Contains(text, "--product acme-cam") {
					t.Fatalf("the page's init command is %q", text)
				}
				device(t, true, args[1:]...)
				if got := b.Text(t, "#cmd-run"); got != "afterlife-device run" {
					t.Errorf("the page's run command is %q", got)
				}
				// run keeps checking; one update is what it does each time.
				if out := device(t, true, "update"); !strings.Contains(out, "installed acme-cam 1.0.0") {
					t.Fatalf("update after the page's init said %q", out)
				}
				for _, want := range []string{"With fwupd", "fwupdmgr refresh", "By hand", "sha256sum FILE", "afterlife mirror pull --from " + srv.URL} {
					if !strings.Contains(b.Text(t, "#how-updates"), want) {
						t.Errorf("the update steps lack %q", want)
					}
				}
			})

			failing := publish("1.1.0")
			device(t, false, "update", "--health-check", "echo no video >&2; exit 1")
			rollout := publish("1.2.0")
			if code := apiJSON(t, "POST", srv.URL+"/v1/releases/"+rollout+"/rollout", srv.Token,
				map[string]any{"stages": []map[string]int{{"percent": 10, "dwell_seconds": 3600}, {"percent": 50, "dwell_seconds": 3600}, {"percent": 100}}}, nil); code != http.StatusOK {
				t.Fatalf("start the rollout: %d", code)
			}

			t.Run("install reports and the rollout are charts whose numbers are in the page's JSON", func(t *testing.T) {
				var ov struct {
					Releases []struct {
						ID           string `json:"id"`
						Version      string `json:"version"`
						ReportsByDay []struct {
							Success    int `json:"success"`
							Failure    int `json:"failure"`
							RolledBack int `json:"rolled_back"`
						} `json:"reports_by_day"`
						RolloutProgress []struct {
							Percent int  `json:"percent"`
							Reached bool `json:"reached"`
						} `json:"rollout_progress"`
					} `json:"releases"`
				}
				apiJSON(t, "GET", srv.URL+"/v1/products/acme-cam/overview", "", nil, &ov)
				for _, r := range ov.Releases {
					switch r.Version {
					case "1.0.0":
						if len(r.ReportsByDay) != 1 || r.ReportsByDay[0].Success != 1 {
							t.Errorf("1.0.0's reports per day in the JSON: %+v", r.ReportsByDay)
						}
					case "1.1.0":
						if r.ID != failing || len(r.ReportsByDay) != 1 || r.ReportsByDay[0].RolledBack != 1 || r.ReportsByDay[0].Failure != 0 {
							t.Errorf("1.1.0's reports per day in the JSON: %+v", r.ReportsByDay)
						}
					case "1.2.0":
						if p := r.RolloutProgress; len(p) != 3 || !p[0].Reached || p[1].Reached || p[2].Percent != 100 {
							t.Errorf("1.2.0's rollout in the JSON: %+v", p)
						}
					}
				}
				b.Navigate(t, srv.URL+"/products/acme-cam")
				b.WaitFor(t, "the charts", `document.querySelectorAll("figure.chart svg").length >= 3`)
				type drawn struct {
					Bars   int
					Width  float64
					Label  string
					Values string
				}
				chart := func(id string) drawn {
					return browsertest.Eval[drawn](t, b, `(() => {
						const f = document.getElementById(`+jsString(id)+`);
						if (!f) return {Bars: -1};
						const svg = f.querySelector("svg");
						const ids = svg.getAttribute("aria-labelledby").split(" ");
						return {Bars: svg.querySelectorAll("rect.bar").length, Width: svg.getBoundingClientRect().width,
							Label: ids.map(i => document.getElementById(i).textContent).join(" | "),
							Values: [...f.querySelectorAll("tbody tr")].map(tr => [...tr.children].map(c => c.textContent.trim()).join(" ")).join(" / ")};
					})()`)
				}
				for id, want := range map[string]drawn{
					"reports-1.0.0": {Bars: 1, Label: "1 install worked, 0 installs failed, 0 installs failed and went back"},
					"reports-1.1.0": {Bars: 1, Label: "0 installs worked, 0 installs failed, 1 install failed and went back"},
					"rollout-1.2.0": {Bars: 3, Label: "It has reached stage 1 of 3.", Values: "10 0"},
				} {
					got := chart(id)
					if got.Bars != want.Bars || got.Width < 100 || !strings.Contains(got.Label, want.Label) || !strings.Contains(got.Values, want.Values) {
						t.Errorf("chart %s drawn as %+v, want %d bars, a title and description saying %q, numbers %q", id, got, want.Bars, want.Label, want.Values)
					}
				}
				b.CheckA11y(t)
			})

			t.Run("the admin page charts the farm's queue and build durations", func(t *testing.T) {
				browsertest.Login(t, b, srv.URL, srv.Token)
				b.Navigate(t, srv.URL+"/admin")
				b.WaitFor(t, "the farm's charts", `!!document.getElementById("farm-queue") && !!document.getElementById("farm-durations")`)
				if n := browsertest.Eval[int](t, b, `document.querySelectorAll("#farm-durations rect.bar").length`); n != 1 {
					t.Errorf("the durations chart draws %d bars, want the one build", n)
				}
				if href := browsertest.Eval[string](t, b, `(document.querySelector('link[rel=alternate][type="application/json"]') || {}).href || ""`); !strings.HasSuffix(href, "/v1/farm/activity") {
					t.Errorf("the admin page's JSON is %q", href)
				}
				var act struct {
					Queue  []struct{} `json:"queue"`
					Builds []struct {
						ID string `json:"id"`
					} `json:"builds"`
				}
				apiJSON(t, "GET", srv.URL+"/v1/farm/activity", "", nil, &act)
				if len(act.Queue) != 25 || len(act.Builds) != 1 || act.Builds[0].ID != build {
					t.Errorf("/v1/farm/activity = %+v", act)
				}
				b.CheckA11y(t)
				b.Screenshot(t, "admin-farm")
				browsertest.Logout(t, b)
			})

			t.Run("every public page passes the accessibility check and is pictured at 1280 and 390 px", func(t *testing.T) {
				urls := map[string]string{
					"/":                         "/",
					"/search":                   "/search?q=cam",
					"/products/:id":             "/products/acme-cam",
					"/builds/:id":               "/builds/" + build,
					"/builds/:id/jobs/:job/log": "/builds/" + build + "/jobs/" + bj.Jobs[0].ID + "/log",
					"/deposits/:id":             "/deposits/" + deposit,
					"/login":                    "/login",
				}
				shot := strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), "and-", "")
				for _, p := range pages {
					u, ok := urls[p]
					if !ok {
						t.Errorf("the public page %s has no screenshot: give it an address in this test's urls", p)
						continue
					}
					b.Navigate(t, srv.URL+u)
					b.CheckA11y(t)
					page := strings.NewReplacer("/", "-", ":", "").Replace(p)
					if p == "/" {
						page = "-home"
					}
					files := b.Screenshot(t, "public-"+shot+page)
					for _, f := range files {
						if info, err := os.Stat(f); err != nil || info.Size() == 0 {
							t.Errorf("screenshot %s: %v", f, err)
						}
					}
				}
			})
		})
	}
}
