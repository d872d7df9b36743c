package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestGenerateThenLoadReturnsTheSameKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "builder.key")
	priv, err := Generate(path)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key file does not start with a PKCS#8 PEM header:\n%s", data)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !priv.Equal(loaded) {
		t.Error("loaded key differs from generated key")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Generate, want only the key file", len(entries))
	}
}

func TestGenerateRefusesToOverwriteAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "builder.key")
	first, err := Generate(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(path); !errs.Is(err, errs.Conflict) {
		t.Fatalf("second Generate error = %v, want kind conflict", err)
	}
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Equal(again) {
		t.Error("the existing key was replaced")
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})

	tests := []struct {
		name     string
		data     []byte
		mode     os.FileMode
		wantKind errs.Kind
		wantText string
	}{
		{"a group-readable file is refused", good, 0o640, errs.Forbidden, "chmod 600"},
		{"a world-readable file is refused", good, 0o604, errs.Forbidden, "accessible by group or others"},
		{"a file that is not PEM is refused", []byte("hello"), 0o600, errs.Invalid, "not a PEM file"},
		{"a PEM of another type is refused", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edDER}), 0o600, errs.Invalid, "want \"PRIVATE KEY\""},
		{"an ECDSA key is refused", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600, errs.Invalid, "want an ed25519 key"},
		{"garbage DER is refused", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600, errs.Invalid, "not a PKCS#8"},
		{"a huge file is refused", bytes.Repeat([]byte("A"), maxKeyFile+10), 0o600, errs.Invalid, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if !errs.Is(err, tc.wantKind) {
				t.Fatalf("Load error = %v, want kind %v", err, tc.wantKind)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Load error = %q, want it to mention %q", err, tc.wantText)
			}
		})
	}
	t.Run("a missing file is not found", func(t *testing.T) {
		if _, err := Load(filepath.Join(t.TempDir(), "absent")); !errs.Is(err, errs.NotFound) {
			t.Fatalf("Load error = %v, want kind not_found", err)
		}
	})
}

func TestPublicKeyStringRoundTrips(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := PublicKeyString(pub)
	if !strings.HasPrefix(s, "ed25519:") {
		t.Fatalf("PublicKeyString = %q, want ed25519: prefix", s)
	}
	got, err := ParsePublicKey(s)
	if err != nil {
		t.Fatalf("ParsePublicKey(%q): %v", s, err)
	}
	if !pub.Equal(got) {
		t.Error("parsed key differs")
	}
}

func TestParsePublicKeyRejectsMalformedText(t *testing.T) {
	tests := []struct{ name, in string }{
		{"an empty string is refused", ""},
		{"a missing prefix is refused", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"another algorithm is refused", "rsa:AAAA"},
		{"bad base64 is refused", "ed25519:!!!"},
		{"a short key is refused", "ed25519:AAAA"},
		{"a long key is refused", "ed25519:" + strings.Repeat("A", 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePublicKey(tc.in); !errs.Is(err, errs.Invalid) {
				t.Fatalf("ParsePublicKey(%q) error = %v, want kind invalid", tc.in, err)
			}
		})
	}
}

func TestKeyIDIsStableAndDistinguishesKeys(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	id := KeyID(pub)
	if len(id) != 32 {
		t.Fatalf("KeyID length = %d, want 32 hex digits", len(id))
	}
	if KeyID(pub) != id {
		t.Error("KeyID is not stable")
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	if KeyID(other) == id {
		t.Error("two different keys have the same KeyID")
	}
}
