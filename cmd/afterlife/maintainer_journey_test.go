package main

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/examples"
	"github.com/afterlife-oss/afterlife/web/browsertest"
)

// recipeRepo commits the unreproducible example, retargeted at product and
// with its steps edited by edit, into a fresh git repository.
func recipeRepo(t *testing.T, product string, edit func(string) string) string {
	t.Helper()
	src := t.TempDir()
	ex, err := examples.Dir("unreproducible")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(src, ex); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(src, "afterlife.yaml")
	y, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(y), "products: [demo-cam]", "products: ["+product+"]", 1)
	if s == string(y) {
		t.Fatal("the example's products moved; update this test")
	}
	if err := os.WriteFile(file, []byte(edit(s)), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "recipe.git")
	if _, err := recipes.CommitTree(context.Background(), repo, os.DirFS(src), "recipe", time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	return repo
}

// A maintainer, with only --help as a guide: submits recipes from the
// command line and the web page and finds them listed in both; reads a
// short verdict with the build's address; publishes once an admin grants
// the product, without repeating the recipe's version; loses the grant.
func TestAMaintainersJourney(t *testing.T) {
	unrepro := recipeRepo(t, "acme-cam", func(s string) string { return s })
	repro := recipeRepo(t, "acme-cam", func(s string) string {
		s = strings.Replace(s, "  - date +%s%N > /out/stamp.txt\n", "", 1)
		return strings.Replace(s, "  - {path: stamp.txt, kind: other}\n", "", 1)
	})
	b := browsertest.Start(t)
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--allow-local-repos", "--local-builders", "2")
			srv := testenv.Serve(t, opts)
			admin := []string{"--server", srv.URL, "--token", srv.Token}
			token := func(args ...string) []string {
				out, _ := afterlife(t, true, append(append([]string{"admin", "token", "create"}, args...), admin...)...)
				return []string{"--server", srv.URL, "--token", strings.TrimSpace(out)}
			}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme", "--kind", "vendor"}, admin...)...)
			afterlife(t, true, append([]string{"admin", "org", "create", "openfw", "--kind", "maintainers"}, admin...)...)
			vendor := token("--name", "acme-ci", "--role", "vendor", "--org", "acme")
			alice := token("--name", "alice", "--role", "maintainer", "--org", "openfw")
			bob := token("--name", "bob", "--role", "maintainer")
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "CAM-200"}, vendor...)...)

			t.Run("recipe inputs prints a released deposit's files as an inputs block lint accepts", func(t *testing.T) {
				dir := t.TempDir()
				pkg := filepath.Join(dir, "cam-src")
				if err := os.MkdirAll(filepath.Join(pkg, "firmware"), 0o755); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(pkg, "firmware", "main.c"), []byte("int main(void) { return 0; }\n"), 0o644)
				os.WriteFile(filepath.Join(pkg, "datasheet.pdf"), []byte("%PDF datasheet"), 0o644)
				out, _ := afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-cam", "--policy", "immediate",
					"--state", filepath.Join(dir, "state"), "--receipt", filepath.Join(dir, "receipt.json"), pkg}, vendor...)...)
				m := regexp.MustCompile(`dep_[0-9a-z]+`).FindString(out)
				if m == "" {
					t.Fatalf("the deposit printed no id:\n%s", out)
				}
				resp, err := http.Get(srv.URL + "/deposits/" + m)
				if err != nil {
					t.Fatal(err)
				}
				files, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(files), `href="/v1/deposits/`+m+`/files/firmware/main.c"`) {
					t.Errorf("the released files page: %d\n%.600s", resp.StatusCode, files)
				}
				block, _ := afterlife(t, true, "recipe", "inputs", m, "--kind", "source", "--under", "vendor", "--server", srv.URL)
				if !strings.Contains(block, `as: "vendor/firmware/main.c" # source`) || strings.Contains(block, "datasheet") {
					t.Errorf("recipe inputs --kind source --under vendor printed:\n%s", block)
				}
				ex, err := examples.Dir("unreproducible")
				if err != nil {
					t.Fatal(err)
				}
				y, err := fs.ReadFile(ex, "afterlife.yaml")
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(dir, "afterlife.yaml")
				os.WriteFile(file, append(y, block...), 0o644)
				if out, _ := afterlife(t, true, "recipe", "lint", file); strings.Contains(out, "error") {
					t.Errorf("lint of the recipe with the printed inputs:\n%s", out)
				}
			})
			var unreproID string
			t.Run("submit --wait prints a short verdict with the build's web address", func(t *testing.T) {
				out, stderr := afterlife(t, false, append([]string{"recipe", "submit", "--repo", "file://" + unrepro, "--ref", "HEAD", "--wait", "10m"}, alice...)...)
				m := regexp.MustCompile(`build (bld_\S+): unreproducible`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("submit --wait printed:\n%s\nstderr:\n%s", out, stderr)
				}
				unreproID = m[1]
				for _, want := range []string{"  differs  stamp.txt", "  web      " + srv.URL + "/builds/" + unreproID, "afterlife build show " + unreproID} {
					if !strings.Contains(out, want) {
						t.Errorf("the summary lacks %q:\n%s", want, out)
					}
				}
				if n := strings.Count(out, "\n"); n > 12 {
					t.Errorf("the summary is %d lines:\n%s", n, out)
				}
				if !strings.Contains(stderr, srv.URL+"/builds/"+unreproID) || !strings.Contains(stderr, "is unreproducible") {
					t.Errorf("stderr:\n%s", stderr)
				}
			})
			t.Run("recipe list shows the caller's submissions and nobody else's", func(t *testing.T) {
				out, _ := afterlife(t, true, append([]string{"recipe", "list", "--output", "table"}, alice...)...)
				if !strings.Contains(out, unreproID) || !strings.Contains(out, "unreproducible-demo") {
					t.Errorf("alice's recipe list:\n%s", out)
				}
				out, _ = afterlife(t, true, append([]string{"recipe", "list", "--output", "table"}, bob...)...)
				if strings.Contains(out, unreproID) || !strings.Contains(out, "You have not submitted a recipe yet") {
					t.Errorf("bob's recipe list:\n%s", out)
				}
				_, stderr := afterlife(t, false, "recipe", "list", "--server", srv.URL, "--token", "")
				if !strings.Contains(stderr, "token") {
					t.Errorf("an anonymous recipe list says %q", stderr)
				}
			})
			var reproID string
			t.Run("the maintainer page lists recipes submitted from the command line and from the page", func(t *testing.T) {
				url, verdict := browsertest.MaintainerBuilds(t, b, srv.URL, strings.TrimSpace(alice[3]), "file://"+repro, "HEAD", "", 10*time.Minute)
				if !strings.Contains(verdict, "Reproducible") {
					t.Fatalf("the web submission's verdict: %q", verdict)
				}
				reproID = url[strings.LastIndex(url, "/")+1:]
				b.Navigate(t, srv.URL+"/maintainer")
				for _, id := range []string{unreproID, reproID} {
					if !browsertest.Eval[bool](t, b, `!!document.querySelector('section[aria-labelledby="builds"] a[href="/builds/`+id+`"]')`) {
						t.Errorf("the maintainer page does not list %s:\n%s", id, b.Text(t, "main"))
					}
				}
				if strings.Contains(b.Text(t, "main"), "You have not submitted a recipe yet") {
					t.Errorf("the maintainer page says nothing was submitted")
				}
				b.CheckA11y(t)
				b.Screenshot(t, "maintainer-with-recipes")
				browsertest.Logout(t, b)
			})
			t.Run("an admin grants the product; the release takes the recipe's version, its notes and risks reach the product page; a revoked grant publishes nothing", func(t *testing.T) {
				publish := append([]string{"release", "publish", "--build", reproID, "--product", "acme-cam"}, alice...)
				if _, stderr := afterlife(t, false, publish...); !strings.Contains(stderr, "not a maintainer of product acme-cam") {
					t.Errorf("publishing without a grant says %q", stderr)
				}
				out, _ := afterlife(t, true, append([]string{"admin", "maintainer", "grant", "acme-cam", "--name", "alice"}, admin...)...)
				if !strings.Contains(out, "token alice may now publish releases of acme-cam") {
					t.Errorf("grant says %q", out)
				}
				out, _ = afterlife(t, true, append([]string{"admin", "maintainer", "list", "acme-cam", "--output", "table"}, admin...)...)
				if !strings.Contains(out, "token alice") {
					t.Errorf("maintainer list:\n%s", out)
				}
				out, _ = afterlife(t, true, publish...)
				if !strings.Contains(out, "acme-cam 0.0.1 on testing") {
					t.Errorf("publish without --version says %q, want the recipe's 0.0.1", out)
				}
				resp, err := http.Get(srv.URL + "/products/acme-cam")
				if err != nil {
					t.Fatal(err)
				}
				page, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, want := range []string{"<p>Do not install: this recipe exists to show an unreproducible build.</p>", "From the people who build this firmware", "None: it produces no firmware.",
					"The vendor&#39;s files were made public", "The vendor published them straight away.", "New firmware published", "how it was built"} {
					if !strings.Contains(string(page), want) {
						t.Errorf("the product page lacks %q", want)
					}
				}
				text := regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(string(page), " ")
				for _, jargon := range []string{"dep_", "bld_", "Policy fired", "handed-over", "Escrow released", "maintainer:"} {
					if strings.Contains(text, jargon) {
						t.Errorf("the product page shows owners %q", jargon)
					}
				}
				out, _ = afterlife(t, true, append([]string{"admin", "maintainer", "revoke", "acme-cam", "--name", "alice"}, admin...)...)
				if !strings.Contains(out, "token alice may no longer publish releases of acme-cam") {
					t.Errorf("revoke says %q", out)
				}
				if out, _ = afterlife(t, true, append([]string{"admin", "maintainer", "list", "acme-cam", "--output", "table"}, admin...)...); strings.Contains(out, "alice") {
					t.Errorf("after the revocation the list is:\n%s", out)
				}
				if _, stderr := afterlife(t, false, append(publish, "--version", "0.0.2")...); !strings.Contains(stderr, "not a maintainer") {
					t.Errorf("publishing after the revocation says %q", stderr)
				}
				if _, stderr := afterlife(t, false, append([]string{"admin", "maintainer", "revoke", "acme-cam", "--name", "alice"}, admin...)...); !strings.Contains(stderr, "is not a maintainer") {
					t.Errorf("revoking twice says %q", stderr)
				}
			})
		})
	}
}
