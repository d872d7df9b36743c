package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// The transparency log on a real `afterlife serve`, both backends. The
// log is read here by c2spClient, a small client written against the C2SP
// specifications (signed-note, tlog-checkpoint, tlog-tiles, RFC 6962
// hashing and proofs) with the standard library only: it imports none of
// afterlife's log code, so it checks the formats, not our reading of them.
func TestTheTransparencyLogOnTheRealServer(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			// One local builder: it witnesses the log, and the policy
			// (one operator) serves only what it cosigned.
			opts.Args = append(opts.Args, "--local-builders", "1", "--translog-quorum", "1", "--translog-in-root",
				"--translog-every", "100ms", "--scheduler-every", "200ms")
			srv := testenv.Serve(t, opts)
			admin := srv.Token
			must := func(code, want int) {
				t.Helper()
				if code != want {
					t.Fatalf("status %d, want %d\n%s", code, want, srv.LogTail())
				}
			}
			must(apiJSON(t, "POST", srv.URL+"/v1/admin/orgs", admin, map[string]string{"id": "acme", "kind": "vendor"}, nil), 201)
			var tok struct {
				Token string `json:"token"`
			}
			must(apiJSON(t, "POST", srv.URL+"/v1/admin/tokens", admin, map[string]string{"name": "acme-vendor", "role": "vendor", "org": "acme"}, &tok), 201)
			vendor := tok.Token
			must(apiJSON(t, "POST", srv.URL+"/v1/admin/tokens", admin, map[string]string{"name": "alice", "role": "trustee", "org": "acme"}, &tok), 201)
			trustee := tok.Token
			pub, key, _ := ed25519.GenerateKey(rand.Reader)
			must(apiJSON(t, "POST", srv.URL+"/v1/trustees", admin, map[string]string{"name": "alice", "public_key": receipt.FormatPublicKey(pub)}, nil), 201)
			must(apiJSON(t, "POST", srv.URL+"/v1/products", vendor, map[string]any{"id": "acme-cam", "vendor": "acme", "model": "Acme Cam", "device_ids": []string{"usb:acce:0002"}}, nil), 201)

			secret := "-----BEGIN SECRET-----" + hex.EncodeToString(pub[:8])
			dep := deposit(t, srv.URL, vendor, "acme-cam", "quorum=1/1:alice", map[string]string{"keys/signing.key": secret}, "sealed")
			var d struct {
				ManifestDigest string `json:"manifest_digest"`
			}
			must(apiJSON(t, "GET", srv.URL+"/v1/deposits/"+dep, vendor, nil, &d), 200)

			var info struct {
				Origin      string `json:"origin"`
				VerifierKey string `json:"verifier_key"`
				Policy      struct {
					Witnesses []struct {
						VerifierKey string `json:"verifier_key"`
					} `json:"witnesses"`
				} `json:"policy"`
			}
			testenv.Eventually(t, 30*time.Second, func() error {
				must(apiJSON(t, "GET", srv.URL+"/v1/log", "", nil, &info), 200)
				if len(info.Policy.Witnesses) == 0 {
					return fmt.Errorf("the local builder has not witnessed the log yet")
				}
				return nil
			})
			c := &c2spClient{t: t, base: srv.URL, url: srv.URL + "/log", origin: info.Origin, vkey: info.VerifierKey}
			for _, w := range info.Policy.Witnesses {
				c.witnesses = append(c.witnesses, w.VerifierKey)
			}

			var sealedIdx = -1
			var sealedEntry map[string]any
			var first c2spCheckpoint
			t.Run("a sealed deposit's entry is a commitment that names nothing", func(t *testing.T) {
				c.t = t
				testenv.Eventually(t, 20*time.Second, func() error {
					b, err := c.tryGet("/checkpoint")
					if err != nil {
						return err
					}
					cp := c.parseCheckpoint(b)
					for i, e := range c.entries(cp.size) {
						var m map[string]any
						if err := json.Unmarshal(e, &m); err != nil {
							return testenv.GiveUp(fmt.Errorf("entry %d is not JSON: %s", i, e))
						}
						if m["type"] == "deposit.sealed" {
							sealedIdx, sealedEntry, first = i, m, cp
							return nil
						}
					}
					return fmt.Errorf("no deposit.sealed entry among %d", cp.size)
				})
				raw, _ := json.Marshal(sealedEntry)
				for _, s := range []string{dep, "acme", d.ManifestDigest, "signing.key", secret} {
					if strings.Contains(string(raw), s) {
						t.Errorf("the sealed entry %s shows %q", raw, s)
					}
				}
				if len(sealedEntry) != 3 {
					t.Errorf("the sealed entry %s has fields beyond type, at and commitment", raw)
				}
			})
			if sealedIdx < 0 {
				t.FailNow()
			}

			t.Run("its release entry reveals the salt that opens the commitment", func(t *testing.T) {
				c.t = t
				sig := escrow.SignApproval(key, dep, d.ManifestDigest)
				must(apiJSON(t, "POST", srv.URL+"/v1/deposits/"+dep+"/approvals", trustee, map[string]string{"trustee": "alice", "signature": sig}, nil), 200)
				var released map[string]any
				testenv.Eventually(t, 20*time.Second, func() error {
					cp := c.checkpoint()
					for _, e := range c.entries(cp.size) {
						var m map[string]any
						_ = json.Unmarshal(e, &m)
						if m["type"] == "deposit.released" && m["deposit"] == dep {
							released = m
							return nil
						}
					}
					return fmt.Errorf("no release entry of %s yet", dep)
				})
				salt, _ := released["salt"].(string)
				sum := sha256.Sum256([]byte("afterlife/deposit-commitment/v1\n" + salt + "\nacme-cam\n" + d.ManifestDigest + "\n"))
				if got := "sha256:" + hex.EncodeToString(sum[:]); got != sealedEntry["commitment"] {
					t.Fatalf("the release entry's salt gives %s, the sealed entry committed to %s", got, sealedEntry["commitment"])
				}
				if released["sealed_entry"] != float64(sealedIdx) || released["fired"] != "quorum" {
					t.Errorf("release entry %v: want sealed_entry %d and fired quorum", released, sealedIdx)
				}
				ev, _ := released["evidence"].(map[string]any)
				if approvals, _ := ev["approvals"].([]any); len(approvals) != 1 {
					t.Errorf("release entry's evidence %v: want alice's approval", ev)
				}
			})

			t.Run("an independent C2SP client verifies every entry and the log's growth", func(t *testing.T) {
				c.t = t
				cp := c.checkpoint()
				if cp.cosigners < 1 {
					t.Fatalf("the served checkpoint carries no cosignature of the builder witness")
				}
				if cp.size <= first.size {
					t.Fatalf("the log did not grow: %d then %d", first.size, cp.size)
				}
				entries := c.entries(cp.size)
				leaves := c.leafHashes(cp.size)
				for i, e := range entries {
					if leaves[i] != leafHash(e) {
						t.Fatalf("the level-0 tile's hash %d is not the hash of entry %d", i, i)
					}
				}
				if root := treeHash(leaves); root != cp.root {
					t.Fatalf("the tiles' root %x is not the checkpoint's %x", root, cp.root)
				}
				if root := treeHash(leaves[:first.size]); root != first.root {
					t.Fatalf("the first %d leaves do not give the earlier checkpoint's root: the log was rewritten", first.size)
				}
				for i := range entries {
					idx, proof := c.inclusionProof(i)
					if idx != i || !verifyInclusion(i, cp.size, leafHash(entries[i]), proof, cp.root) {
						t.Fatalf("the served inclusion proof of entry %d does not verify", i)
					}
				}
				proof := c.consistencyProof(first.size, cp.size)
				if !verifyConsistency(first.size, cp.size, first.root, cp.root, proof) {
					t.Fatalf("the served consistency proof from %d to %d does not verify", first.size, cp.size)
				}
				bad := append([][32]byte{}, proof...)
				bad[0][0] ^= 1
				if verifyConsistency(first.size, cp.size, first.root, cp.root, bad) {
					t.Fatal("a changed consistency proof verifies")
				}
			})

			t.Run("a standalone builder witnesses over the builder protocol with a key of its own", func(t *testing.T) {
				c.t = t
				must(apiJSON(t, "POST", srv.URL+"/v1/admin/orgs", admin, map[string]string{"id": "lab-b", "kind": "operator"}, nil), 201)
				must(apiJSON(t, "POST", srv.URL+"/v1/admin/tokens", admin, map[string]string{"name": "builder-b", "role": "builder", "operator": "lab-b"}, &tok), 201)
				keys := t.TempDir()
				key := testenv.BuilderKeygen(t, keys, "builder-b")
				testenv.StartBuilder(t, testenv.BuilderOptions{Coordinator: srv.URL, Token: tok.Token, Key: key, Name: "builder-b",
					Args: []string{"--witness-every", "100ms"}})
				testenv.Eventually(t, 60*time.Second, func() error {
					var now struct {
						Policy struct {
							Witnesses []struct {
								VerifierKey string `json:"verifier_key"`
								Operator    string `json:"operator"`
							} `json:"witnesses"`
						} `json:"policy"`
					}
					must(apiJSON(t, "GET", srv.URL+"/v1/log", "", nil, &now), 200)
					c.witnesses = c.witnesses[:0]
					ops := map[string]bool{}
					for _, w := range now.Policy.Witnesses {
						c.witnesses = append(c.witnesses, w.VerifierKey)
						ops[w.Operator] = true
					}
					if !ops["lab-b"] {
						return fmt.Errorf("no witness of lab-b yet: %v", ops)
					}
					b, err := c.tryGet("/checkpoint")
					if err != nil {
						return err
					}
					if cp := c.parseCheckpoint(b); cp.cosigners < 2 {
						return fmt.Errorf("the served checkpoint carries %d verified cosignatures, want the local builder's and builder-b's", cp.cosigners)
					}
					return nil
				})
				witnessKey, err := os.ReadFile(key + ".witness")
				if err != nil {
					t.Fatalf("the builder kept no witness key beside its own: %v", err)
				}
				attestationKey, _ := os.ReadFile(key)
				if bytes.Equal(witnessKey, attestationKey) {
					t.Fatal("the witness key is the attestation key")
				}
			})

			t.Run("a key rotation is logged", func(t *testing.T) {
				c.t = t
				if code := apiJSON(t, "POST", srv.URL+"/v1/admin/keys/rotate", admin, map[string]string{"role": "timestamp"}, nil); code != 200 && code != 204 {
					t.Fatalf("rotate: %d", code)
				}
				testenv.Eventually(t, 20*time.Second, func() error {
					b, err := c.tryGet("/checkpoint")
					if err != nil {
						return err
					}
					for _, e := range c.entries(c.parseCheckpoint(b).size) {
						var m map[string]any
						_ = json.Unmarshal(e, &m)
						if m["type"] == "key.rotated" && m["role"] == "timestamp" {
							return nil
						}
					}
					return fmt.Errorf("no key.rotated entry yet")
				})
			})

			t.Run("the product page links its timeline to the log's entries", func(t *testing.T) {
				c.t = t
				page := string(c.get("/products/acme-cam"))
				links := regexp.MustCompile(`class="log-entry" href="/v1/log/entries/(\d+)"`).FindAllStringSubmatch(page, -1)
				if len(links) == 0 {
					t.Fatalf("the product page links no log entry")
				}
				types := map[any]bool{}
				for _, l := range links {
					var e map[string]any
					if err := json.Unmarshal(c.get("/v1/log/entries/"+l[1]), &e); err != nil || e["subject"] != "acme-cam" {
						t.Errorf("entry %s linked from the page: %v %v", l[1], e, err)
					}
					types[e["type"]] = true
				}
				for _, want := range []string{"product.registered", "product.status", "deposit.released"} {
					if !types[want] {
						t.Errorf("the page links no %s entry (links: %v)", want, types)
					}
				}
			})

			t.Run("the signed TUF root carries the log's key and witnesses", func(t *testing.T) {
				testenv.Eventually(t, 30*time.Second, func() error {
					var root struct {
						Signed struct {
							Version int `json:"version"`
							Log     struct {
								LogKey    string `json:"log_key"`
								Quorum    int    `json:"quorum"`
								Witnesses []struct {
									VerifierKey string `json:"verifier_key"`
									Operator    string `json:"operator"`
								} `json:"witnesses"`
							} `json:"afterlife_log"`
						} `json:"signed"`
					}
					if code := apiJSON(t, "GET", srv.URL+"/tuf/root.json", "", nil, &root); code != 200 {
						return fmt.Errorf("root.json: %d", code)
					}
					l := root.Signed.Log
					if l.LogKey != info.VerifierKey || l.Quorum != 1 || len(l.Witnesses) == 0 || l.Witnesses[0].Operator == "" {
						return fmt.Errorf("root version %d carries %+v", root.Signed.Version, l)
					}
					return nil
				})
			})

			t.Run("afterlife log verify checks policy, inclusion and consistency offline", func(t *testing.T) {
				dir := t.TempDir()
				srvArgs := []string{"--server", srv.URL}
				write := func(name, content string) string {
					p := filepath.Join(dir, name)
					if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
					return p
				}
				fetch := func(name string, args ...string) string {
					out, _ := afterlife(t, true, append(append([]string{"log"}, args...), srvArgs...)...)
					return write(name, out)
				}
				policy := fetch("policy.json", "policy")
				oldCP := write("old.checkpoint", string(c.get("/checkpoint")))
				old := c.parseCheckpoint(c.get("/checkpoint"))
				// The release handed the product over; the vendor moves it on.
				if code := apiJSON(t, "POST", srv.URL+"/v1/products/acme-cam/status", vendor, map[string]string{"status": "community"}, nil); code != 200 {
					t.Fatalf("status change: %d", code)
				}
				var cur c2spCheckpoint
				testenv.Eventually(t, 20*time.Second, func() error {
					b, err := c.tryGet("/checkpoint")
					if err != nil {
						return err
					}
					if cur = c.parseCheckpoint(b); cur.size == old.size {
						return fmt.Errorf("the log has not grown past %d", old.size)
					}
					write("new.checkpoint", string(b))
					return nil
				})
				proof := fetch("consistency.proof", "consistency", strconv.Itoa(old.size), strconv.Itoa(cur.size))
				bundle := fetch("entry.proof", "proof", strconv.Itoa(sealedIdx))
				out, _ := afterlife(t, true, "log", "verify", "--policy", policy, "--checkpoint", filepath.Join(dir, "new.checkpoint"),
					"--bundle", bundle, "--old", oldCP, "--new", filepath.Join(dir, "new.checkpoint"), "--consistency", proof)
				if strings.Count(out, "ok: ") != 3 {
					t.Fatalf("verify said:\n%s", out)
				}

				b, _ := os.ReadFile(bundle)
				tampered := write("tampered.proof", strings.Replace(string(b), "index "+strconv.Itoa(sealedIdx), "index "+strconv.Itoa(sealedIdx+1), 1))
				if _, stderr := afterlife(t, false, "log", "verify", "--policy", policy, "--bundle", tampered); !strings.Contains(stderr, "not in the checkpoint") {
					t.Errorf("a bundle moved to another index: %s", stderr)
				}
				var pol map[string]any
				pb, _ := os.ReadFile(policy)
				_ = json.Unmarshal(pb, &pol)
				pol["quorum"] = 3 // two operators witness here
				pb, _ = json.Marshal(pol)
				strict := write("strict.json", string(pb))
				if _, stderr := afterlife(t, false, "log", "verify", "--policy", strict, "--checkpoint", filepath.Join(dir, "new.checkpoint")); !strings.Contains(stderr, "not enough witnesses") {
					t.Errorf("a checkpoint of at most two operators met a quorum of three: %s", stderr)
				}
				if _, stderr := afterlife(t, false, "log", "verify", "--policy", policy, "--old", filepath.Join(dir, "new.checkpoint"), "--new", oldCP, "--consistency", proof); stderr == "" {
					t.Error("a checkpoint was accepted as extending a newer one")
				}
			})
		})
	}
}

