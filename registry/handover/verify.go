package handover

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Trust is what a device holds of its vendor: the vendor's public key, or
// the CA certificates its update key is certified by. Set one.
type Trust struct {
	// Key is the vendor's update-signing public key.
	Key crypto.PublicKey
	// Roots are the CA certificates the device trusts; the statement's
	// certificate chain must lead to one of them.
	Roots *x509.CertPool
}

// Verified is a statement whose signature checked out, with the digest of
// the envelope it came in (an id for records and logs).
type Verified struct {
	Statement
	// EnvelopeSHA256 is the hex SHA-256 of the envelope's bytes.
	EnvelopeSHA256 string
}

// Verify checks a handover envelope against what the device trusts: the
// statement must be signed, with the algorithm it declares, by the key it
// declares, and that key must be trust.Key, or certified by a chain that
// leads to trust.Roots and is valid at the time at (the time of the
// statement's log entry, never the time of install). A signature by
// another key, a tampered payload or a chain not valid at that time is
// errs.Forbidden; a malformed envelope or statement is errs.Invalid.
func Verify(ctx context.Context, envelope []byte, trust Trust, at time.Time) (Verified, error) {
	v, pub, certs, err := verifyDeclared(ctx, envelope)
	if err != nil {
		return Verified{}, err
	}
	switch {
	case trust.Key != nil:
		if !sameKey(trust.Key, pub) {
			fp, _ := Fingerprint(trust.Key)
			return Verified{}, errs.E(errs.Forbidden, "handover: signed by vendor key %s, not by the trusted key %s", v.Predicate.VendorKey.Fingerprint, fp)
		}
	case trust.Roots != nil:
		if err := verifyChain(certs, trust.Roots, at); err != nil {
			return Verified{}, err
		}
	default:
		return Verified{}, errs.E(errs.Invalid, "handover: nothing to verify against: give the vendor's key or CA certificates")
	}
	return v, nil
}

// VerifyDeclaredKey checks a handover envelope as the escrow does at
// deposit, knowing nothing the vendor's devices trust: the statement must
// be signed, with the algorithm it declares, by the key it declares, and a
// certificate chain it carries must hold together (each certificate
// signed by the next, the first certifying the key) at the time at. It
// does not say the key is the one the devices trust; only Verify does.
// Every failure is errs.Invalid.
func VerifyDeclaredKey(ctx context.Context, envelope []byte, at time.Time) (Verified, error) {
	v, _, certs, err := verifyDeclared(ctx, envelope)
	if err != nil {
		if errs.Is(err, errs.Forbidden) {
			return Verified{}, errs.Wrap(errs.Invalid, err, "%s", errs.Message(err))
		}
		return Verified{}, err
	}
	if len(certs) > 0 {
		pool := x509.NewCertPool()
		pool.AddCert(certs[len(certs)-1])
		if err := verifyChain(certs, pool, at); err != nil {
			return Verified{}, errs.Wrap(errs.Invalid, err, "%s", errs.Message(err))
		}
	}
	return v, nil
}

