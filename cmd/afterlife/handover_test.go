package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestDepositsCarryAHandoverStatementCheckedAtDeposit runs the vendor's
// side of the handover on the real server, on both backends: statements
// are signed with `afterlife vendor handover sign` and deposited with
// `afterlife vendor deposit --handover`; the escrow refuses a tampered
// statement, one naming a root that is not this registry's, one naming
// another product or another product's device id, and a rival statement
// for a device id an earlier one holds; the vendor revokes a sealed
// statement, which frees its device ids, and cannot revoke a released one,
// which anyone may then read.
func TestDepositsCarryAHandoverStatementCheckedAtDeposit(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--local-builders", "0")
			srv := testenv.Serve(t, opts)
			as := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme"}, as...)...)
			afterlife(t, true, append([]string{"admin", "org", "create", "other"}, as...)...)
			vendor, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", "acme", "--role", "vendor", "--org", "acme"}, as...)...)
			vs := []string{"--server", srv.URL, "--token", strings.TrimSpace(vendor)}
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:acme:cam;usb:acme:cam2"}, vs...)...)
			afterlife(t, true, append([]string{"vendor", "product", "--id", "other-cam", "--vendor", "other", "--model", "Cam", "--device-ids", "usb:other:cam"}, as...)...)

			dir := t.TempDir()
			root := filepath.Join(dir, "root.json")
			writeFile(t, root, get(t, srv.URL+"/tuf/root.json"))
			// A root this registry never published: the same file with a
			// byte more.
			foreignRoot := filepath.Join(dir, "foreign-root.json")
			writeFile(t, foreignRoot, append(get(t, srv.URL+"/tuf/root.json"), '\n'))
			vendorKey := writeKey(t, dir, "vendor.pem", ecdsaKey(t))
			rivalKey := writeKey(t, dir, "rival.pem", ed25519Key(t))
			sign := func(name, key, rootFile, product string, ids ...string) string {
				t.Helper()
				out := filepath.Join(dir, name)
				args := []string{"vendor", "handover", "sign", "--key", key, "--root", rootFile, "--product", product, "--out", out}
				for _, id := range ids {
					args = append(args, "--device-id", id)
				}
				afterlife(t, true, args...)
				return out
			}
			n := 0
			deposit := func(wantOK bool, policy, statement string) (string, string) {
				t.Helper()
				n++
				d := filepath.Join(dir, "deposit", strings.Repeat("x", n))
				writeFile(t, filepath.Join(d, "datasheet.txt"), []byte("acme cam datasheet\n"))
				out, stderr := afterlife(t, wantOK, append([]string{"vendor", "deposit", "--rights", "**=public", "--product", "acme-cam", "--policy", policy,
					"--state", filepath.Join(dir, "state", strings.Repeat("x", n)), "--receipt", filepath.Join(dir, "receipt.json"),
					"--handover", statement, d}, vs...)...)
				if !wantOK {
					return "", stderr
				}
				m := regexp.MustCompile(`deposit (\S+) committed`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no deposit id in %q", out)
				}
				return m[1], stderr
			}

			good := sign("good.json", vendorKey, root, "acme-cam", "usb:acme:cam")
			tampered := filepath.Join(dir, "tampered.json")
			writeFile(t, tampered, tamperPayload(t, good, "usb:acme:cam", "usb:acme:cam2"))
			refusals := []struct {
				name, statement, says string
			}{
				{"a statement whose payload was changed after signing", tampered, "signature does not verify"},
				{"a statement naming a root that is not this registry's", sign("foreign.json", vendorKey, foreignRoot, "acme-cam", "usb:acme:cam"), "none of this registry's root versions"},
				{"a statement for another product", sign("product.json", vendorKey, root, "other-cam", "usb:other:cam"), `hands over product "other-cam"`},
				{"a statement naming another product's device id", sign("ids.json", vendorKey, root, "acme-cam", "usb:acme:cam", "usb:other:cam"), "usb:other:cam, which product acme-cam does not list"},
			}
			for _, r := range refusals {
				t.Run(r.name+" is refused at deposit", func(t *testing.T) {
					_, stderr := deposit(false, "on=2099-01-01", r.statement)
					if !strings.Contains(stderr, r.says) {
						t.Fatalf("the refusal does not say %q:\n%s", r.says, stderr)
					}
				})
			}

			first, _ := deposit(true, "on=2099-01-01", good)
			var h struct {
				State      string   `json:"state"`
				DeviceIDs  []string `json:"device_ids"`
				RootName   string   `json:"root_name"`
				RootSHA256 string   `json:"root_sha256"`
			}
			out, _ := afterlife(t, true, append([]string{"vendor", "handover", "status", first}, vs...)...)
			if err := json.Unmarshal([]byte(out), &h); err != nil || h.State != "claimed" || h.RootName != "1.root.json" || len(h.DeviceIDs) != 1 {
				t.Fatalf("status of the sealed statement: %v %s", err, out)
			}
			if code := getCode(t, srv.URL+"/v1/deposits/"+first+"/handover"); code != http.StatusNotFound {
				t.Fatalf("anonymous GET of a sealed deposit's handover: %d, want 404", code)
			}

			rival := sign("rival.json", rivalKey, root, "acme-cam", "usb:acme:cam")
			t.Run("a rival statement for a device id an earlier one holds is refused", func(t *testing.T) {
				_, stderr := deposit(false, "on=2099-01-01", rival)
				if !strings.Contains(stderr, "usb:acme:cam are already handed over by an earlier statement") {
					t.Fatalf("the refusal does not say why:\n%s", stderr)
				}
			})
			t.Run("the vendor revokes its sealed statement and the device id is free again", func(t *testing.T) {
				out, _ := afterlife(t, true, append([]string{"vendor", "handover", "revoke", first}, vs...)...)
				if !strings.Contains(out, "revoked") {
					t.Fatalf("revoke said %q", out)
				}
				deposit(true, "on=2099-01-01", rival)
			})
			t.Run("a released statement cannot be revoked and is public", func(t *testing.T) {
				released, _ := deposit(true, "immediate", sign("cam2.json", vendorKey, root, "acme-cam", "usb:acme:cam2"))
				_, stderr := afterlife(t, false, append([]string{"vendor", "handover", "revoke", released}, vs...)...)
				if !strings.Contains(stderr, "released: its handover has taken effect") {
					t.Fatalf("revoking a released statement: %s", stderr)
				}
				var pub struct {
					State     string   `json:"state"`
					DeviceIDs []string `json:"device_ids"`
				}
				if err := json.Unmarshal(get(t, srv.URL+"/v1/deposits/"+released+"/handover"), &pub); err != nil || pub.State != "claimed" || pub.DeviceIDs[0] != "usb:acme:cam2" {
					t.Fatalf("public handover of a released deposit: %+v %v", pub, err)
				}
				if got := get(t, srv.URL+"/v1/deposits/"+released+"/files/afterlife-handover.dsse.json"); string(got) != string(readFile(t, filepath.Join(dir, "cam2.json"))) {
					t.Fatal("the released statement is not the file the vendor signed")
				}
			})
		})
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return b
}

func getCode(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ecdsaKey(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ed25519Key(t *testing.T) crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeKey(t *testing.T, dir, name string, k crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	writeFile(t, path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return path
}

// tamperPayload rewrites a DSSE envelope's payload, keeping its signature.
func tamperPayload(t *testing.T, envFile, from, to string) []byte {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(readFile(t, envFile), &env); err != nil {
		t.Fatal(err)
	}
	p, err := base64.StdEncoding.DecodeString(env["payload"].(string))
	if err != nil || !strings.Contains(string(p), from) {
		t.Fatalf("payload %s: %v", p, err)
	}
	env["payload"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(p), from, to, 1)))
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