// c2spClient reads a log served in the C2SP tlog-tiles layout.
type c2spClient struct {
	t            *testing.T // the running (sub)test
	base, url    string     // the server, and its log's prefix
	origin, vkey string
	witnesses    []string // cosignature/v1 vkeys
}

type c2spCheckpoint struct {
	size      int
	root      [32]byte
	cosigners int // witnesses whose cosignature verified
}

// cosignedBy checks a C2SP tlog-cosignature (cosignature/v1) line's
// signature against a witness vkey (algorithm 0x04): the signature is key
// id (4 bytes), timestamp (8, big-endian) and Ed25519 over
// "cosignature/v1\ntime <t>\n" and the checkpoint body.
func cosignedBy(vkey, name string, sig, text []byte) bool {
	parts := strings.SplitN(vkey, "+", 3)
	key, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if len(parts) != 3 || err != nil || len(key) != 33 || key[0] != 0x04 || parts[0] != name || len(sig) != 4+8+64 {
		return false
	}
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	if !bytes.Equal(h[:4], sig[:4]) {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[4:12])
	msg := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", ts)), text...)
	return ed25519.Verify(key[1:], msg, sig[12:])
}

func (c *c2spClient) get(path string) []byte {
	c.t.Helper()
	b, err := c.tryGet(path)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func (c *c2spClient) tryGet(path string) ([]byte, error) {
	// The log's C2SP paths are under its prefix; the API and pages are not.
	url := c.base + path
	if strings.HasPrefix(path, "/checkpoint") || strings.HasPrefix(path, "/tile/") {
		url = c.url + path
	}
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b, nil
}

// checkpoint fetches and verifies the checkpoint: C2SP signed-note with an
// Ed25519 signature (key id: SHA-256 of name, newline, 0x01, public key).
func (c *c2spClient) checkpoint() c2spCheckpoint {
	c.t.Helper()
	b := c.get("/checkpoint")
	return c.parseCheckpoint(b)
}

func (c *c2spClient) parseCheckpoint(b []byte) c2spCheckpoint {
	c.t.Helper()
	text, sigs, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		c.t.Fatalf("checkpoint without signatures: %q", b)
	}
	text = append(text, '\n')
	parts := strings.SplitN(c.vkey, "+", 3)
	keyBytes, _ := base64.StdEncoding.DecodeString(parts[2])
	if len(parts) != 3 || len(keyBytes) != 33 || keyBytes[0] != 1 {
		c.t.Fatalf("log key %q is not an Ed25519 signed-note key", c.vkey)
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), keyBytes...))
	verified, cosigners := false, 0
	for _, line := range strings.Split(strings.TrimSpace(string(sigs)), "\n") {
		name, sig64, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		sig, err := base64.StdEncoding.DecodeString(sig64)
		if !ok || err != nil || len(sig) < 4 || name != parts[0] || !bytes.Equal(sig[:4], h[:4]) {
			for _, w := range c.witnesses {
				if cosignedBy(w, name, sig, text) {
					cosigners++
				}
			}
			continue
		}
		if !ed25519.Verify(keyBytes[1:], text, sig[4:]) {
			c.t.Fatalf("the log's signature on the checkpoint does not verify")
		}
		verified = true
	}
	if !verified {
		c.t.Fatalf("the checkpoint carries no signature of the log's key:\n%s", b)
	}
	lines := strings.Split(string(text), "\n")
	if lines[0] != c.origin {
		c.t.Fatalf("checkpoint origin %q, want %q", lines[0], c.origin)
	}
	size, err := strconv.Atoi(lines[1])
	root, err2 := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || err2 != nil || len(root) != 32 {
		c.t.Fatalf("checkpoint body %q", text)
	}
	return c2spCheckpoint{size: size, root: [32]byte(root), cosigners: cosigners}
}

