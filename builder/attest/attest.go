package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/errs"
	provenance "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// PayloadType is the DSSE payload type of an in-toto statement.
	PayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto statement version afterlife writes and accepts.
	StatementType = intoto.StatementTypeUri
	// PredicateType is SLSA provenance v1.
	PredicateType = "https://slsa.dev/provenance/v1"
	// BuildType names afterlife's build process: a recipe at a commit, run
	// in the afterlife sandbox. Its parameters are documented in
	// docs/attestations.md.
	BuildType = "https://afterlife.dev/build/v1"
	// BuilderIDPrefix starts every builder id in runDetails.builder.id.
	BuilderIDPrefix = "https://afterlife.dev/builder/"
	// MaxEnvelopeSize bounds an envelope accepted by Verify.
	MaxEnvelopeSize = 4 << 20
)

// BuilderURI is the SLSA builder id of the afterlife builder with id id.
func BuilderURI(id string) string { return BuilderIDPrefix + id }

// Statement turns a buildinfo into an in-toto statement whose subjects are
// the outputs and whose predicate is SLSA provenance v1. The result is
// deterministic for a given buildinfo.
func Statement(bi BuildInfo) (*intoto.Statement, error) {
	if err := bi.Validate(); err != nil {
		return nil, err
	}
	outputs := append([]Output(nil), bi.Outputs...)
	sort.Slice(outputs, func(i, j int) bool { return outputs[i].Path < outputs[j].Path })
	subjects := make([]*intoto.ResourceDescriptor, 0, len(outputs))
	for _, o := range outputs {
		subjects = append(subjects, &intoto.ResourceDescriptor{
			Name:   o.Path,
			Digest: map[string]string{"sha256": strings.TrimPrefix(o.Digest, "sha256:")},
		})
	}

	external, err := structpb.NewStruct(map[string]any{
		"repository": bi.Recipe.RepoURL,
		"commit":     bi.Recipe.Commit,
		"path":       bi.Recipe.Path,
	})
	if err != nil {
		return nil, fmt.Errorf("attest: external parameters: %w", err)
	}
	env := make(map[string]any, len(bi.Env))
	for k, v := range bi.Env {
		env[k] = v
	}
	internal, err := structpb.NewStruct(map[string]any{
		"buildId":         bi.BuildID,
		"recipe":          map[string]any{"name": bi.Recipe.Name, "version": bi.Recipe.Version},
		"env":             env,
		"sourceDateEpoch": bi.SourceDateEpoch,
		"arch":            bi.Builder.Arch,
		"operator":        bi.Builder.Operator,
		"keyId":           bi.Builder.KeyID,
		"cache":           map[string]any{"cold": bi.Cache.Cold, "key": bi.Cache.Key},
	})
	if err != nil {
		return nil, fmt.Errorf("attest: internal parameters: %w", err)
	}

	repoURI := bi.Recipe.RepoURL
	if !strings.HasPrefix(repoURI, "git+") {
		repoURI = "git+" + repoURI
	}
	deps := []*intoto.ResourceDescriptor{{
		Name:   "recipe",
		Uri:    repoURI,
		Digest: map[string]string{"gitCommit": bi.Recipe.Commit},
	}}
	inputs := append([]Input(nil), bi.Inputs...)
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].Name < inputs[j].Name })
	for _, in := range inputs {
		deps = append(deps, &intoto.ResourceDescriptor{
			Name:   in.Name,
			Digest: map[string]string{"sha256": strings.TrimPrefix(in.Digest, "sha256:")},
		})
	}

	var toolchains []*intoto.ResourceDescriptor
	for _, tc := range bi.Toolchains {
		ann, err := structpb.NewStruct(map[string]any{"version": tc.Version})
		if err != nil {
			return nil, fmt.Errorf("attest: toolchain %s: %w", tc.Name, err)
		}
		toolchains = append(toolchains, &intoto.ResourceDescriptor{Name: tc.Name, Annotations: ann})
	}
	var version map[string]string
	if bi.Builder.AgentVersion != "" {
		version = map[string]string{"afterlife": bi.Builder.AgentVersion}
	}

	prov := &provenance.Provenance{
		BuildDefinition: &provenance.BuildDefinition{
			BuildType:            BuildType,
			ExternalParameters:   external,
			InternalParameters:   internal,
			ResolvedDependencies: deps,
		},
		RunDetails: &provenance.RunDetails{
			Builder: &provenance.Builder{
				Id:                  BuilderURI(bi.Builder.ID),
				Version:             version,
				BuilderDependencies: toolchains,
			},
			Metadata: &provenance.BuildMetadata{
				InvocationId: bi.JobID,
				StartedOn:    timestamppb.New(bi.Started),
				FinishedOn:   timestamppb.New(bi.Finished),
			},
		},
	}
	if err := prov.Validate(); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "attest: provenance for job %s is not valid", bi.JobID)
	}
	pred, err := toStruct(prov)
	if err != nil {
		return nil, err
	}
	st := &intoto.Statement{
		Type:          StatementType,
		Subject:       subjects,
		PredicateType: PredicateType,
		Predicate:     pred,
	}
	if err := st.Validate(); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "attest: statement for job %s is not valid", bi.JobID)
	}
	return st, nil
}

