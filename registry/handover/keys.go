package handover

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// The signature algorithms a statement may declare. Each names the key
// type, the hash and (for RSA) the padding; a signature is verified only
// with the algorithm its statement declares.
const (
	// Ed25519 is pure Ed25519 (RFC 8032).
	Ed25519 = "ed25519"
	// ECDSAP256 is ECDSA on NIST P-256 over SHA-256, ASN.1 DER signatures.
	ECDSAP256 = "ecdsa-p256-sha256"
	// RSAPSS is RSASSA-PSS over SHA-256, MGF1 with SHA-256, salt as long
	// as the hash (32 bytes) when signing; verification accepts any salt
	// length, as RFC 8017 allows.
	RSAPSS = "rsa-pss-sha256"
	// RSAPKCS1v15 is RSASSA-PKCS1-v1_5 over SHA-256, for vendors whose
	// devices only check that padding.
	RSAPKCS1v15 = "rsa-pkcs1v15-sha256"
)

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// Fingerprint is "sha256:" and the hex SHA-256 of the key's DER-encoded
// SubjectPublicKeyInfo.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", errs.Wrap(errs.Invalid, err, "handover: public key")
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// checkAlgorithm accepts the algorithm for the key, or says why not.
func checkAlgorithm(alg string, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if alg == Ed25519 {
			return nil
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return errs.E(errs.Invalid, "handover: ECDSA key on %s: only P-256 is accepted", k.Curve.Params().Name)
		}
		if alg == ECDSAP256 {
			return nil
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return errs.E(errs.Invalid, "handover: RSA key of %d bits: at least %d", k.N.BitLen(), minRSABits)
		}
		if alg == RSAPSS || alg == RSAPKCS1v15 {
			return nil
		}
	default:
		return errs.E(errs.Invalid, "handover: key type %T: want Ed25519, ECDSA P-256 or RSA", pub)
	}
	return errs.E(errs.Invalid, "handover: algorithm %q does not fit a %T key", alg, pub)
}

// DefaultAlgorithm is the algorithm Sign uses for a key when none is
// asked for: Ed25519, ECDSA P-256 with SHA-256, RSA-PSS with SHA-256.
func DefaultAlgorithm(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return ECDSAP256
	case *rsa.PublicKey:
		return RSAPSS
	}
	return Ed25519
}

// verifierFor loads sigstore's verifier of alg for pub.
func verifierFor(alg string, pub crypto.PublicKey) (signature.Verifier, error) {
	if err := checkAlgorithm(alg, pub); err != nil {
		return nil, err
	}
	switch alg {
	case Ed25519:
		return signature.LoadED25519Verifier(pub.(ed25519.PublicKey))
	case ECDSAP256:
		return signature.LoadECDSAVerifier(pub.(*ecdsa.PublicKey), crypto.SHA256)
	case RSAPSS:
		return signature.LoadRSAPSSVerifier(pub.(*rsa.PublicKey), crypto.SHA256, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256})
	default:
		return signature.LoadRSAPKCS1v15Verifier(pub.(*rsa.PublicKey), crypto.SHA256)
	}
}

// signerFor loads sigstore's signer of alg for priv.
func signerFor(alg string, priv crypto.Signer) (signature.Signer, error) {
	if err := checkAlgorithm(alg, priv.Public()); err != nil {
		return nil, err
	}
	switch alg {
	case Ed25519:
		k, ok := priv.(ed25519.PrivateKey)
		if !ok {
			return nil, errs.E(errs.Invalid, "handover: the Ed25519 key is not in memory")
		}
		return signature.LoadED25519Signer(k)
	case ECDSAP256:
		k, ok := priv.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errs.E(errs.Invalid, "handover: the ECDSA key is not in memory")
		}
		return signature.LoadECDSASigner(k, crypto.SHA256)
	case RSAPSS:
		k, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return nil, errs.E(errs.Invalid, "handover: the RSA key is not in memory")
		}
		return signature.LoadRSAPSSSigner(k, crypto.SHA256, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	default:
		k, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return nil, errs.E(errs.Invalid, "handover: the RSA key is not in memory")
		}
		return signature.LoadRSAPKCS1v15Signer(k, crypto.SHA256)
	}
}

// dsseKey adapts a sigstore signer or verifier to DSSE, under the key's
// fingerprint as keyid.
type dsseKey struct {
	signer   signature.Signer   // nil when verifying
	verifier signature.Verifier // nil when signing
	pub      crypto.PublicKey
	keyID    string
}

var _ dsse.SignerVerifier = dsseKey{}

func (k dsseKey) Sign(ctx context.Context, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return k.signer.SignMessage(bytes.NewReader(data))
}

func (k dsseKey) Verify(ctx context.Context, data, sig []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return k.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(data))
}

func (k dsseKey) KeyID() (string, error) { return k.keyID, nil }

func (k dsseKey) Public() crypto.PublicKey { return k.pub }

// ParsePublicKey reads a PEM public key ("PUBLIC KEY", PKIX) or a PEM
// certificate, whose key it returns.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errs.E(errs.Invalid, "handover: not a PEM public key")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "handover: public key")
		}
		return pub, nil
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "handover: certificate")
		}
		return c.PublicKey, nil
	}
	return nil, errs.E(errs.Invalid, "handover: PEM block %q: want PUBLIC KEY or CERTIFICATE", blk.Type)
}

// ParsePrivateKey reads a PEM private key: PKCS#8 ("PRIVATE KEY"),
// PKCS#1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY").
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errs.E(errs.Invalid, "handover: not a PEM private key")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, errs.E(errs.Invalid, "handover: PEM block %q: want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "handover: private key")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errs.E(errs.Invalid, "handover: key type %T cannot sign", k)
	}
	return s, nil
}

// ParseCertificates reads every PEM certificate in b, in order.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "handover: certificate")
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errs.E(errs.Invalid, "handover: no PEM certificate found")
	}
	return out, nil
}

func encodePublicKey(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", errs.Wrap(errs.Invalid, err, "handover: public key")
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

func sameKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
