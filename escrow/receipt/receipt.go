// Package receipt owns deposit receipts: what a receipt states, how the
// registry signs it with its ed25519 receipt key, and how anyone verifies it
// offline with nothing but the public key and the receipt's JSON.
//
// It must not know about databases, HTTP or the blob store.
package receipt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Receipt is what the registry attests about a committed deposit.
// Version 1 receipts (made before rights classes existed) carry no rights;
// version 2 ones add the vendor's rights rules, the number of files in each
// class and the sha256 of the grant text. Both verify.
type Receipt struct {
	Version        int       `json:"version"` // 1 or 2
	Deposit        string    `json:"deposit"`
	Product        string    `json:"product"`
	Org            string    `json:"org"`
	Policy         string    `json:"policy"`
	ManifestDigest string    `json:"manifest_digest"`
	Files          int       `json:"files"`
	TotalSize      int64     `json:"total_size"`
	CommittedAt    time.Time `json:"committed_at"`
	KeyID          string    `json:"key_id"`
	// Rights are the deposit's rules in order (the last match wins; a file
	// no rule matches is private), Classes the files in each class, and
	// GrantSHA256 the hex sha256 of the vendor's grant text ("" without
	// one). Version 2 only.
	Rights      []Rule         `json:"rights,omitempty"`
	Classes     map[string]int `json:"classes,omitempty"`
	GrantSHA256 string         `json:"grant_sha256,omitempty"`
}

// Rule is one rights rule as a receipt states it (escrow/manifest's
// RightsRule; this package stays free of the manifest's types).
type Rule struct {
	Pattern string `json:"pattern"`
	Rights  string `json:"rights"`
}

// Signed is a receipt with its signature, as handed to the vendor. The
// signature covers Payload, the exact bytes of the receipt's JSON, so a
// verifier needs no canonicalisation.
type Signed struct {
	Payload   string `json:"payload"`   // base64 of the receipt JSON
	Signature string `json:"signature"` // base64 ed25519 over "afterlife-receipt:v1\n" + payload bytes
	KeyID     string `json:"key_id"`
}

// PayloadUnverified decodes the receipt s carries without checking its
// signature (Verify does both): for showing a receipt its owner was just
// handed by the server.
func (s Signed) PayloadUnverified() (Receipt, error) {
	var r Receipt
	raw, err := base64.StdEncoding.DecodeString(s.Payload)
	if err != nil {
		return r, errs.Wrap(errs.Invalid, err, "receipt payload")
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, errs.Wrap(errs.Invalid, err, "receipt payload")
	}
	return r, nil
}

const domain = "afterlife-receipt:v1\n"

// KeyID names a public key: the first 16 hex digits of its sha256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign fills r.Version (2) and r.KeyID and signs r with key.
func Sign(key ed25519.PrivateKey, r Receipt) (Signed, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return Signed{}, errs.E(errs.Internal, "receipt: signing key is not ed25519")
	}
	r.Version = 2
	r.KeyID = KeyID(pub)
	r.CommittedAt = r.CommittedAt.UTC()
	payload, err := json.Marshal(r)
	if err != nil {
		return Signed{}, errs.Wrap(errs.Internal, err, "receipt: encode")
	}
	sig := ed25519.Sign(key, append([]byte(domain), payload...))
	return Signed{
		Payload:   base64.StdEncoding.EncodeToString(payload),
		Signature: base64.StdEncoding.EncodeToString(sig),
		KeyID:     r.KeyID,
	}, nil
}

// Verify checks a signed receipt's JSON (as stored by the vendor) against
// pub and returns the receipt it vouches for. It needs no network.
func Verify(pub ed25519.PublicKey, signedJSON []byte) (Receipt, error) {
	var s Signed
	if err := json.Unmarshal(signedJSON, &s); err != nil {
		return Receipt{}, errs.Wrap(errs.Invalid, err, "receipt: not a signed receipt")
	}
	payload, err := base64.StdEncoding.DecodeString(s.Payload)
	if err != nil {
		return Receipt{}, errs.Wrap(errs.Invalid, err, "receipt: payload is not base64")
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Receipt{}, errs.E(errs.Invalid, "receipt: malformed signature")
	}
	if len(pub) != ed25519.PublicKeySize {
		return Receipt{}, errs.E(errs.Invalid, "receipt: public key is not ed25519")
	}
	if !ed25519.Verify(pub, append([]byte(domain), payload...), sig) {
		return Receipt{}, errs.E(errs.Invalid, "receipt: signature does not verify with key %s", KeyID(pub))
	}
	var r Receipt
	if err := json.Unmarshal(payload, &r); err != nil {
		return Receipt{}, errs.Wrap(errs.Invalid, err, "receipt: payload is not a receipt")
	}
	if (r.Version != 1 && r.Version != 2) || r.KeyID != KeyID(pub) {
		return Receipt{}, errs.E(errs.Invalid, "receipt: unsupported version %d or key id %q", r.Version, r.KeyID)
	}
	return r, nil
}

// FormatPublicKey is the text form of a public key: "ed25519:<base64>".
func FormatPublicKey(pub ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a public key as "ed25519:<base64>", bare base64, a
// PEM "PUBLIC KEY" block (PKIX), or the JSON GET /v1/escrow/receipt-key
// answers ({"algorithm", "public_key", "key_id"}; a key_id must match).
func ParsePublicKey(text []byte) (ed25519.PublicKey, error) {
	s := strings.TrimSpace(string(text))
	if strings.HasPrefix(s, "{") {
		var served struct {
			Algorithm string `json:"algorithm"`
			PublicKey string `json:"public_key"`
			KeyID     string `json:"key_id"`
		}
		if err := json.Unmarshal([]byte(s), &served); err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "public key: bad JSON")
		}
		if served.Algorithm != "" && served.Algorithm != "ed25519" {
			return nil, errs.E(errs.Invalid, "public key: algorithm %q, want ed25519", served.Algorithm)
		}
		pub, err := ParsePublicKey([]byte(served.PublicKey))
		if err != nil {
			return nil, err
		}
		if served.KeyID != "" && served.KeyID != KeyID(pub) {
			return nil, errs.E(errs.Invalid, "public key: key_id %s does not match the key (%s)", served.KeyID, KeyID(pub))
		}
		return pub, nil
	}
	if block, _ := pem.Decode([]byte(s)); block != nil {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "public key: bad PEM")
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errs.E(errs.Invalid, "public key: not ed25519")
		}
		return pub, nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "ed25519:"))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errs.E(errs.Invalid, "public key: want ed25519:<base64 of 32 bytes> or PEM")
	}
	return ed25519.PublicKey(b), nil
}
