package seed

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/registry"
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestABuildIsHeldToItsBuildersAttestations writes a mirror's build with
// two results signed by their builders and checks which builds an import
// takes and which it refuses, naming the file.
func TestABuildIsHeldToItsBuildersAttestations(t *testing.T) {
	ctx := context.Background()
	key := func(seed byte) ed25519.PrivateKey {
		return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	}
	fw := digestOf("firmware")
	type result struct {
		builder   string
		key       ed25519.PrivateKey // signs the attestation
		buildID   string             // the attested build
		attested  string             // the attested digest of out/fw.bin
		listed    string             // the digest the result lists
		buildinfo string             // the buildinfo's bytes; its digest is listed as of "buildinfo"
	}
	good := func(b string, seed byte) result {
		return result{builder: b, key: key(seed), buildID: "bld_1", attested: fw, listed: fw, buildinfo: "buildinfo"}
	}
	tests := []struct {
		name    string
		results []result
		quorum  int
		refused string
	}{
		{name: "a build two builders attested is taken", results: []result{good("bdr_a", 1), good("bdr_b", 2)}, quorum: 2},
		{name: "a result listing another output than its attestation is refused", results: []result{good("bdr_a", 1), {builder: "bdr_b", key: key(2), buildID: "bld_1", attested: fw, listed: digestOf("other"), buildinfo: "buildinfo"}}, quorum: 2, refused: "job job_bdr_b lists other outputs than its attestation"},
		{name: "an attestation signed by another key is refused", results: []result{good("bdr_a", 1), {builder: "bdr_b", key: key(9), buildID: "bld_1", attested: fw, listed: fw, buildinfo: "buildinfo"}}, quorum: 2, refused: "signature of builder bdr_b"},
		{name: "an attestation of another build is refused", results: []result{good("bdr_a", 1), {builder: "bdr_b", key: key(2), buildID: "bld_0", attested: fw, listed: fw, buildinfo: "buildinfo"}}, quorum: 2, refused: "attests build bld_0, not bld_1"},
		{name: "fewer agreeing results than the quorum are refused", results: []result{good("bdr_a", 1), {builder: "bdr_b", key: key(2), buildID: "bld_1", attested: digestOf("other"), listed: digestOf("other"), buildinfo: "buildinfo"}}, quorum: 2, refused: "1 attested results have output out/fw.bin"},
		{name: "a buildinfo changed in the mirror is refused", results: []result{good("bdr_a", 1), {builder: "bdr_b", key: key(2), buildID: "bld_1", attested: fw, listed: fw, buildinfo: "changed"}}, quorum: 2, refused: "buildinfo.json has sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(rel string, b []byte) {
				p := filepath.Join(dir, filepath.FromSlash(rel))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var builders, results []map[string]any
			for i, r := range tc.results {
				seed := byte(i + 1)
				pub := key(seed).Public().(ed25519.PublicKey)
				builders = append(builders, map[string]any{"id": r.builder, "public_key": keys.PublicKeyString(pub)})
				job := "job_" + r.builder
				start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
				st, err := attest.Statement(attest.BuildInfo{BuildID: r.buildID, JobID: job,
					Recipe:     attest.Recipe{Name: "fw", Version: "1.0.0", RepoURL: "https://git.example.org/fw.git", Commit: strings.Repeat("a", 40), Path: "afterlife.yaml"},
					Toolchains: []attest.Toolchain{{Name: "busybox", Version: "1"}}, Env: map[string]string{"TZ": "UTC"}, SourceDateEpoch: 1,
					Builder: attest.Builder{ID: r.builder, Operator: "op-" + r.builder, KeyID: keys.KeyID(pub), Arch: "amd64", AgentVersion: "1"},
					Started: start, Finished: start.Add(time.Minute),
					Outputs: []attest.Output{{Path: "out/fw.bin", Kind: "firmware", Digest: r.attested, Size: 8}}})
				if err != nil {
					t.Fatal(err)
				}
				env, err := attest.Sign(ctx, r.key, st)
				if err != nil {
					t.Fatal(err)
				}
				write("api/builds/bld_1/jobs/"+job+"/attestation.dsse.json", env)
				write("api/builds/bld_1/jobs/"+job+"/buildinfo.json", []byte(r.buildinfo))
				s := sha256.Sum256(env)
				results = append(results, map[string]any{"job_id": job, "builder_id": r.builder, "attestation": "sha256:" + hex.EncodeToString(s[:]),
					"buildinfo": digestOf("buildinfo"), "outputs": []map[string]any{{"path": "out/fw.bin", "digest": r.listed}}})
			}
			b, _ := json.Marshal(map[string]any{"builders": builders})
			write("api/builders.json", b)
			b, _ = json.Marshal(map[string]any{"id": "bld_1", "state": "reproducible", "quorum": tc.quorum, "results": results})
			write("api/builds/bld_1.json", b)
			rel := registry.Release{ID: "rel_1", BuildID: "bld_1", Artifacts: []registry.Artifact{{Name: "fw.bin", Path: "out/fw.bin", Kind: "firmware", Digest: fw}}}
			held, err := heldBuilds(ctx, dir, []registry.Release{rel})
			if tc.refused == "" {
				if err != nil || len(held) != 1 || len(held[0].blobs) != 3 || len(held[0].builders) != 2 {
					t.Fatalf("held %+v, %v; want the build with 2 attestations, 1 buildinfo and 2 builders", held, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "api/builds/bld_1") {
				t.Fatalf("got %v, want a refusal naming the file and saying %q", err, tc.refused)
			}
		})
	}
	t.Run("a release whose build the mirror lacks is taken without it", func(t *testing.T) {
		held, err := heldBuilds(ctx, t.TempDir(), []registry.Release{{ID: "rel_1", BuildID: "bld_1"}})
		if err != nil || len(held) != 0 {
			t.Fatalf("held %v, %v", held, err)
		}
	})
}