func toStruct(m proto.Message) (*structpb.Struct, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("attest: encode predicate: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("attest: encode predicate: %w", err)
	}
	return s, nil
}

// MarshalStatement is the JSON payload that Sign puts in the envelope:
// protojson with field names as the in-toto spec spells them, compacted
// (protojson varies its whitespace on purpose).
func MarshalStatement(st *intoto.Statement) ([]byte, error) {
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("attest: encode statement: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("attest: encode statement: %w", err)
	}
	return buf.Bytes(), nil
}

// ed25519SignerVerifier is a dsse.SignerVerifier for a builder key; its key
// id is keys.KeyID, so envelopes name the builder key that signed them.
type ed25519SignerVerifier struct {
	priv ed25519.PrivateKey // nil when only verifying
	pub  ed25519.PublicKey
}

var _ dsse.SignerVerifier = ed25519SignerVerifier{}

func (s ed25519SignerVerifier) Sign(ctx context.Context, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.priv == nil {
		return nil, errs.E(errs.Internal, "attest: no private key to sign with")
	}
	return ed25519.Sign(s.priv, data), nil
}

func (s ed25519SignerVerifier) Verify(ctx context.Context, data, sig []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ed25519.Verify(s.pub, data, sig) {
		return errs.E(errs.Invalid, "ed25519 signature mismatch")
	}
	return nil
}

func (s ed25519SignerVerifier) KeyID() (string, error) { return keys.KeyID(s.pub), nil }

func (s ed25519SignerVerifier) Public() crypto.PublicKey { return s.pub }

// Sign wraps st in a DSSE envelope signed with key and returns the
// envelope's JSON.
func Sign(ctx context.Context, key ed25519.PrivateKey, st *intoto.Statement) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errs.E(errs.Invalid, "attest: signing key has %d bytes, want an ed25519 private key", len(key))
	}
	if err := st.Validate(); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "attest: refusing to sign an invalid statement")
	}
	payload, err := MarshalStatement(st)
	if err != nil {
		return nil, err
	}
	sv := ed25519SignerVerifier{priv: key, pub: key.Public().(ed25519.PublicKey)}
	signer, err := dsse.NewEnvelopeSigner(sv)
	if err != nil {
		return nil, fmt.Errorf("attest: dsse signer: %w", err)
	}
	env, err := signer.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("attest: encode envelope: %w", err)
	}
	return out, nil
}

