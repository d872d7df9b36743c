package attest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/errs"
	provenance "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testBuildInfo() BuildInfo {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	return BuildInfo{
		BuildID: "bld_01",
		JobID:   "job_01",
		Recipe: Recipe{
			Name: "thermostat-fw", Version: "1.2.0",
			RepoURL: "https://git.example.org/thermo.git",
			Commit:  "0123456789abcdef0123456789abcdef01234567",
			Path:    "afterlife.yaml",
		},
		Toolchains:      []Toolchain{{Name: "gcc-arm-none-eabi", Version: "12.2"}},
		Inputs:          []Input{{Name: "vendor/sdk.tar", Digest: digestOf("sdk")}},
		Env:             map[string]string{"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000", "LC_ALL": "C"},
		SourceDateEpoch: 1700000000,
		Builder: Builder{
			ID: "bldr_a", Operator: "alice", KeyID: keys.KeyID(testKey(1).Public().(ed25519.PublicKey)),
			Arch: "amd64", AgentVersion: "0.1.0",
		},
		Started:  start,
		Finished: start.Add(90 * time.Second),
		Outputs: []Output{
			{Path: "out/fw.bin", Kind: "firmware", Digest: digestOf("fw"), Size: 2},
			{Path: "out/fw.elf", Kind: "debug", Digest: digestOf("elf"), Size: 3},
		},
	}
}

func TestStatementIsValidSLSAProvenance(t *testing.T) {
	bi := testBuildInfo()
	st, err := Statement(bi)
	if err != nil {
		t.Fatalf("Statement: %v", err)
	}
	if err := st.Validate(); err != nil {
		t.Fatalf("the library says the statement is invalid: %v", err)
	}
	if st.GetType() != "https://in-toto.io/Statement/v1" || st.GetPredicateType() != "https://slsa.dev/provenance/v1" {
		t.Errorf("types = %q, %q", st.GetType(), st.GetPredicateType())
	}
	if len(st.GetSubject()) != 2 || st.GetSubject()[0].GetName() != "out/fw.bin" ||
		"sha256:"+st.GetSubject()[0].GetDigest()["sha256"] != digestOf("fw") {
		t.Errorf("subjects = %v", st.GetSubject())
	}
	prov := &provenance.Provenance{}
	b, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(b, prov); err != nil {
		t.Fatalf("predicate is not provenance v1: %v", err)
	}
	if err := prov.Validate(); err != nil {
		t.Fatalf("the library says the provenance is invalid: %v", err)
	}
	bd := prov.GetBuildDefinition()
	if bd.GetBuildType() != BuildType {
		t.Errorf("buildType = %q", bd.GetBuildType())
	}
	ext := bd.GetExternalParameters().AsMap()
	if ext["repository"] != bi.Recipe.RepoURL || ext["commit"] != bi.Recipe.Commit || ext["path"] != "afterlife.yaml" {
		t.Errorf("externalParameters = %v", ext)
	}
	deps := bd.GetResolvedDependencies()
	if len(deps) != 2 || deps[0].GetDigest()["gitCommit"] != bi.Recipe.Commit ||
		deps[1].GetName() != "vendor/sdk.tar" || "sha256:"+deps[1].GetDigest()["sha256"] != digestOf("sdk") {
		t.Errorf("resolvedDependencies = %v", deps)
	}
	rd := prov.GetRunDetails()
	if rd.GetBuilder().GetId() != "https://afterlife.dev/builder/bldr_a" {
		t.Errorf("builder id = %q", rd.GetBuilder().GetId())
	}
	md := rd.GetMetadata()
	if md.GetInvocationId() != "job_01" || !md.GetStartedOn().AsTime().Equal(bi.Started) || !md.GetFinishedOn().AsTime().Equal(bi.Finished) {
		t.Errorf("metadata = %v", md)
	}
	if err := CheckRun(prov, "job_01", "bldr_a"); err != nil {
		t.Errorf("CheckRun on the right job and builder: %v", err)
	}
	if err := CheckRun(prov, "job_02", "bldr_a"); !errs.Is(err, errs.Invalid) {
		t.Errorf("CheckRun on another job = %v, want kind invalid", err)
	}
	if err := CheckRun(prov, "job_01", "bldr_b"); !errs.Is(err, errs.Invalid) {
		t.Errorf("CheckRun on another builder = %v, want kind invalid", err)
	}
}

