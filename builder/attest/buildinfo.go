// Package attest owns what a builder says about a build and how it proves it
// said so: the buildinfo record uploaded with every result, the in-toto
// Statement (https://in-toto.io/Statement/v1) with an SLSA provenance v1
// predicate derived from it, and the DSSE envelope signed with the builder's
// ed25519 key.
//
// It uses the field's libraries for every format (in-toto/attestation for
// the statement and predicate, go-securesystemslib/dsse for the envelope)
// and hand-rolls none. It must not decide verdicts, store anything, or trust
// a claim it has not verified: Verify checks the signature, the payload type,
// the statement type and the predicate type before returning anything.
package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/afterlife-oss/afterlife/builder"
	"sort"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// MaxBuildInfoSize bounds a buildinfo file accepted by ParseBuildInfo.
const MaxBuildInfoSize = 1 << 20

// BuildInfo is what a builder records about one job: the "buildinfo" file
// uploaded with each result. Digests are "sha256:<64 hex>".
type BuildInfo struct {
	BuildID         string            `json:"build_id"`
	JobID           string            `json:"job_id"`
	Recipe          Recipe            `json:"recipe"`
	Toolchains      []Toolchain       `json:"toolchains"`
	Inputs          []Input           `json:"inputs"`
	Env             map[string]string `json:"env"` // the sandbox environment, exactly as the steps saw it
	SourceDateEpoch int64             `json:"source_date_epoch"`
	Builder         Builder           `json:"builder"`
	Cache           Cache             `json:"cache"`
	Started         time.Time         `json:"started"`
	Finished        time.Time         `json:"finished"`
	Outputs         []Output          `json:"outputs"`
}

// Recipe pins the recipe that was built.
type Recipe struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	RepoURL string `json:"repo_url"`
	Commit  string `json:"commit"`
	Path    string `json:"path"` // the recipe file inside the repository
}

// Toolchain is one toolchain the sandbox provided.
type Toolchain struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Input is one file the build read, fetched and verified by digest.
type Input struct {
	Name   string `json:"name"` // the name or path the recipe gives the input
	Digest string `json:"digest"`
}

// Builder identifies the machine and person that ran the job.
type Builder struct {
	ID           string `json:"id"`
	Operator     string `json:"operator"`
	KeyID        string `json:"key_id"`
	Arch         string `json:"arch"`
	AgentVersion string `json:"agent_version"`
}

// Cache says which writable cache (/cache in the sandbox) the build had.
type Cache struct {
	// Cold is true for the cold witness: /cache was empty, made for this
	// job alone and thrown away after it.
	Cold bool `json:"cold"`
	// Key names the warm cache otherwise: one per recipe repository,
	// toolchain and architecture on this builder, never shared with builds
	// of another repository.
	Key string `json:"key,omitempty"`
}

// Output is one file the build produced.
type Output struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// OutputDigests maps each output path to its digest, the form the verdict
// and CheckSubjects compare.
func (bi BuildInfo) OutputDigests() map[string]string {
	m := make(map[string]string, len(bi.Outputs))
	for _, o := range bi.Outputs {
		m[o.Path] = o.Digest
	}
	return m
}

// Validate checks what Statement relies on; errors have kind Invalid.
func (bi BuildInfo) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if bi.JobID == "" {
		add("job_id is empty")
	}
	if bi.Builder.ID == "" {
		add("builder.id is empty")
	}
	if bi.Recipe.RepoURL == "" {
		add("recipe.repo_url is empty")
	}
	if !builder.ValidCommit(bi.Recipe.Commit) {
		add("recipe.commit %q is not a 40-digit lowercase hex git commit", bi.Recipe.Commit)
	}
	if bi.Started.IsZero() || bi.Finished.IsZero() {
		add("started and finished must be set")
	} else if bi.Finished.Before(bi.Started) {
		add("finished (%s) is before started (%s)", bi.Finished.Format(time.RFC3339), bi.Started.Format(time.RFC3339))
	}
	if len(bi.Outputs) == 0 {
		add("no outputs")
	}
	seen := make(map[string]bool, len(bi.Outputs))
	for i, o := range bi.Outputs {
		if o.Path == "" {
			add("outputs[%d].path is empty", i)
		}
		if seen[o.Path] {
			add("output %q is listed twice", o.Path)
		}
		seen[o.Path] = true
		if _, err := blob.ParseDigest(o.Digest); err != nil {
			add("output %q: %s", o.Path, errs.Message(err))
		}
		if o.Size < 0 {
			add("output %q: negative size", o.Path)
		}
	}
	for i, in := range bi.Inputs {
		if in.Name == "" {
			add("inputs[%d].name is empty", i)
		}
		if _, err := blob.ParseDigest(in.Digest); err != nil {
			add("input %q: %s", in.Name, errs.Message(err))
		}
	}
	if len(problems) > 0 {
		return errs.E(errs.Invalid, "buildinfo: %s", strings.Join(problems, "; "))
	}
	return nil
}

// ParseBuildInfo decodes and validates a buildinfo file received from a
// builder. Unknown fields are refused so that a typo does not pass silently.
func ParseBuildInfo(data []byte) (BuildInfo, error) {
	var bi BuildInfo
	if len(data) > MaxBuildInfoSize {
		return bi, errs.E(errs.TooLarge, "buildinfo is %d bytes, limit %d", len(data), MaxBuildInfoSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bi); err != nil {
		return bi, errs.Wrap(errs.Invalid, err, "buildinfo is not valid JSON")
	}
	if dec.More() {
		return bi, errs.E(errs.Invalid, "buildinfo: unexpected data after the JSON object")
	}
	if err := bi.Validate(); err != nil {
		return bi, err
	}
	return bi, nil
}

// sortedKeys returns m's keys in order, so statements are deterministic.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
