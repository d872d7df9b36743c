package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
)

const rightsGrant = "Acme Corp allows the files marked public to be redistributed under CC-BY-4.0, and drivers/ to be used as build inputs for Acme Cam firmware only.\n"

// TestABuildOnlyFileIsRefusedToThePublicAndServedToABuilderOnlyWithinItsJob
// holds the rights classes on the real server, on both backends: a vendor
// deposits with `--rights` and `--grant`; once released, the build-only
// and private files are refused to anonymous, maintainer and
// vendor-of-another-org callers and to builders asking by digest; a recipe
// must declare the build-only input; the builder holding a job of that
// recipe gets it through the job, another builder does not. A deposit
// without rights publishes nothing on release.
func TestABuildOnlyFileIsRefusedToThePublicAndServedToABuilderOnlyWithinItsJob(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--allow-local-repos", "--local-builders", "0")
			srv := testenv.Serve(t, opts)
			adm := func(method, path string, body, out any) int {
				t.Helper()
				return apiJSON(t, method, srv.URL+path, srv.Token, body, out)
			}
			for _, org := range [][2]string{{"acme", "vendor"}, {"other", "vendor"}, {"acme-lab", "operator"}, {"other-lab", "operator"}} {
				if code := adm("POST", "/v1/admin/orgs", map[string]string{"id": org[0], "kind": org[1]}, nil); code != 201 {
					t.Fatalf("create org %s: %d", org[0], code)
				}
			}
			token := func(name, role, org, operator string) string {
				t.Helper()
				var out struct {
					Token string `json:"token"`
				}
				spec := map[string]string{"name": name, "role": role, "org": org}
				if operator != "" {
					spec["operator"] = operator
				}
				if code := adm("POST", "/v1/admin/tokens", spec, &out); code != 201 {
					t.Fatalf("token %s: %d", name, code)
				}
				return out.Token
			}
			vendor := token("acme", "vendor", "acme", "")
			otherVendor := token("other", "vendor", "other", "")
			maintainer := token("maint", "maintainer", "acme", "")
			holder := token("b-acme", "builder", "acme", "acme-lab")
			otherBuilder := token("b-other", "builder", "other", "other-lab")
			vs := []string{"--server", srv.URL, "--token", vendor}
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:acme:cam"}, vs...)...)

			dir := t.TempDir()
			files := map[string]string{
				"docs/readme.md":   "# Acme Cam\n",
				"drivers/eth.c":    "int eth_init(void) { return 42; }\n",
				"keys/signing.key": "-----BEGIN ACME SIGNING KEY-----\n",
			}
			src := filepath.Join(dir, "sunset")
			for p, c := range files {
				writeFile(t, filepath.Join(src, p), []byte(c))
			}
			grantFile := filepath.Join(dir, "grant.txt")
			writeFile(t, grantFile, []byte(rightsGrant))
			depositID := func(out string) string {
				m := regexp.MustCompile(`deposit (\S+) committed`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no deposit id in %q", out)
				}
				return m[1]
			}
			out, _ := afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-cam", "--policy", "immediate",
				"--rights", "**=public", "--rights", "drivers/**=build-only", "--rights", "keys/**=private", "--grant", grantFile,
				"--state", filepath.Join(dir, "state1"), "--receipt", filepath.Join(dir, "r1.json"), src + "/"}, vs...)...)
			dep := depositID(out)
			sum := func(p string) string {
				s := sha256.Sum256([]byte(files[p]))
				return hex.EncodeToString(s[:])
			}

			read := func(tok, path string) (int, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", srv.URL+path, nil)
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			callers := []struct {
				name, token string
				owner       bool
			}{
				{"an anonymous caller", "", false},
				{"a maintainer", maintainer, false},
				{"a vendor of another org", otherVendor, false},
				{"a builder outside a job", holder, false},
				{"the depositing vendor", vendor, true},
				{"an admin", srv.Token, true},
			}
			for _, c := range callers {
				for path, public := range map[string]bool{"docs/readme.md": true, "drivers/eth.c": false, "keys/signing.key": false} {
					t.Run(c.name+" reading "+path, func(t *testing.T) {
						code, body := read(c.token, "/v1/deposits/"+dep+"/files/"+path)
						if c.owner || public {
							if code != 200 || body != files[path] {
								t.Fatalf("%d %q, want the file", code, body)
							}
							return
						}
						if code != 404 || strings.Contains(body, files[path]) {
							t.Fatalf("%d %q, want 404", code, body)
						}
					})
				}
			}
			t.Run("builders cannot fetch the build-only or private file by digest", func(t *testing.T) {
				for _, tok := range []string{holder, otherBuilder} {
					for _, p := range []string{"drivers/eth.c", "keys/signing.key"} {
						if code, body := read(tok, "/v1/blobs/sha256:"+sum(p)); code != 404 || strings.Contains(body, files[p]) {
							t.Errorf("GET /v1/blobs of %s: %d %q", p, code, body)
						}
					}
				}
			})
			t.Run("the deposit shows its rules and grant, and each file's class", func(t *testing.T) {
				var d struct {
					Rights   []struct{ Pattern, Rights string } `json:"rights"`
					Grant    string                             `json:"grant"`
					Manifest []struct{ Path, Rights string }    `json:"manifest"`
				}
				if code := apiJSON(t, "GET", srv.URL+"/v1/deposits/"+dep, "", nil, &d); code != 200 || d.Grant != rightsGrant || len(d.Rights) != 3 {
					t.Fatalf("%d %+v", code, d)
				}
				for _, m := range d.Manifest {
					want := map[string]string{"docs/readme.md": "public", "drivers/eth.c": "build-only", "keys/signing.key": "private"}[m.Path]
					if m.Rights != want {
						t.Errorf("%s: %q, want %s", m.Path, m.Rights, want)
					}
				}
			})

			commit := func(name, rights string) string {
				t.Helper()
				y := fmt.Sprintf(`name: acme-fw
version: 1.0.0
products: [acme-cam]
license: CC0-1.0
toolchain: {name: busybox}
inputs:
  escrow:
    - {digest: "sha256:%s", as: drivers/eth.c%s}
steps:
  - cp /inputs/escrow/drivers/eth.c /out/firmware.bin
outputs:
  - {path: firmware.bin, kind: firmware}
limits: {timeout: 1m, memory: 256MiB}
`, sum("drivers/eth.c"), rights)
				repo := filepath.Join(dir, name+".git")
				if _, err := recipes.CommitTree(context.Background(), repo, fstest.MapFS{"afterlife.yaml": {Data: []byte(y)}}, name, time.Unix(1_700_000_000, 0)); err != nil {
					t.Fatal(err)
				}
				return "file://" + repo
			}
			ms := []string{"--server", srv.URL, "--token", maintainer}
			t.Run("a recipe that does not declare the build-only input is refused", func(t *testing.T) {
				_, stderr := afterlife(t, false, append([]string{"recipe", "submit", "--repo", commit("undeclared", ""), "--ref", "HEAD"}, ms...)...)
				if !strings.Contains(stderr, "rights: build-only") {
					t.Fatalf("the refusal does not say how to declare it:\n%s", stderr)
				}
			})
			out, _ = afterlife(t, true, append([]string{"recipe", "submit", "--repo", commit("declared", ", rights: build-only"), "--ref", "HEAD"}, ms...)...)
			var sub struct {
				BuildID string `json:"build_id"`
			}
			if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.BuildID == "" {
				t.Fatalf("no build id (%v): %s", err, out)
			}
			for _, tok := range []string{holder, otherBuilder} {
				pub, _, _ := ed25519.GenerateKey(rand.Reader)
				reg := builder.Registration{Name: "b", PublicKey: keys.PublicKeyString(pub), Arch: "amd64", Toolchains: []builder.ToolchainInfo{{Name: "busybox", Version: "1.36.1"}}}
				if code := apiJSON(t, "POST", srv.URL+"/v1/builders", tok, reg, nil); code != 200 {
					t.Fatalf("register builder: %d", code)
				}
			}
			var job builder.Job
			if code := apiJSON(t, "POST", srv.URL+"/v1/jobs/next", holder, map[string]int{"wait_ms": 5000}, &job); code != 200 {
				t.Fatalf("next: %d", code)
			}
			var eth *builder.Input
			for i, in := range job.Spec.Inputs {
				if in.Mount == "escrow/drivers/eth.c" {
					eth = &job.Spec.Inputs[i]
				}
			}
			if eth == nil || !eth.BuildOnly {
				t.Fatalf("the job's inputs %+v do not mark drivers/eth.c build-only", job.Spec.Inputs)
			}
			input := "/v1/jobs/" + job.ID + "/inputs/sha256:" + sum("drivers/eth.c")
			t.Run("the builder holding the job gets the build-only input through it", func(t *testing.T) {
				if code, body := read(holder, input); code != 200 || body != files["drivers/eth.c"] {
					t.Fatalf("%d %q", code, body)
				}
			})
			t.Run("another builder gets nothing through a job it does not hold", func(t *testing.T) {
				if code, body := read(otherBuilder, input); (code != 409 && code != 404) || strings.Contains(body, files["drivers/eth.c"]) {
					t.Fatalf("%d %q", code, body)
				}
			})
			t.Run("the build page says it used vendor-permitted build-only inputs and quotes the grant", func(t *testing.T) {
				code, page := read("", "/builds/"+sub.BuildID)
				if code != 200 || !strings.Contains(page, "Vendor-permitted build-only inputs") || !strings.Contains(page, "drivers/ to be used as build inputs for Acme Cam firmware only") {
					t.Fatalf("%d: the build page does not state the build-only inputs and their grant:\n%s", code, page)
				}
				if strings.Contains(page, files["drivers/eth.c"]) {
					t.Fatal("the build page shows the build-only file's content")
				}
			})
			t.Run("the product page quotes the grant", func(t *testing.T) {
				if code, page := read("", "/products/acme-cam"); code != 200 || !strings.Contains(page, "drivers/ to be used as build inputs for Acme Cam firmware only") {
					t.Fatalf("%d: the product page does not quote the grant", code)
				}
			})
			t.Run("the holder gets no private file through its job", func(t *testing.T) {
				if code, body := read(holder, "/v1/jobs/"+job.ID+"/inputs/sha256:"+sum("keys/signing.key")); code != 404 || strings.Contains(body, files["keys/signing.key"]) {
					t.Fatalf("%d %q", code, body)
				}
			})
			t.Run("a deposit without rights publishes nothing on release", func(t *testing.T) {
				plain := filepath.Join(dir, "plain")
				writeFile(t, filepath.Join(plain, "notes.txt"), []byte("no rights said\n"))
				out, _ := afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-cam", "--policy", "immediate",
					"--state", filepath.Join(dir, "state2"), "--receipt", filepath.Join(dir, "r2.json"), plain + "/"}, vs...)...)
				d2 := depositID(out)
				var d struct {
					State string `json:"state"`
				}
				if code := apiJSON(t, "GET", srv.URL+"/v1/deposits/"+d2, "", nil, &d); code != 200 || d.State != "released" {
					t.Fatalf("%d %+v, want a released deposit", code, d)
				}
				for _, tok := range []string{"", maintainer, otherVendor} {
					if code, _ := read(tok, "/v1/deposits/"+d2+"/files/notes.txt"); code != 404 {
						t.Errorf("reading the unclassed file: %d, want 404", code)
					}
				}
				if code, body := read(vendor, "/v1/deposits/"+d2+"/files/notes.txt"); code != 200 || body != "no rights said\n" {
					t.Errorf("the vendor reads its own file: %d %q", code, body)
				}
				r, err := os.ReadFile(filepath.Join(dir, "r2.json"))
				if err != nil || !strings.Contains(string(r), "payload") {
					t.Fatalf("receipt: %v", err)
				}
			})
		})
	}
}
