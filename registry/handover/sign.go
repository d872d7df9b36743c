package handover

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Sign fills in the statement's vendor key from priv (and chain, the
// signing key's certificate first, when the devices trust a CA), signs
// the statement with alg ("" takes DefaultAlgorithm) and returns the DSSE
// envelope's JSON.
func Sign(ctx context.Context, priv crypto.Signer, alg string, chain []*x509.Certificate, st Statement) ([]byte, error) {
	pub := priv.Public()
	if alg == "" {
		alg = DefaultAlgorithm(pub)
	}
	s, err := signerFor(alg, priv)
	if err != nil {
		return nil, err
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return nil, err
	}
	pemKey, err := encodePublicKey(pub)
	if err != nil {
		return nil, err
	}
	if len(chain) > maxCerts {
		return nil, errs.E(errs.Invalid, "handover: %d certificates, at most %d", len(chain), maxCerts)
	}
	if len(chain) > 0 && !sameKey(pub, chain[0].PublicKey) {
		return nil, errs.E(errs.Invalid, "handover: the first certificate (%s) is not the signing key's", chain[0].Subject)
	}
	st.Predicate.VendorKey = VendorKey{Algorithm: alg, PublicKey: pemKey, Fingerprint: fp}
	for _, c := range chain {
		st.Predicate.VendorKey.Certificates = append(st.Predicate.VendorKey.Certificates,
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	if err := st.Validate(); err != nil {
		return nil, err
	}
	payload, err := marshalStatement(st)
	if err != nil {
		return nil, err
	}
	es, err := dsse.NewEnvelopeSigner(dsseKey{signer: s, pub: pub, keyID: fp})
	if err != nil {
		return nil, fmt.Errorf("handover: dsse signer: %w", err)
	}
	env, err := es.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("handover: sign: %w", err)
	}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("handover: encode envelope: %w", err)
	}
	return out, nil
}

// marshalStatement is the in-toto v1 statement's JSON: protojson, compacted.
func marshalStatement(st Statement) ([]byte, error) {
	pj, err := json.Marshal(st.Predicate)
	if err != nil {
		return nil, fmt.Errorf("handover: encode predicate: %w", err)
	}
	pred := &structpb.Struct{}
	if err := protojson.Unmarshal(pj, pred); err != nil {
		return nil, fmt.Errorf("handover: encode predicate: %w", err)
	}
	s := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       []*intoto.ResourceDescriptor{{Name: st.Root.Name, Digest: map[string]string{"sha256": st.Root.SHA256}}},
		PredicateType: PredicateType,
		Predicate:     pred,
	}
	if err := s.Validate(); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "handover: statement is not valid in-toto")
	}
	b, err := protojson.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("handover: encode statement: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("handover: encode statement: %w", err)
	}
	return buf.Bytes(), nil
}