// tilePath is a C2SP tile index: groups of three digits, all but the last
// prefixed with x, and .p/W for a partial tile.
func tilePath(n, w int) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	if w > 0 {
		s += fmt.Sprintf(".p/%d", w)
	}
	return s
}

// bundles fetches the level-0 tiles ("0") or entry bundles ("entries")
// covering size entries.
func (c *c2spClient) bundles(kind string, size int) [][]byte {
	var out [][]byte
	for n := 0; n*256 < size; n++ {
		w := 0
		if size-n*256 < 256 {
			w = size - n*256
		}
		out = append(out, c.get("/tile/"+kind+"/"+tilePath(n, w)))
	}
	return out
}

func (c *c2spClient) entries(size int) [][]byte {
	var out [][]byte
	for _, b := range c.bundles("entries", size) {
		for len(b) >= 2 {
			n := int(binary.BigEndian.Uint16(b))
			out = append(out, b[2:2+n])
			b = b[2+n:]
		}
	}
	if len(out) != size {
		c.t.Fatalf("entry bundles hold %d entries, want %d", len(out), size)
	}
	return out
}

func (c *c2spClient) leafHashes(size int) [][32]byte {
	var out [][32]byte
	for _, b := range c.bundles("0", size) {
		for ; len(b) >= 32; b = b[32:] {
			out = append(out, [32]byte(b[:32]))
		}
	}
	if len(out) != size {
		c.t.Fatalf("level-0 tiles hold %d hashes, want %d", len(out), size)
	}
	return out
}

