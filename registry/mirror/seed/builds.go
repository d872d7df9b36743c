package seed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/mirror"
)

// Builds takes the verdicts of the mirrored releases' builds as the
// origin's API answered them (api/builds/<id>.json); the farm's
// coordinator (*coord.Service) implements it.
type Builds interface {
	ImportBuild(ctx context.Context, doc []byte) error
	// ImportBuilder takes a builder of api/builders.json whose
	// attestations an imported build holds.
	ImportBuilder(ctx context.Context, doc []byte) error
}

// heldBuild is a mirrored build an import may take, with the files of
// its results (attestations, buildinfo) by digest.
type heldBuild struct {
	file  string // api/builds/<id>.json
	doc   []byte
	blobs map[blob.Digest]string // digest → the mirror's file
	// builders are the entries of api/builders.json of its results'
	// builders, by id.
	builders map[string]json.RawMessage
}

// buildDoc is what the hold reads of a mirrored build.
type buildDoc struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Quorum  int    `json:"quorum"`
	Results []struct {
		JobID       string `json:"job_id"`
		BuilderID   string `json:"builder_id"`
		Attestation string `json:"attestation"`
		BuildInfo   string `json:"buildinfo"`
		Failed      bool   `json:"failed"`
		Outputs     []struct {
			Path   string `json:"path"`
			Digest string `json:"digest"`
		} `json:"outputs"`
	} `json:"results"`
}

// heldBuilds reads the build of every mirrored release and holds it to
// what signatures prove before anything is written: each result's
// attestation is signed by the key api/builders.json gives its builder
// and attests this build and exactly the outputs the result lists, its buildinfo has the
// digest the result names, and every file of the release (held to the
// signed targets by the release's import) is an output that at least the
// build's quorum of attested results agree on. A release whose build the
// mirror lacks (a mirror of a registry that was itself re-homed) is
// imported without it; anything else that fails is refused, naming the
// file.
func heldBuilds(ctx context.Context, dir string, rels []registry.Release) ([]heldBuild, error) {
	var out []heldBuild
	seen := map[string]bool{}
	var pubs map[string]string
	var entries map[string]json.RawMessage
	for _, r := range rels {
		if r.BuildID == "" || seen[r.BuildID] {
			continue
		}
		seen[r.BuildID] = true
		file := path.Join(mirror.APIDir, "builds", r.BuildID+".json")
		doc, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		if pubs == nil {
			if pubs, entries, err = builderKeys(dir); err != nil {
				return nil, err
			}
		}
		var b buildDoc
		if err := json.Unmarshal(doc, &b); err != nil || b.ID != r.BuildID {
			return nil, errs.Wrap(errs.Invalid, err, "seed: %s is not build %s", file, r.BuildID)
		}
		h := heldBuild{file: file, doc: doc, blobs: map[blob.Digest]string{}, builders: map[string]json.RawMessage{}}
		agree := map[string]int{} // path + " " + digest → attested results with it
		for _, res := range b.Results {
			if res.Failed {
				continue
			}
			if res.Attestation == "" {
				return nil, errs.E(errs.Invalid, "seed: %s: the result of job %s has no attestation", file, res.JobID)
			}
			af := path.Join(mirror.APIDir, "builds", b.ID, "jobs", res.JobID, "attestation.dsse.json")
			env, err := readDigest(dir, af, res.Attestation)
			if err != nil {
				return nil, err
			}
			pub, err := keys.ParsePublicKey(pubs[res.BuilderID])
			if err != nil {
				return nil, errs.Wrap(errs.Invalid, err, "seed: %s: no key of builder %s in %s/builders.json", af, res.BuilderID, mirror.APIDir)
			}
			st, prov, err := attest.Verify(ctx, pub, env)
			if err != nil {
				return nil, errs.Wrap(errs.Invalid, err, "seed: %s: signature of builder %s", af, res.BuilderID)
			}
			// An attestation of another build proves nothing of this one.
			if id := prov.GetBuildDefinition().GetInternalParameters().AsMap()["buildId"]; id != b.ID {
				return nil, errs.E(errs.Invalid, "seed: %s attests build %v, not %s", af, id, b.ID)
			}
			outs := map[string]string{}
			for _, o := range res.Outputs {
				outs[o.Path] = o.Digest
			}
			if err := attest.CheckSubjects(st, outs); err != nil {
				return nil, errs.Wrap(errs.Invalid, err, "seed: %s: job %s lists other outputs than its attestation %s", file, res.JobID, af)
			}
			for p, d := range outs {
				agree[p+" "+d]++
			}
			h.blobs[blob.Digest(res.Attestation)] = af
			h.builders[res.BuilderID] = entries[res.BuilderID]
			if res.BuildInfo != "" {
				bf := path.Join(mirror.APIDir, "builds", b.ID, "jobs", res.JobID, "buildinfo.json")
				if _, err := readDigest(dir, bf, res.BuildInfo); err != nil {
					return nil, err
				}
				h.blobs[blob.Digest(res.BuildInfo)] = bf
			}
		}
		for _, a := range r.Artifacts {
			if a.Kind == "delta" {
				continue // made by the registry at publish, not by the build
			}
			if n := agree[a.Path+" "+a.Digest]; n < max(b.Quorum, 1) {
				return nil, errs.E(errs.Invalid, "seed: %s: %d attested results have output %s with %s, which release %s publishes; the quorum is %d",
					file, n, a.Path, a.Digest, r.ID, b.Quorum)
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// builderKeys reads the builders' public keys the mirror holds, and each
// builder's entry as the origin listed it.
func builderKeys(dir string) (map[string]string, map[string]json.RawMessage, error) {
	file := path.Join(mirror.APIDir, "builders.json")
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "seed: the builders' keys")
	}
	var bl struct {
		Builders []json.RawMessage `json:"builders"`
	}
	if err := json.Unmarshal(b, &bl); err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "seed: %s is not a builder list", file)
	}
	keys, entries := map[string]string{}, map[string]json.RawMessage{}
	for _, raw := range bl.Builders {
		var x struct {
			ID        string `json:"id"`
			PublicKey string `json:"public_key"`
		}
		if err := json.Unmarshal(raw, &x); err != nil {
			return nil, nil, errs.Wrap(errs.Invalid, err, "seed: %s is not a builder list", file)
		}
		keys[x.ID], entries[x.ID] = x.PublicKey, raw
	}
	return keys, entries, nil
}

// readDigest reads a mirror's file and checks it has the digest
// ("sha256:<hex>") that names it.
func readDigest(dir, rel, digest string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "seed: %s", rel)
	}
	sum := sha256.Sum256(b)
	if want, ok := strings.CutPrefix(digest, "sha256:"); !ok || hex.EncodeToString(sum[:]) != want {
		return nil, errs.E(errs.Invalid, "seed: %s has sha256 %x, its build names %s", rel, sum, digest)
	}
	return b, nil
}
