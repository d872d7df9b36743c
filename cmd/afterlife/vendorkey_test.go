package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestADeviceThatHoldsOnlyItsVendorsKeyBootstrapsFromTheHandover is the
// device's side of the handover on a real `afterlife serve` with the log's
// policy in the TUF root, on both backends. The vendor signs a statement
// for the root that carries the policy and deposits it, released at once;
// the registry publishes it and logs it. A device that holds only the
// vendor's public key then initialises from it and updates; devices are
// refused a statement signed by another key, a rival statement served in
// place of the one the log holds first, a statement whose log proof does
// not verify or is hidden, and a root whose bytes are not the statement's
// digest (the last three through a hostile proxy in front of the real
// server). A device initialised by trust on first use re-anchors with
// trust --vendor-key, keeps its install id and keeps updating.
func TestADeviceThatHoldsOnlyItsVendorsKeyBootstrapsFromTheHandover(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--allow-local-repos", "--builder-cache", builderCache(t), "--translog-quorum", "1", "--translog-in-root",
				"--translog-every", "100ms", "--scheduler-every", "200ms")
			srv := testenv.Serve(t, opts)
			as := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme"}, as...)...)
			vendor, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", "acme", "--role", "vendor", "--org", "acme"}, as...)...)
			vs := []string{"--server", srv.URL, "--token", strings.TrimSpace(vendor)}
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:acme:cam"}, vs...)...)

			// Start the farm's build now: it runs while the handover is
			// deposited and logged.
			buildID := submitRecipe(t, as, spoofRecipe, "acme-fw 1.0.0")

			dir := t.TempDir()
			// The root the vendor hands over to carries the log's policy.
			root := filepath.Join(dir, "root.json")
			testenv.Eventually(t, time.Minute, func() error {
				b := get(t, srv.URL+"/tuf/root.json")
				if !bytes.Contains(b, []byte(`"afterlife_log"`)) {
					return fmt.Errorf("the root carries no log policy yet")
				}
				writeFile(t, root, b)
				return nil
			})
			vendorKey := ecdsaKey(t)
			vendorPriv := writeKey(t, dir, "vendor.pem", vendorKey)
			vendorPub := writePublicKey(t, dir, "vendor.pub", vendorKey.Public())
			otherPub := writePublicKey(t, dir, "other.pub", ed25519Key(t).Public())
			statement := filepath.Join(dir, "handover.json")
			afterlife(t, true, "vendor", "handover", "sign", "--key", vendorPriv, "--root", root, "--product", "acme-cam", "--device-id", "usb:acme:cam", "--out", statement)
			// A rival statement, as anyone holding the vendor's key after
			// its release could sign: same device id, same root.
			rival := filepath.Join(dir, "rival.json")
			afterlife(t, true, "vendor", "handover", "sign", "--key", vendorPriv, "--root", root, "--product", "acme-cam", "--device-id", "usb:acme:cam", "--hardware-revision", "B", "--out", rival)
			d := filepath.Join(dir, "deposit")
			writeFile(t, filepath.Join(d, "datasheet.txt"), []byte("acme cam datasheet\n"))
			bridge := []byte("acme cam 9.9.9, signed by acme, carrying the afterlife device client and the community root\n")
			writeFile(t, filepath.Join(d, "afterlife-bridge.img"), bridge)
			afterlife(t, true, append([]string{"vendor", "deposit", "--product", "acme-cam", "--policy", "immediate",
				"--state", filepath.Join(dir, "vendor-state"), "--receipt", filepath.Join(dir, "receipt.json"), "--handover", statement, d}, vs...)...)

			t.Run("the released statement and bridge image are served unchanged", func(t *testing.T) {
				testenv.Eventually(t, 30*time.Second, func() error {
					if code := getCode(t, srv.URL+"/v1/products/acme-cam/handover"); code != http.StatusOK {
						return fmt.Errorf("GET /v1/products/acme-cam/handover: %d", code)
					}
					return nil
				})
				if got := get(t, srv.URL+"/v1/products/acme-cam/handover?id=usb:acme:cam"); !bytes.Equal(got, readFile(t, statement)) {
					t.Fatal("the served statement is not the file the vendor signed")
				}
				if got := get(t, srv.URL+"/v1/products/acme-cam/bridge"); !bytes.Equal(got, bridge) {
					t.Fatal("the served bridge image is not the file the vendor deposited")
				}
			})

			bin := deviceBinary(t)
			device := func(t *testing.T, state string, wantOK bool, args ...string) (string, string) {
				t.Helper()
				cmd := exec.Command(bin, append(args, "--state", state)...)
				cmd.Env = append(os.Environ(), "AFTERLIFE_REGISTRY=")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				if (err == nil) != wantOK {
					t.Fatalf("afterlife-device %s: %v, want success=%v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantOK, stdout.String(), stderr.String())
				}
				return stdout.String(), stderr.String()
			}
			vendorInit := func(registry string) []string {
				return []string{"init", "--registry", registry, "--product", "acme-cam", "--id", "usb:acme:cam", "--accept-community-firmware", "--vendor-key", vendorPub}
			}

			t.Run("init without a root, a vendor key or --trust-on-first-use names both flags", func(t *testing.T) {
				_, stderr := device(t, filepath.Join(t.TempDir(), "s"), false, "init", "--registry", srv.URL, "--id", "usb:acme:cam")
				if !strings.Contains(stderr, "--vendor-key") || !strings.Contains(stderr, "--trust-on-first-use") {
					t.Fatalf("the refusal does not name both flags: %s", stderr)
				}
			})

			state := filepath.Join(t.TempDir(), "vendor-device")
			t.Run("a device that holds only the vendor's key pins the root the statement names", func(t *testing.T) {
				// The handover entry is logged and cosigned a moment
				// after the release.
				var out string
				testenv.Eventually(t, 30*time.Second, func() error {
					cmd := exec.Command(bin, append(vendorInit(srv.URL), "--state", state)...)
					b, err := cmd.CombinedOutput()
					out = string(b)
					if err != nil {
						return fmt.Errorf("init --vendor-key: %v: %s", err, b)
					}
					return nil
				})
				if !regexp.MustCompile(`trusts root \d+\.root\.json .*handed over by vendor key sha256:[0-9a-f]{64} \(log entry \d+`).MatchString(out) {
					t.Fatalf("init said %q", out)
				}
				if !bytes.Equal(readFile(t, filepath.Join(state, "root.json")), readFile(t, root)) {
					t.Fatal("the pinned root is not the one the vendor handed over to")
				}
			})

			t.Run("the product page shows the handover with its log entry", func(t *testing.T) {
				a := readAnchor(t, state)
				want := fmt.Sprintf("Signing authority handed over by vendor key <code>%s</code> to this registry's root <code>%s</code> on", a.VendorKey, a.RootSHA256)
				page := string(get(t, srv.URL+"/products/acme-cam"))
				if !strings.Contains(page, want) || !strings.Contains(page, fmt.Sprintf(">log entry %d</a>", a.LogEntry)) {
					t.Fatalf("the product page does not say %q (log entry %d):\n%s", want, a.LogEntry, page)
				}
			})

			fromPage := filepath.Join(t.TempDir(), "page-device")
			t.Run("the product page's updater command, given the vendor's key file, initialises a device", func(t *testing.T) {
				page := string(get(t, srv.URL+"/products/acme-cam"))
				m := regexp.MustCompile(`(?s)<pre class="command" id="cmd-init"><code>(.*?)</code></pre>`).FindStringSubmatch(page)
				if m == nil || !strings.Contains(page, `id="cmd-trust"`) {
					t.Fatalf("the product page has no init or trust command:\n%s", page)
				}
				cmdline := html.UnescapeString(strings.ReplaceAll(m[1], "\\\n", " "))
				args := strings.Fields(strings.Replace(cmdline, "VENDOR-KEY.pem", vendorPub, 1))
				if len(args) < 2 || args[0] != "afterlife-device" || !slices.Contains(args, vendorPub) || slices.Contains(args, "--trust-on-first-use") {
					t.Fatalf("the page's init command for a handed-over product is %q", cmdline)
				}
				device(t, fromPage, true, args[1:]...)
				if !bytes.Equal(readFile(t, filepath.Join(fromPage, "root.json")), readFile(t, root)) {
					t.Fatal("the page's command pinned another root than the vendor handed over to")
				}
			})

			tofu := filepath.Join(t.TempDir(), "tofu-device")
			device(t, tofu, true, "init", "--registry", srv.URL, "--product", "acme-cam", "--id", "usb:acme:cam", "--accept-community-firmware", "--trust-on-first-use")

			waitReproducible(t, srv, buildID, 4*time.Minute)
			publish := func(v string) {
				req := map[string]string{"build_id": buildID, "product": "acme-cam", "version": v, "channel": "stable"}
				if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, req, nil); code != http.StatusCreated {
					t.Fatalf("publish %s: %d", v, code)
				}
			}
			update := func(t *testing.T, state, want string) {
				t.Helper()
				// A release installs once its publication is logged and
				// cosigned.
				testenv.Eventually(t, 30*time.Second, func() error {
					cmd := exec.Command(bin, "update", "--state", state)
					b, err := cmd.CombinedOutput()
					if err != nil || !strings.Contains(string(b), "installed acme-cam "+want) {
						return fmt.Errorf("update: %v: %s", err, b)
					}
					return nil
				})
			}
			publish("1.0.0")
			t.Run("the device that started from its vendor's key updates", func(t *testing.T) {
				update(t, state, "1.0.0")
			})
			t.Run("the device that trusted on first use updates", func(t *testing.T) {
				update(t, tofu, "1.0.0")
			})
			t.Run("the device set up from the product page's command updates", func(t *testing.T) {
				update(t, fromPage, "1.0.0")
			})

			refusals := []struct {
				name, key, says string
				hostile         func(p *hostileProxy)
			}{
				{"a handover signed by another key is refused", otherPub, "not by the trusted key", nil},
				{"a second, rival handover for the same device id is refused: the first logged wins", vendorPub, "the first handover wins", func(p *hostileProxy) {
					p.replace("/v1/products/acme-cam/handover", func([]byte) []byte { return readFile(t, rival) })
				}},
				{"a handover whose log proof does not verify is refused", vendorPub, "does not verify", func(p *hostileProxy) {
					p.replace("/proof", func(b []byte) []byte { return tamperProofEntry(t, b) })
				}},
				{"a handover the log's list does not show is refused", vendorPub, "no entry of the log hands over", func(p *hostileProxy) {
					p.replace("/v1/log/about/acme-cam", func([]byte) []byte { return []byte("[]") })
				}},
				{"a root that does not match the statement's digest is refused", vendorPub, "does not match the handover statement's digest", func(p *hostileProxy) {
					p.replace(".root.json", func(b []byte) []byte { return append(b, '\n') })
				}},
			}
			for _, r := range refusals {
				t.Run(r.name, func(t *testing.T) {
					registry := srv.URL
					if r.hostile != nil {
						p := startHostileProxy(t, srv.URL)
						r.hostile(p)
						registry = p.URL
					}
					s := filepath.Join(t.TempDir(), "s")
					_, stderr := device(t, s, false, "init", "--registry", registry, "--product", "acme-cam", "--id", "usb:acme:cam", "--vendor-key", r.key)
					if !strings.Contains(stderr, r.says) {
						t.Fatalf("the refusal does not say %q:\n%s", r.says, stderr)
					}
					if _, err := os.Stat(filepath.Join(s, "root.json")); err == nil {
						t.Fatal("a refused handover pinned a root")
					}
				})
			}

			t.Run("a device that trusted on first use re-anchors on its vendor's key and keeps updating", func(t *testing.T) {
				before := installID(t, tofu)
				out, _ := device(t, tofu, true, "trust", "--vendor-key", vendorPub)
				if !strings.Contains(out, "handed over by vendor key") {
					t.Fatalf("trust said %q", out)
				}
				if after := installID(t, tofu); after != before {
					t.Fatalf("re-anchoring changed the install id from %s to %s", before, after)
				}
				if !bytes.Equal(readFile(t, filepath.Join(tofu, "root.json")), readFile(t, root)) {
					t.Fatal("the re-anchored device does not pin the handed-over root")
				}
				publish("1.1.0")
				update(t, tofu, "1.1.0")
				update(t, state, "1.1.0")
			})
		})
	}
}