// inclusionProof reads the proof bundle (C2SP tlog-proof: header, extra,
// index, hashes, blank line, checkpoint).
func (c *c2spClient) inclusionProof(i int) (int, [][32]byte) {
	b := string(c.get("/v1/log/entries/" + strconv.Itoa(i) + "/proof"))
	head, _, _ := strings.Cut(b, "\n\n")
	lines := strings.Split(head, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		c.t.Fatalf("proof bundle header %q", lines[0])
	}
	var idx int
	var proof [][32]byte
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "extra "):
		case strings.HasPrefix(l, "index "):
			idx, _ = strconv.Atoi(strings.TrimPrefix(l, "index "))
		default:
			h, err := base64.StdEncoding.DecodeString(l)
			if err != nil || len(h) != 32 {
				c.t.Fatalf("proof line %q", l)
			}
			proof = append(proof, [32]byte(h))
		}
	}
	return idx, proof
}

func (c *c2spClient) consistencyProof(old, size int) [][32]byte {
	b := c.get(fmt.Sprintf("/v1/log/consistency?old=%d&size=%d", old, size))
	var out [][32]byte
	for _, l := range strings.Fields(string(b)) {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != 32 {
			c.t.Fatalf("consistency proof line %q", l)
		}
		out = append(out, [32]byte(h))
	}
	return out
}