func TestStatementIsDeterministic(t *testing.T) {
	bi := testBuildInfo()
	a, err := Statement(bi)
	if err != nil {
		t.Fatal(err)
	}
	bi.Outputs[0], bi.Outputs[1] = bi.Outputs[1], bi.Outputs[0]
	b, err := Statement(bi)
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := MarshalStatement(a)
	jb, _ := MarshalStatement(b)
	if !bytes.Equal(ja, jb) {
		t.Errorf("statements differ with the outputs reordered:\n%s\n%s", ja, jb)
	}
}

func TestStatementRejectsIncompleteBuildInfo(t *testing.T) {
	tests := []struct {
		name   string
		change func(*BuildInfo)
		want   string
	}{
		{"a build without outputs is refused", func(b *BuildInfo) { b.Outputs = nil }, "no outputs"},
		{"an output with a bad digest is refused", func(b *BuildInfo) { b.Outputs[0].Digest = "md5:abc" }, "out/fw.bin"},
		{"an output listed twice is refused", func(b *BuildInfo) { b.Outputs[1].Path = b.Outputs[0].Path }, "listed twice"},
		{"a missing job id is refused", func(b *BuildInfo) { b.JobID = "" }, "job_id"},
		{"a short commit is refused", func(b *BuildInfo) { b.Recipe.Commit = "main" }, "recipe.commit"},
		{"finishing before starting is refused", func(b *BuildInfo) { b.Finished = b.Started.Add(-time.Second) }, "before started"},
		{"an input with a bad digest is refused", func(b *BuildInfo) { b.Inputs[0].Digest = "sha256:xyz" }, "vendor/sdk.tar"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bi := testBuildInfo()
			tc.change(&bi)
			_, err := Statement(bi)
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("Statement error = %v, want kind invalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestBuildInfoJSONRoundTrips(t *testing.T) {
	bi := testBuildInfo()
	data, err := json.Marshal(bi)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBuildInfo(data)
	if err != nil {
		t.Fatalf("ParseBuildInfo: %v", err)
	}
	again, _ := json.Marshal(got)
	if !bytes.Equal(data, again) {
		t.Errorf("round trip changed the buildinfo:\n%s\n%s", data, again)
	}
	if _, err := ParseBuildInfo([]byte(`{"job_id":"x","surprise":1}`)); !errs.Is(err, errs.Invalid) {
		t.Errorf("unknown field: error = %v, want kind invalid", err)
	}
	if _, err := ParseBuildInfo(bytes.Repeat([]byte(" "), MaxBuildInfoSize+1)); !errs.Is(err, errs.TooLarge) {
		t.Errorf("oversized buildinfo: error = %v, want kind too_large", err)
	}
}

// rewrite decodes an envelope, lets change edit it, and encodes it again.
func rewrite(t *testing.T, envelope []byte, change func(*dsse.Envelope)) []byte {
	t.Helper()
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		t.Fatal(err)
	}
	change(&env)
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signRaw signs payload with payloadType through the DSSE library directly,
// to build envelopes that Sign would never produce.
func signRaw(t *testing.T, key ed25519.PrivateKey, payloadType string, payload []byte) []byte {
	t.Helper()
	signer, err := dsse.NewEnvelopeSigner(ed25519SignerVerifier{priv: key, pub: key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	env, err := signer.SignPayload(context.Background(), payloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSignAndVerify(t *testing.T) {
	ctx := context.Background()
	key := testKey(1)
	pub := key.Public().(ed25519.PublicKey)
	st, err := Statement(testBuildInfo())
	if err != nil {
		t.Fatal(err)
	}
	envelope, err := Sign(ctx, key, st)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	payload, err := MarshalStatement(st)
	if err != nil {
		t.Fatal(err)
	}
	otherStatement := func(change func(*intoto.Statement)) []byte {
		s, err := Statement(testBuildInfo())
		if err != nil {
			t.Fatal(err)
		}
		change(s)
		b, err := MarshalStatement(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	tests := []struct {
		name     string
		envelope []byte
		pub      ed25519.PublicKey
		wantErr  string // empty: must verify
	}{
		{"a signed statement verifies with its builder key", envelope, pub, ""},
		{"a tampered payload does not verify", rewrite(t, envelope, func(e *dsse.Envelope) {
			tampered := bytes.Replace(payload, []byte(st.GetSubject()[0].GetDigest()["sha256"]), []byte(strings.Repeat("0", 64)), 1)
			e.Payload = base64.StdEncoding.EncodeToString(tampered)
		}), pub, "attestation signature does not verify with builder key " + keys.KeyID(pub)},
		{"a changed payload type does not verify", rewrite(t, envelope, func(e *dsse.Envelope) {
			e.PayloadType = "application/json"
		}), pub, "attestation signature does not verify"},
		{"another builder's key does not verify", envelope, testKey(2).Public().(ed25519.PublicKey),
			"attestation signature does not verify with builder key " + keys.KeyID(testKey(2).Public().(ed25519.PublicKey))},
		{"an envelope without signatures does not verify", rewrite(t, envelope, func(e *dsse.Envelope) {
			e.Signatures = nil
		}), pub, "attestation signature does not verify"},
		{"a validly signed envelope of another payload type is refused", signRaw(t, key, "application/json", payload), pub, "payload type"},
		{"a validly signed statement of another predicate type is refused", signRaw(t, key, PayloadType, otherStatement(func(s *intoto.Statement) {
			s.PredicateType = "https://slsa.dev/provenance/v0.2"
		})), pub, "predicate type"},
		{"a validly signed statement of the legacy statement type is refused", signRaw(t, key, PayloadType, otherStatement(func(s *intoto.Statement) {
			s.Type = "https://in-toto.io/Statement/v0.1"
		})), pub, "statement type"},
		{"a validly signed statement of another build type is refused", signRaw(t, key, PayloadType, otherStatement(func(s *intoto.Statement) {
			bd := s.Predicate.Fields["buildDefinition"].GetStructValue()
			bd.Fields["buildType"] = structpb.NewStringValue("https://example.org/other")
		})), pub, "build type"},
		{"a validly signed statement without a builder is refused", signRaw(t, key, PayloadType, otherStatement(func(s *intoto.Statement) {
			delete(s.Predicate.Fields, "runDetails")
		})), pub, "provenance is not valid"},
		{"a validly signed payload that is not a statement is refused", signRaw(t, key, PayloadType, []byte(`[1,2,3]`)), pub, "not an in-toto statement"},
		{"junk is not an envelope", []byte("{not json"), pub, "not a DSSE envelope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotSt, gotProv, err := Verify(ctx, tc.pub, tc.envelope)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if gotProv.GetRunDetails().GetMetadata().GetInvocationId() != "job_01" {
					t.Errorf("provenance invocation id = %q", gotProv.GetRunDetails().GetMetadata().GetInvocationId())
				}
				if err := CheckSubjects(gotSt, testBuildInfo().OutputDigests()); err != nil {
					t.Errorf("CheckSubjects on the verified statement: %v", err)
				}
				return
			}
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("Verify error = %v, want kind invalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Verify error = %q, want it to contain %q", err, tc.wantErr)
			}
			if gotSt != nil || gotProv != nil {
				t.Error("Verify returned a statement along with an error")
			}
		})
	}

	t.Run("an oversized envelope is refused before parsing", func(t *testing.T) {
		_, _, err := Verify(ctx, pub, make([]byte, MaxEnvelopeSize+1))
		if !errs.Is(err, errs.TooLarge) {
			t.Fatalf("Verify error = %v, want kind too_large", err)
		}
	})
	t.Run("the envelope names the signing key by its key id", func(t *testing.T) {
		var env dsse.Envelope
		if err := json.Unmarshal(envelope, &env); err != nil {
			t.Fatal(err)
		}
		if len(env.Signatures) != 1 || env.Signatures[0].KeyID != keys.KeyID(pub) {
			t.Errorf("signatures = %+v, want one with keyid %s", env.Signatures, keys.KeyID(pub))
		}
		if env.PayloadType != "application/vnd.in-toto+json" {
			t.Errorf("payloadType = %q", env.PayloadType)
		}
	})
}

func TestCheckSubjects(t *testing.T) {
	st, err := Statement(testBuildInfo())
	if err != nil {
		t.Fatal(err)
	}
	fw, elf := digestOf("fw"), digestOf("elf")
	tests := []struct {
		name    string
		outputs map[string]string
		wantErr string
	}{
		{"identical outputs match", map[string]string{"out/fw.bin": fw, "out/fw.elf": elf}, ""},
		{"a different digest is reported", map[string]string{"out/fw.bin": digestOf("other"), "out/fw.elf": elf}, `output "out/fw.bin" is ` + digestOf("other")},
		{"an output the attestation lacks is reported", map[string]string{"out/fw.bin": fw, "out/fw.elf": elf, "out/extra": fw}, `output "out/extra" is not attested`},
		{"an attested subject that was not claimed is reported", map[string]string{"out/fw.bin": fw}, `attested subject "out/fw.elf" is not among the outputs`},
		{"no claimed outputs at all is reported", map[string]string{}, "not among the outputs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSubjects(st, tc.outputs)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSubjects: %v", err)
				}
				return
			}
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckSubjects error = %v, want kind invalid containing %q", err, tc.wantErr)
			}
		})
	}
}
