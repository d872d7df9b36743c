package handover_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/handover"
)

func statement() handover.Statement {
	return handover.Statement{
		Root: handover.Root{Name: "1.root.json", SHA256: strings.Repeat("ab", 32)},
		Predicate: handover.Predicate{
			Product: "demo-cam", DeviceIDs: []string{"usb:1d6b:0104", "dt:acme,cam200"},
			HardwareRevisions: []string{"A", "B"},
			TakesEffect:       handover.TakesEffectOnRelease, Scope: handover.ScopeUpdates,
		},
	}
}

type keyCase struct {
	name string
	alg  string
	gen  func(t *testing.T) crypto.Signer
}

func keyCases() []keyCase {
	ed := func(t *testing.T) crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ec := func(t *testing.T) crypto.Signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rs := func(t *testing.T) crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	return []keyCase{
		{"an Ed25519 key", handover.Ed25519, ed},
		{"an ECDSA P-256 key", handover.ECDSAP256, ec},
		{"an RSA key with PSS padding", handover.RSAPSS, rs},
		{"an RSA key with PKCS#1 v1.5 padding", handover.RSAPKCS1v15, rs},
	}
}

// tamper rewrites the envelope's payload with edit applied, keeping the
// signature.
func tamper(t *testing.T, env []byte, edit func(string) string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	p, err := base64.StdEncoding.DecodeString(m["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	changed := edit(string(p))
	if changed == string(p) {
		t.Fatal("tamper changed nothing")
	}
	m["payload"] = base64.StdEncoding.EncodeToString([]byte(changed))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryKeyTypeSignsAndVerifiesAndRefusesForgeries(t *testing.T) {
	ctx := context.Background()
	for _, kc := range keyCases() {
		t.Run(kc.name, func(t *testing.T) {
			key := kc.gen(t)
			env, err := handover.Sign(ctx, key, kc.alg, nil, statement())
			if err != nil {
				t.Fatal(err)
			}
			other := kc.gen(t)

			t.Run("verifies with the vendor's key and returns what was signed", func(t *testing.T) {
				v, err := handover.Verify(ctx, env, handover.Trust{Key: key.Public()}, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				if v.Root != statement().Root || v.Predicate.Product != "demo-cam" || !v.Covers("USB:1d6b:0104") || v.Predicate.VendorKey.Algorithm != kc.alg {
					t.Fatalf("verified statement = %+v", v.Statement)
				}
				fp, _ := handover.Fingerprint(key.Public())
				if v.Predicate.VendorKey.Fingerprint != fp || len(v.EnvelopeSHA256) != 64 {
					t.Fatalf("key %s, envelope digest %q", v.Predicate.VendorKey.Fingerprint, v.EnvelopeSHA256)
				}
				if _, err := handover.VerifyDeclaredKey(ctx, env, time.Now()); err != nil {
					t.Fatalf("escrow check: %v", err)
				}
			})
			t.Run("is refused by a device that trusts another key", func(t *testing.T) {
				_, err := handover.Verify(ctx, env, handover.Trust{Key: other.Public()}, time.Time{})
				if !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), "not by the trusted key") {
					t.Fatalf("err = %v, want Forbidden naming the trusted key", err)
				}
			})
			t.Run("signed by another key than it declares is refused everywhere", func(t *testing.T) {
				st := statement()
				forged, err := handover.Sign(ctx, other, kc.alg, nil, st)
				if err != nil {
					t.Fatal(err)
				}
				// Declare the vendor's key over the other key's signature.
				realKey, _ := handover.ReadUnverified(env)
				forged = tamper(t, forged, func(p string) string {
					var m map[string]any
					_ = json.Unmarshal([]byte(p), &m)
					pred := m["predicate"].(map[string]any)
					pred["vendorKey"] = map[string]any{"algorithm": kc.alg, "publicKey": realKey.Predicate.VendorKey.PublicKey, "fingerprint": realKey.Predicate.VendorKey.Fingerprint}
					b, _ := json.Marshal(m)
					return string(b)
				})
				if _, err := handover.Verify(ctx, forged, handover.Trust{Key: key.Public()}, time.Time{}); !errs.Is(err, errs.Forbidden) {
					t.Fatalf("device: err = %v, want Forbidden", err)
				}
				if _, err := handover.VerifyDeclaredKey(ctx, forged, time.Now()); !errs.Is(err, errs.Invalid) {
					t.Fatalf("escrow: err = %v, want Invalid", err)
				}
			})
			t.Run("with a tampered payload is refused", func(t *testing.T) {
				bad := tamper(t, env, func(p string) string { return strings.Replace(p, "usb:1d6b:0104", "usb:1d6b:0105", 1) })
				if _, err := handover.Verify(ctx, bad, handover.Trust{Key: key.Public()}, time.Time{}); !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), "signature does not verify") {
					t.Fatalf("err = %v, want Forbidden: signature does not verify", err)
				}
				if _, err := handover.VerifyDeclaredKey(ctx, bad, time.Now()); !errs.Is(err, errs.Invalid) {
					t.Fatalf("escrow: err = %v, want Invalid", err)
				}
			})
		})
	}
}

