package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes/examples"
)

// receiptVerifier checks a DSSE signature with the escrow's receipt key.
type receiptVerifier struct{ pub ed25519.PublicKey }

func (v receiptVerifier) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(v.pub, data, sig) {
		return errors.New("bad signature")
	}
	return nil
}
func (v receiptVerifier) KeyID() (string, error)   { return receipt.KeyID(v.pub), nil }
func (v receiptVerifier) Public() crypto.PublicKey { return v.pub }

// TestTheSealedCompletenessCheckRebuildsTheDepositOnTheOperatorsOwnBuilder
// runs the sealed completeness check on the real server, on both backends:
// a vendor deposits the Cortex-M3 example's sources and recipe with the
// image it shipped marked; the server's own builder rebuilds the deposit
// without unsealing it. The complete deposit scores 100 %; a shipped image
// holding a file the deposit left out scores below, and the vendor's
// report names the file. Before release the score is refused to anonymous,
// maintainer and other-org callers (until the vendor publishes it); after
// release the score and counts are public and signed, the per-file report
// is not.
func TestTheSealedCompletenessCheckRebuildsTheDepositOnTheOperatorsOwnBuilder(t *testing.T) {
	fsys, err := examples.Dir("cortex-m3")
	if err != nil {
		t.Fatal(err)
	}
	ex := t.TempDir()
	if err := os.CopyFS(ex, fsys); err != nil {
		t.Fatal(err)
	}
	shippedBuild := buildCortexM3(t, ex, filepath.Join(ex, "vendor-deposit")) // what the vendor built and shipped
	read := func(name string) []byte { return readFile(t, filepath.Join(shippedBuild, name)) }
	// The deposit: the sources where the recipe's inputs name them, the
	// recipe, and the shipped image.
	deposit := func(t *testing.T, withTable bool) string {
		src := filepath.Join(t.TempDir(), "sunset")
		if err := os.CopyFS(filepath.Join(src, "vendor"), os.DirFS(filepath.Join(ex, "vendor-deposit"))); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(src, "recipe"), os.DirFS(filepath.Join(ex, "recipe"))); err != nil {
			t.Fatal(err)
		}
		img := map[string][]byte{"firmware.elf": read("firmware.elf"), "firmware.bin": read("firmware.bin")}
		if withTable {
			img["sensor-table.bin"] = []byte(strings.Repeat("calibration row\n", 64)) // a vendor blob the deposit lacks
		}
		writeTar(t, filepath.Join(src, "shipped", "acme-thermo-2.4.1.tar"), img)
		return src
	}
	complete, incomplete := deposit(t, false), deposit(t, true)

	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--local-builders", "1")
			srv := testenv.Serve(t, opts)
			adm := func(method, path string, body, out any) int {
				t.Helper()
				return apiJSON(t, method, srv.URL+path, srv.Token, body, out)
			}
			for _, org := range []string{"acme", "other"} {
				if code := adm("POST", "/v1/admin/orgs", map[string]string{"id": org, "kind": "vendor"}, nil); code != 201 {
					t.Fatalf("create org %s: %d", org, code)
				}
			}
			token := func(name, role, org string) string {
				t.Helper()
				var out struct {
					Token string `json:"token"`
				}
				if code := adm("POST", "/v1/admin/tokens", map[string]string{"name": name, "role": role, "org": org}, &out); code != 201 {
					t.Fatalf("token %s: %d", name, code)
				}
				return out.Token
			}
			vendor, otherVendor, maintainer := token("acme", "vendor", "acme"), token("other", "vendor", "other"), token("maint", "maintainer", "acme")
			vs := []string{"--server", srv.URL, "--token", vendor}
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-thermo", "--vendor", "acme", "--model", "Thermo", "--device-ids", "usb:acme:thermo"}, vs...)...)
			dir := t.TempDir()
			depositOf := func(src, policy string) string {
				t.Helper()
				out, _ := afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-thermo", "--policy", policy,
					"--rights", "vendor/**=build-only", "--shipped-image", "shipped/acme-thermo-2.4.1.tar", "--completeness-recipe", "recipe/afterlife.yaml",
					"--state", filepath.Join(dir, policy+".state"), "--receipt", filepath.Join(dir, policy+".json"), src + "/"}, vs...)...)
				m := regexp.MustCompile(`deposit (\S+) committed`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no deposit id in %q", out)
				}
				return m[1]
			}
			type result struct {
				State    string `json:"state"`
				Percent  int    `json:"percent"`
				Sentence string `json:"sentence"`
				Public   bool   `json:"public"`
				Error    string `json:"error"`
				Counts   struct{ Identical, Differs, Missing, Extra int }
				Report   *struct {
					Files []struct{ Path, Class string }
				}
				Shipped   string `json:"shipped_image"`
				Published bool   `json:"published"`
			}
			score := func(tok, dep string) (int, result) {
				t.Helper()
				var r result
				code := apiJSON(t, "GET", srv.URL+"/v1/deposits/"+dep+"/completeness", tok, nil, &r)
				return code, r
			}
			check := func(dep string) result {
				t.Helper()
				afterlife(t, true, append([]string{"vendor", "check", dep}, vs...)...)
				var r result
				testenv.Eventually(t, 5*time.Minute, func() error {
					if _, r = score(vendor, dep); r.State == "running" {
						return fmt.Errorf("the completeness check of %s is still running", dep)
					}
					return nil
				})
				if r.State != "done" {
					t.Fatalf("check %s: %+v", dep, r)
				}
				return r
			}
			outsiders := map[string]string{"an anonymous caller": "", "a maintainer": maintainer, "a vendor of another org": otherVendor}

			sealed := depositOf(complete, "on=2099-01-01")
			t.Run("the complete deposit rebuilds the shipped image at 100 %", func(t *testing.T) {
				r := check(sealed)
				if r.Percent != 100 || r.Counts.Identical < 3 || r.Counts.Differs+r.Counts.Missing+r.Counts.Extra != 0 || r.Report == nil {
					t.Fatalf("report %+v", r)
				}
				if r.Sentence != "Deposit completeness: 100 % of the shipped image rebuilt bit-for-bit from the deposit" || r.Public {
					t.Fatalf("%q public %v", r.Sentence, r.Public)
				}
			})
			t.Run("before release only the vendor and admins see the score", func(t *testing.T) {
				for who, tok := range outsiders {
					for _, path := range []string{"/completeness", "/completeness/attestation"} {
						if code := apiJSON(t, "GET", srv.URL+"/v1/deposits/"+sealed+path, tok, nil, nil); code != 404 {
							t.Errorf("%s reading %s of a sealed deposit: %d, want 404", who, path, code)
						}
					}
					if code := apiJSON(t, "POST", srv.URL+"/v1/deposits/"+sealed+"/completeness/publish", tok, nil, nil); code != 401 && code != 403 && code != 404 {
						t.Errorf("%s publishing: %d", who, code)
					}
				}
				if code, r := score(srv.Token, sealed); code != 200 || r.Report == nil || r.Shipped != "shipped/acme-thermo-2.4.1.tar" {
					t.Fatalf("an admin: %d %+v", code, r)
				}
			})
			t.Run("the shipped image is private and its mark hidden from others", func(t *testing.T) {
				var d struct {
					Shipped  string `json:"shipped_image"`
					Manifest []struct{ Path, Rights string }
				}
				apiJSON(t, "GET", srv.URL+"/v1/deposits/"+sealed, vendor, nil, &d)
				for _, e := range d.Manifest {
					if e.Path == d.Shipped && e.Rights != "private" {
						t.Fatalf("the shipped image is %s", e.Rights)
					}
				}
				if d.Shipped == "" {
					t.Fatal("the vendor does not see which file is the shipped image")
				}
			})
			t.Run("a vendor may publish the score before release, never the report", func(t *testing.T) {
				afterlife(t, true, append([]string{"vendor", "check", "--publish", sealed}, vs...)...)
				code, r := score("", sealed)
				if code != 200 || r.Percent != 100 || !r.Public || !r.Published || r.Report != nil || r.Shipped != "" {
					t.Fatalf("anonymous after publishing: %d %+v", code, r)
				}
			})

			released := depositOf(incomplete, "immediate")
			t.Run("a shipped file the deposit left out is named in the vendor's report", func(t *testing.T) {
				r := check(released)
				var missing []string
				for _, f := range r.Report.Files {
					if f.Class == "missing" {
						missing = append(missing, f.Path)
					}
				}
				if r.Percent >= 100 || r.Percent <= 0 || strings.Join(missing, ",") != "acme-thermo-2.4.1.tar/sensor-table.bin" {
					t.Fatalf("percent %d, missing %v", r.Percent, missing)
				}
			})
			t.Run("after release the score and counts are public and signed, the report is not", func(t *testing.T) {
				_, own := score(vendor, released)
				for who, tok := range outsiders {
					code, r := score(tok, released)
					if code != 200 || r.Percent != own.Percent || r.Counts != own.Counts || r.Report != nil || r.Error != "" {
						t.Fatalf("%s: %d %+v", who, code, r)
					}
				}
				var key struct {
					PublicKey string `json:"public_key"`
				}
				apiJSON(t, "GET", srv.URL+"/v1/escrow/receipt-key", "", nil, &key)
				pub, err := receipt.ParsePublicKey([]byte(key.PublicKey))
				if err != nil {
					t.Fatal(err)
				}
				var env dsse.Envelope
				if code := apiJSON(t, "GET", srv.URL+"/v1/deposits/"+released+"/completeness/attestation", "", nil, &env); code != 200 {
					t.Fatalf("attestation: %d", code)
				}
				v, err := dsse.NewEnvelopeVerifier(receiptVerifier{pub})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := v.Verify(context.Background(), &env); err != nil {
					t.Fatalf("the attestation does not verify with the receipt key: %v", err)
				}
				payload, _ := base64.StdEncoding.DecodeString(env.Payload)
				var st struct {
					Type          string `json:"_type"`
					PredicateType string `json:"predicateType"`
					Subject       []struct {
						Name   string
						Digest map[string]string
					}
					Predicate struct {
						Percent int `json:"percent"`
						Counts  struct{ Missing int }
					}
				}
				if err := json.Unmarshal(payload, &st); err != nil {
					t.Fatal(err)
				}
				if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != "https://afterlife.dev/completeness/v1" ||
					st.Predicate.Percent != own.Percent || st.Predicate.Counts.Missing != 1 || len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] == "" {
					t.Fatalf("statement %s", payload)
				}
				if strings.Contains(string(payload), "sensor-table") {
					t.Fatalf("the public statement names a file: %s", payload)
				}
				page := string(get(t, srv.URL+"/products/acme-thermo"))
				if !strings.Contains(page, own.Sentence) || strings.Contains(page, "sensor-table") {
					t.Fatalf("the product page does not show %q, or names a file", own.Sentence)
				}
				t.Logf("%s (%+v)", own.Sentence, own.Counts)
				vendorPage := func(tok string) string {
					req, _ := http.NewRequest("GET", srv.URL+"/vendor", nil)
					req.AddCookie(&http.Cookie{Name: "afterlife_session", Value: tok})
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					return string(b)
				}
				if page := vendorPage(vendor); !strings.Contains(page, own.Sentence) || !strings.Contains(page, "missing acme-thermo-2.4.1.tar/sensor-table.bin") {
					t.Fatalf("the vendor area does not show the score and the missing file:\n%s", page)
				}
				if page := vendorPage(otherVendor); strings.Contains(page, "sensor-table") || strings.Contains(page, released) {
					t.Fatal("another vendor's area shows the report")
				}
			})
		})
	}
}