// verifyChain checks that certs (leaf first) lead to roots at time at.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, at time.Time) error {
	if len(certs) == 0 {
		return errs.E(errs.Forbidden, "handover: the statement carries no certificate chain, and the device trusts a CA")
	}
	if at.IsZero() {
		return errs.E(errs.Invalid, "handover: a certificate chain is verified as of the statement's log entry: no time given")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return errs.Wrap(errs.Forbidden, err, "handover: certificate chain of %s not valid at %s", certs[0].Subject, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyDeclared parses the envelope, reads the key the statement
// declares and checks the signature with it. Tampering is errs.Forbidden.
func verifyDeclared(ctx context.Context, envelope []byte) (Verified, crypto.PublicKey, []*x509.Certificate, error) {
	if len(envelope) > MaxEnvelopeSize {
		return Verified{}, nil, nil, errs.E(errs.TooLarge, "handover: envelope is %d bytes, limit %d", len(envelope), MaxEnvelopeSize)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return Verified{}, nil, nil, errs.Wrap(errs.Invalid, err, "handover: not a DSSE envelope")
	}
	if env.PayloadType != PayloadType {
		return Verified{}, nil, nil, errs.E(errs.Invalid, "handover: payload type %q, want %q", env.PayloadType, PayloadType)
	}
	// Read the declared key from the payload before the signature is
	// checked; nothing else is used until it is.
	raw, err := env.DecodeB64Payload()
	if err != nil {
		return Verified{}, nil, nil, errs.Wrap(errs.Invalid, err, "handover: payload is not base64")
	}
	st, err := parseStatement(raw)
	if err != nil {
		return Verified{}, nil, nil, err
	}
	vk := st.Predicate.VendorKey
	pub, err := ParsePublicKey([]byte(vk.PublicKey))
	if err != nil {
		return Verified{}, nil, nil, err
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return Verified{}, nil, nil, err
	}
	if fp != vk.Fingerprint {
		return Verified{}, nil, nil, errs.E(errs.Invalid, "handover: declared fingerprint %s is not the declared key's (%s)", vk.Fingerprint, fp)
	}
	var certs []*x509.Certificate
	if len(vk.Certificates) > maxCerts {
		return Verified{}, nil, nil, errs.E(errs.Invalid, "handover: %d certificates, at most %d", len(vk.Certificates), maxCerts)
	}
	for i, p := range vk.Certificates {
		cs, err := ParseCertificates([]byte(p))
		if err != nil || len(cs) != 1 {
			return Verified{}, nil, nil, errs.E(errs.Invalid, "handover: certificate %d is not one PEM certificate", i+1)
		}
		certs = append(certs, cs[0])
	}
	if len(certs) > 0 && !sameKey(pub, certs[0].PublicKey) {
		return Verified{}, nil, nil, errs.E(errs.Invalid, "handover: the first certificate (%s) does not certify the declared key", certs[0].Subject)
	}
	verifier, err := verifierFor(vk.Algorithm, pub)
	if err != nil {
		return Verified{}, nil, nil, err
	}
	ev, err := dsse.NewEnvelopeVerifier(dsseKey{verifier: verifier, pub: pub, keyID: fp})
	if err != nil {
		return Verified{}, nil, nil, fmt.Errorf("handover: dsse verifier: %w", err)
	}
	if _, _, err := ev.VerifyAndDecode(ctx, &env); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Verified{}, nil, nil, ctxErr
		}
		return Verified{}, nil, nil, errs.Wrap(errs.Forbidden, err, "handover: signature does not verify with the declared %s key %s", vk.Algorithm, fp)
	}
	sum := sha256.Sum256(envelope)
	return Verified{Statement: st, EnvelopeSHA256: hex.EncodeToString(sum[:])}, pub, certs, nil
}

// parseStatement reads an in-toto v1 statement with one root subject and
// a handover predicate, and validates it.
func parseStatement(payload []byte) (Statement, error) {
	s := &intoto.Statement{}
	if err := protojson.Unmarshal(payload, s); err != nil {
		return Statement{}, errs.Wrap(errs.Invalid, err, "handover: payload is not an in-toto statement")
	}
	if s.GetType() != intoto.StatementTypeUri {
		return Statement{}, errs.E(errs.Invalid, "handover: statement type %q, want %q", s.GetType(), intoto.StatementTypeUri)
	}
	if s.GetPredicateType() != PredicateType {
		return Statement{}, errs.E(errs.Invalid, "handover: predicate type %q, want %q", s.GetPredicateType(), PredicateType)
	}
	if err := s.Validate(); err != nil {
		return Statement{}, errs.Wrap(errs.Invalid, err, "handover: statement is not valid in-toto")
	}
	if len(s.GetSubject()) != 1 {
		return Statement{}, errs.E(errs.Invalid, "handover: %d subjects; the statement names exactly one root", len(s.GetSubject()))
	}
	sub := s.GetSubject()[0]
	st := Statement{Root: Root{Name: sub.GetName(), SHA256: sub.GetDigest()["sha256"]}}
	pj, err := protojson.Marshal(s.GetPredicate())
	if err != nil {
		return Statement{}, errs.Wrap(errs.Invalid, err, "handover: predicate cannot be read")
	}
	if err := json.Unmarshal(pj, &st.Predicate); err != nil {
		return Statement{}, errs.Wrap(errs.Invalid, err, "handover: predicate is not a handover predicate")
	}
	if err := st.Validate(); err != nil {
		return Statement{}, err
	}
	return st, nil
}

// ReadUnverified returns the statement in an envelope without checking
// its signature, to show what an envelope claims before it is verified.
func ReadUnverified(envelope []byte) (Statement, error) {
	if len(envelope) > MaxEnvelopeSize {
		return Statement{}, errs.E(errs.TooLarge, "handover: envelope is %d bytes, limit %d", len(envelope), MaxEnvelopeSize)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return Statement{}, errs.Wrap(errs.Invalid, err, "handover: not a DSSE envelope")
	}
	raw, err := env.DecodeB64Payload()
	if err != nil {
		return Statement{}, errs.Wrap(errs.Invalid, err, "handover: payload is not base64")
	}
	return parseStatement(raw)
}