func TestAnRSASignatureVerifiesOnlyWithThePaddingItDeclares(t *testing.T) {
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	env, err := handover.Sign(ctx, key, handover.RSAPSS, nil, statement())
	if err != nil {
		t.Fatal(err)
	}
	swapped := tamper(t, env, func(p string) string { return strings.Replace(p, handover.RSAPSS, handover.RSAPKCS1v15, 1) })
	if _, err := handover.Verify(ctx, swapped, handover.Trust{Key: key.Public()}, time.Time{}); !errs.Is(err, errs.Forbidden) {
		t.Fatalf("err = %v, want Forbidden", err)
	}
}

func TestKeysAndFieldsOutsideVersionOneAreRefusedAtSigning(t *testing.T) {
	ctx := context.Background()
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name string
		key  crypto.Signer
		alg  string
		edit func(*handover.Statement)
		want string
	}{
		{"an RSA key under 2048 bits", small, "", nil, "at least 2048"},
		{"an ECDSA key on P-384", p384, "", nil, "only P-256"},
		{"an Ed25519 key declared as RSA", ed, handover.RSAPSS, nil, "does not fit"},
		{"no device ids", ed, "", func(s *handover.Statement) { s.Predicate.DeviceIDs = nil }, "no device ids"},
		{"a device id without a scheme", ed, "", func(s *handover.Statement) { s.Predicate.DeviceIDs = []string{"cam200"} }, "scheme:value"},
		{"a device id listed twice", ed, "", func(s *handover.Statement) { s.Predicate.DeviceIDs = []string{"usb:1", "USB:1"} }, "twice"},
		{"an unknown condition", ed, "", func(s *handover.Statement) { s.Predicate.TakesEffect = "now" }, "condition"},
		{"an unknown scope", ed, "", func(s *handover.Statement) { s.Predicate.Scope = "everything" }, "scope"},
		{"a root digest that is not sha256 hex", ed, "", func(s *handover.Statement) { s.Root.SHA256 = "abc" }, "64 lower-case hex"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			st := statement()
			if c.edit != nil {
				c.edit(&st)
			}
			_, err := handover.Sign(ctx, c.key, c.alg, nil, st)
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want Invalid containing %q", err, c.want)
			}
		})
	}
}

// pki is a CA, an intermediate and a leaf valid within [notBefore, notAfter].
type pki struct {
	root, inter, leaf *x509.Certificate
	leafKey           crypto.Signer
	pool              *x509.CertPool
}

func newPKI(t *testing.T, leafKey crypto.Signer, notBefore, notAfter time.Time) pki {
	t.Helper()
	mk := func(serial int64, cn string, ca bool, pub crypto.PublicKey, parent *x509.Certificate, signer crypto.Signer) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: notBefore, NotAfter: notAfter,
			BasicConstraintsValid: true, IsCA: ca,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := mk(1, "Acme Device CA", true, rootKey.Public(), nil, rootKey)
	inter := mk(2, "Acme Update Signing CA", true, interKey.Public(), root, rootKey)
	leaf := mk(3, "Acme Update Key 2019", false, leafKey.Public(), inter, interKey)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pki{root: root, inter: inter, leaf: leaf, leafKey: leafKey, pool: pool}
}