// Verify checks that envelope is a DSSE envelope signed by pub whose payload
// is an in-toto v1 statement with an SLSA provenance v1 predicate of
// afterlife's build type, and returns both. Every failure has kind Invalid
// (TooLarge for an oversized envelope).
func Verify(ctx context.Context, pub ed25519.PublicKey, envelope []byte) (*intoto.Statement, *provenance.Provenance, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, nil, errs.E(errs.Invalid, "attestation: builder public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if len(envelope) > MaxEnvelopeSize {
		return nil, nil, errs.E(errs.TooLarge, "attestation is %d bytes, limit %d", len(envelope), MaxEnvelopeSize)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "attestation is not a DSSE envelope")
	}
	keyID := keys.KeyID(pub)
	verifier, err := dsse.NewEnvelopeVerifier(ed25519SignerVerifier{pub: pub})
	if err != nil {
		return nil, nil, fmt.Errorf("attest: dsse verifier: %w", err)
	}
	_, payload, err := verifier.VerifyAndDecode(ctx, &env)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, nil, ctxErr
		}
		return nil, nil, errs.Wrap(errs.Invalid, err, "attestation signature does not verify with builder key %s", keyID)
	}
	// The signature covers the payload type (DSSE PAE), so from here on we
	// read what the builder really signed.
	if env.PayloadType != PayloadType {
		return nil, nil, errs.E(errs.Invalid, "attestation payload type is %q, want %q", env.PayloadType, PayloadType)
	}
	st := &intoto.Statement{}
	if err := protojson.Unmarshal(payload, st); err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "attestation payload is not an in-toto statement")
	}
	if st.GetType() != StatementType {
		return nil, nil, errs.E(errs.Invalid, "attestation statement type is %q, want %q", st.GetType(), StatementType)
	}
	if st.GetPredicateType() != PredicateType {
		return nil, nil, errs.E(errs.Invalid, "attestation predicate type is %q, want %q", st.GetPredicateType(), PredicateType)
	}
	if err := st.Validate(); err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "attestation statement is not valid")
	}
	predJSON, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "attestation predicate cannot be read")
	}
	prov := &provenance.Provenance{}
	if err := protojson.Unmarshal(predJSON, prov); err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "attestation predicate is not SLSA provenance v1")
	}
	if err := prov.Validate(); err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "attestation provenance is not valid")
	}
	if bt := prov.GetBuildDefinition().GetBuildType(); bt != BuildType {
		return nil, nil, errs.E(errs.Invalid, "attestation build type is %q, want %q", bt, BuildType)
	}
	return st, prov, nil
}

// CheckSubjects reports whether the attested subjects equal outputs exactly
// (path → "sha256:<hex>"): same paths, same digests, nothing missing or
// extra. The error (kind Invalid) lists every difference.
func CheckSubjects(st *intoto.Statement, outputs map[string]string) error {
	attested := make(map[string]string, len(st.GetSubject()))
	var problems []string
	for _, s := range st.GetSubject() {
		name := s.GetName()
		hex, ok := s.GetDigest()["sha256"]
		if !ok {
			problems = append(problems, fmt.Sprintf("subject %q has no sha256 digest", name))
			continue
		}
		if _, dup := attested[name]; dup {
			problems = append(problems, fmt.Sprintf("subject %q is attested twice", name))
			continue
		}
		attested[name] = "sha256:" + hex
	}
	for _, path := range sortedKeys(outputs) {
		got, ok := attested[path]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("output %q is not attested", path))
		case got != outputs[path]:
			problems = append(problems, fmt.Sprintf("output %q is %s but the attestation says %s", path, outputs[path], got))
		}
	}
	for _, path := range sortedKeys(attested) {
		if _, ok := outputs[path]; !ok {
			problems = append(problems, fmt.Sprintf("attested subject %q is not among the outputs", path))
		}
	}
	if len(problems) > 0 {
		return errs.E(errs.Invalid, "attestation subjects do not match the outputs: %s", strings.Join(problems, "; "))
	}
	return nil
}

// ColdCache reports whether prov says the build ran with empty caches
// (internalParameters.cache.cold), that is, as the build's cold witness.
// Read it from a verified provenance only.
func ColdCache(prov *provenance.Provenance) bool {
	cache := prov.GetBuildDefinition().GetInternalParameters().GetFields()["cache"].GetStructValue()
	return cache.GetFields()["cold"].GetBoolValue()
}

// CheckRun reports whether prov describes job jobID run by builder
// builderID, so that an attestation cannot be replayed for another job or
// presented as another builder's.
func CheckRun(prov *provenance.Provenance, jobID, builderID string) error {
	if got := prov.GetRunDetails().GetMetadata().GetInvocationId(); got != jobID {
		return errs.E(errs.Invalid, "attestation is for job %q, want %q", got, jobID)
	}
	if got, want := prov.GetRunDetails().GetBuilder().GetId(), BuilderURI(builderID); got != want {
		return errs.E(errs.Invalid, "attestation names builder %q, want %q", got, want)
	}
	return nil
}