func writePublicKey(t *testing.T, dir, name string, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	writeFile(t, path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return path
}

func installID(t *testing.T, state string) string {
	t.Helper()
	var c struct {
		InstallID string `json:"install_id"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(state, "config.json")), &c); err != nil || c.InstallID == "" {
		t.Fatalf("config.json: %v", err)
	}
	return c.InstallID
}

// hostileProxy is a real reverse proxy in front of the registry that
// rewrites the bodies of the paths it is told to.
type hostileProxy struct {
	URL   string
	mu    sync.Mutex
	rules map[string]func([]byte) []byte
}

func startHostileProxy(t *testing.T, upstream string) *hostileProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &hostileProxy{rules: map[string]func([]byte) []byte{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for suffix, f := range p.rules {
			if !strings.HasSuffix(resp.Request.URL.Path, suffix) || resp.StatusCode != http.StatusOK {
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			b = f(b)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
			resp.Header.Del("ETag")
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *hostileProxy) replace(suffix string, f func([]byte) []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules[suffix] = f
}

// tamperProofEntry changes the entry a proof bundle carries (its "extra"
// line), keeping the proof: the inclusion proof no longer holds.
func tamperProofEntry(t *testing.T, b []byte) []byte {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		e, ok := strings.CutPrefix(l, "extra ")
		if !ok {
			continue
		}
		entry, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			t.Error(err)
			return b
		}
		entry = bytes.Replace(entry, []byte("usb:acme:cam"), []byte("usb:acme:cat"), 1)
		lines[i] = "extra " + base64.StdEncoding.EncodeToString(entry)
	}
	return []byte(strings.Join(lines, "\n"))
}

type anchor struct {
	VendorKey  string `json:"vendor_key"`
	RootSHA256 string `json:"root_sha256"`
	LogEntry   int64  `json:"log_entry"`
}

func readAnchor(t *testing.T, state string) anchor {
	t.Helper()
	var a anchor
	if err := json.Unmarshal(readFile(t, filepath.Join(state, "handover.json")), &a); err != nil || a.VendorKey == "" {
		t.Fatalf("handover.json: %v", err)
	}
	return a
}