func TestACertificateChainIsCheckedAtTheTimeOfTheLogEntry(t *testing.T) {
	ctx := context.Background()
	notBefore := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kc := range keyCases() {
		t.Run(kc.name, func(t *testing.T) {
			p := newPKI(t, kc.gen(t), notBefore, notAfter)
			env, err := handover.Sign(ctx, p.leafKey, kc.alg, []*x509.Certificate{p.leaf, p.inter}, statement())
			if err != nil {
				t.Fatal(err)
			}
			other := newPKI(t, kc.gen(t), notBefore, notAfter)
			cases := []struct {
				name  string
				roots *x509.CertPool
				at    time.Time
				ok    bool
				want  errs.Kind
			}{
				{"a chain to the device's CA valid at the entry's time verifies", p.pool, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), true, 0},
				{"a certificate expired at the entry's time is refused", p.pool, notAfter.Add(time.Hour), false, errs.Forbidden},
				{"a certificate not yet valid at the entry's time is refused", p.pool, notBefore.Add(-time.Hour), false, errs.Forbidden},
				{"a chain to another CA is refused", other.pool, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), false, errs.Forbidden},
				{"no time to check the chain at is refused", p.pool, time.Time{}, false, errs.Invalid},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					_, err := handover.Verify(ctx, env, handover.Trust{Roots: c.roots}, c.at)
					if c.ok {
						if err != nil {
							t.Fatal(err)
						}
						return
					}
					if !errs.Is(err, c.want) {
						t.Fatalf("err = %v, want kind %s", err, c.want)
					}
				})
			}
			t.Run("the escrow checks the chain holds together at deposit time", func(t *testing.T) {
				if _, err := handover.VerifyDeclaredKey(ctx, env, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)); err != nil {
					t.Fatal(err)
				}
				if _, err := handover.VerifyDeclaredKey(ctx, env, notAfter.Add(time.Hour)); !errs.Is(err, errs.Invalid) {
					t.Fatalf("expired chain at deposit: err = %v, want Invalid", err)
				}
			})
		})
	}
}

func TestACertificateForAnotherKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	_, k2, _ := ed25519.GenerateKey(rand.Reader)
	p := newPKI(t, k2, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if _, err := handover.Sign(ctx, k, "", []*x509.Certificate{p.leaf}, statement()); !errs.Is(err, errs.Invalid) {
		t.Fatalf("err = %v, want Invalid", err)
	}
}

func TestRootSubjectNamesTheVersionAndDigest(t *testing.T) {
	root := []byte(`{"signed":{"_type":"root","version":3},"signatures":[]}`)
	r, err := handover.RootSubject(root)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "3.root.json" || len(r.SHA256) != 64 {
		t.Fatalf("subject = %+v", r)
	}
	if _, err := handover.RootSubject([]byte(`{"signed":{"_type":"targets","version":3}}`)); !errs.Is(err, errs.Invalid) {
		t.Fatalf("targets metadata: err = %v", err)
	}
}

func TestEnvelopesThatAreNotHandoversAreRefused(t *testing.T) {
	ctx := context.Background()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	cases := map[string][]byte{
		"not JSON":          []byte("garbage"),
		"another payload":   []byte(`{"payloadType":"text/plain","payload":"","signatures":[]}`),
		"an oversized file": bytes.Repeat([]byte(" "), handover.MaxEnvelopeSize+1),
	}
	for name, env := range cases {
		t.Run(name+" is refused", func(t *testing.T) {
			_, err := handover.Verify(ctx, env, handover.Trust{Key: k.Public()}, time.Time{})
			if !errs.Is(err, errs.Invalid) && !errs.Is(err, errs.TooLarge) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
