package receipt

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"
)

func TestSignedReceiptVerifiesOfflineAndTamperingIsCaught(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	r := Receipt{Deposit: "dep_1", Product: "demo-cam", Org: "acme", ManifestDigest: "sha256:00", Files: 3, TotalSize: 42, CommittedAt: time.Unix(1700000000, 0)}
	s, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(s)

	got, err := Verify(pub, good)
	if err != nil {
		t.Fatal(err)
	}
	if got.Deposit != "dep_1" || got.Files != 3 || got.TotalSize != 42 || !got.CommittedAt.Equal(r.CommittedAt) {
		t.Fatalf("verified receipt = %+v", got)
	}

	tampered := s
	forged := got
	forged.TotalSize = 43
	p, _ := json.Marshal(forged)
	tampered.Payload = base64.StdEncoding.EncodeToString(p)
	bad, _ := json.Marshal(tampered)

	tests := []struct {
		name string
		pub  ed25519.PublicKey
		data []byte
	}{
		{"a changed payload is refused", pub, bad},
		{"another key is refused", other, good},
		{"garbage is refused", pub, []byte("{")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Verify(tt.pub, tt.data); err == nil {
				t.Fatal("verified")
			}
		})
	}
}

func TestParsePublicKeyReadsEveryForm(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	forms := map[string]string{
		"text form":                             FormatPublicKey(pub),
		"bare base64":                           base64.StdEncoding.EncodeToString(pub),
		"PEM":                                   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"JSON served at /v1/escrow/receipt-key": `{"algorithm":"ed25519","public_key":"` + FormatPublicKey(pub) + `","key_id":"` + KeyID(pub) + `"}` + "\n",
	}
	for name, s := range forms {
		t.Run("the "+name+" parses", func(t *testing.T) {
			got, err := ParsePublicKey([]byte(s))
			if err != nil || !got.Equal(pub) {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
	if _, err := ParsePublicKey([]byte("ed25519:AAAA")); err == nil {
		t.Fatal("a short key parsed")
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := ParsePublicKey([]byte(`{"algorithm":"ed25519","public_key":"` + FormatPublicKey(pub) + `","key_id":"` + KeyID(other) + `"}`)); err == nil {
		t.Fatal("served JSON whose key_id names another key parsed")
	}
}