// RFC 6962 / RFC 9162 hashing.
func leafHash(e []byte) [32]byte { return sha256.Sum256(append([]byte{0}, e...)) }

func nodeHash(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// treeHash is MTH over leaf hashes (RFC 9162 §2.1.1).
func treeHash(leaves [][32]byte) [32]byte {
	if len(leaves) == 0 {
		return sha256.Sum256(nil)
	}
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return nodeHash(treeHash(leaves[:k]), treeHash(leaves[k:]))
}

// verifyInclusion is RFC 9162 §2.1.3.2.
func verifyInclusion(index, size int, leaf [32]byte, proof [][32]byte, root [32]byte) bool {
	if index >= size {
		return false
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}

// verifyConsistency is RFC 9162 §2.1.4.2.
func verifyConsistency(first, second int, firstRoot, secondRoot [32]byte, proof [][32]byte) bool {
	if first == second {
		return len(proof) == 0 && firstRoot == secondRoot
	}
	if first == 0 || first > second || len(proof) == 0 {
		return false
	}
	if first&(first-1) == 0 { // a power of two: the old root starts the path
		proof = append([][32]byte{firstRoot}, proof...)
	}
	fn, sn := first-1, second-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := proof[0], proof[0]
	for _, c := range proof[1:] {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			fr = nodeHash(c, fr)
			sr = nodeHash(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = nodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	return fr == firstRoot && sr == secondRoot && sn == 0
}
