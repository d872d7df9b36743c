// Package builder is the build farm's protocol: the job a coordinator hands
// out (a builder-owned Spec, plain JSON), what a builder reports back, and
// the Coordinator interface the agent talks to. The coordinator's server
// side (builder/coord) and the HTTP adapters (the handlers in
// builder/farmhttp, the client in builder/farmclient) implement it; the
// agent (builder/agent) only uses it.
//
// It must not import escrow or registry, nor the recipes package itself: a
// recipe becomes a Spec before it reaches the farm, and builders never see
// anything else. Of recipes it shares only the toolchain constraint
// grammar (recipes/constraint) and the input kinds (recipes/inputkind),
// format packages without server code.
package builder

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
	"github.com/afterlife-oss/afterlife/recipes/constraint"
	"github.com/afterlife-oss/afterlife/recipes/inputkind"
)

// Spec is everything a builder needs to run one build: the recipe pinned to
// a commit, the toolchain it asks for, the steps, the outputs and the inputs
// by digest. It is stored with the build and sent with every job.
type Spec struct {
	Recipe    RecipeRef    `json:"recipe"`
	Products  []string     `json:"products"`
	Toolchain ToolchainReq `json:"toolchain"`
	// Tools are the tools the recipe declares beside its toolchain (SBOM
	// generators), each at an exact version: a builder binds exactly
	// these into the sandbox.
	Tools           []ToolchainReq `json:"tools,omitempty"`
	Arch            string         `json:"arch,omitempty"` // GOARCH spelling; empty: any
	Steps           []string       `json:"steps"`
	Outputs         []Output       `json:"outputs"`
	Limits          Limits         `json:"limits"`
	SourceDateEpoch int64          `json:"source_date_epoch"`
	Source          blob.Digest    `json:"source"` // the recipe repository's tree at Commit, a deterministic tar
	Inputs          []Input        `json:"inputs,omitempty"`
	// Install carries the recipe's install notes to the release; builders
	// ignore it.
	Install string `json:"install,omitempty"`
	// RiskNotes carries the recipe's own risk notes to the product page;
	// builders ignore it.
	RiskNotes string `json:"risk_notes,omitempty"`
}

// RecipeRef pins the recipe that is built.
type RecipeRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	RepoURL string `json:"repo_url"`
	Commit  string `json:"commit"` // full 40-hex commit id
	Path    string `json:"path"`   // the recipe file inside the repository
}

// ToolchainReq is the toolchain a build needs: a name and a version
// constraint in the grammar of recipes/constraint.
type ToolchainReq struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Output is a file the steps must leave under /out.
type Output struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

// Limits bound one build. Timeout, memory and CPUs are what the recipe
// asks for; processes, bytes written and log size are the ceilings the
// coordinator puts on every job (serve --max-build-procs, --max-build-write,
// --max-build-log; zero: none). A builder applies the lower of each and its
// own maxima, and refuses a job that asks for more than those.
type Limits struct {
	TimeoutSeconds int64 `json:"timeout_seconds"`
	MemoryBytes    int64 `json:"memory_bytes"`
	CPUs           int   `json:"cpus"`
	Processes      int   `json:"processes,omitempty"`
	WriteBytes     int64 `json:"write_bytes,omitempty"`
	LogBytes       int64 `json:"log_bytes,omitempty"`
}

// Timeout is TimeoutSeconds as a duration.
func (l Limits) Timeout() time.Duration { return time.Duration(l.TimeoutSeconds) * time.Second }

// Input is one blob the build reads, mounted under /inputs/<Mount>.
type Input struct {
	Digest blob.Digest `json:"digest"`
	Mount  string      `json:"mount"` // e.g. "escrow/vendor/main.c" or "git/libfoo"
	Kind   string      `json:"kind"`  // inputkind.Escrow or inputkind.GitArchive
	// BuildOnly marks an escrow file its vendor allows as a build input
	// only: the builder gets it with FetchInput, within this job.
	BuildOnly bool `json:"build_only,omitempty"`
}

// Validate checks a spec before it is stored or run; errors have kind
// Invalid and list every problem.
func (s Spec) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if s.Recipe.Name == "" {
		add("recipe.name is empty")
	}
	if s.Recipe.RepoURL == "" {
		add("recipe.repo_url is empty")
	}
	if !ValidCommit(s.Recipe.Commit) {
		add("recipe.commit %q is not a full commit id", s.Recipe.Commit)
	}
	if s.Toolchain.Name == "" {
		add("toolchain.name is empty")
	}
	if len(s.Steps) == 0 {
		add("no steps")
	}
	if len(s.Outputs) == 0 {
		add("no outputs")
	}
	seen := map[string]bool{}
	for _, o := range s.Outputs {
		if err := relpath.Check(o.Path); err != nil {
			add("output %q: %s", o.Path, errs.Message(err))
		}
		if seen[o.Path] {
			add("output %q listed twice", o.Path)
		}
		seen[o.Path] = true
	}
	if _, err := blob.ParseDigest(string(s.Source)); err != nil {
		add("source: %s", errs.Message(err))
	}
	mounts := map[string]bool{}
	for _, in := range s.Inputs {
		if _, err := blob.ParseDigest(string(in.Digest)); err != nil {
			add("input %q: %s", in.Mount, errs.Message(err))
		}
		if err := relpath.Check(in.Mount); err != nil {
			add("input mount %q: %s", in.Mount, errs.Message(err))
		}
		if !inputkind.Valid(in.Kind) {
			add("input %q: kind %q is not %s or %s", in.Mount, in.Kind, inputkind.Escrow, inputkind.GitArchive)
		}
		if mounts[in.Mount] {
			add("input mount %q used twice", in.Mount)
		}
		mounts[in.Mount] = true
	}
	for _, t := range s.Tools {
		if t.Name == "" || t.Version == "" {
			add("tool %q %q: a tool needs a name and an exact version", t.Name, t.Version)
		}
	}
	if s.SourceDateEpoch < 0 {
		add("source_date_epoch is negative")
	}
	if l := s.Limits; l.TimeoutSeconds < 0 || l.MemoryBytes < 0 || l.CPUs < 0 || l.Processes < 0 || l.WriteBytes < 0 || l.LogBytes < 0 {
		add("limits are negative")
	}
	if len(problems) > 0 {
		return errs.E(errs.Invalid, "build spec: %s", strings.Join(problems, "; "))
	}
	return nil
}

// ValidCommit reports whether s is a full git commit id: 40 lowercase hex
// digits (SLSA records commits as SHA-1).
func ValidCommit(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ToolchainInfo is one toolchain a builder has.
type ToolchainInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Capable reports whether a builder with arch and toolchains can run a job
// that needs tc on arch want.
func Capable(arch string, toolchains []ToolchainInfo, want ToolchainReq, wantArch string) bool {
	if wantArch != "" && wantArch != arch {
		return false
	}
	for _, t := range toolchains {
		if t.Name == want.Name && constraint.Satisfies(t.Version, want.Version) {
			return true
		}
	}
	return false
}

// HasTools reports whether a builder with toolchains has every tool a job
// declares, each at exactly the declared version.
func HasTools(toolchains []ToolchainInfo, tools []ToolchainReq) bool {
	for _, want := range tools {
		if !slices.ContainsFunc(toolchains, func(t ToolchainInfo) bool { return t.Name == want.Name && t.Version == want.Version }) {
			return false
		}
	}
	return true
}

// ProtocolVersion is the version of the farm protocol this code speaks.
// An agent says which version it speaks when it registers (and, over HTTP,
// on every call); a coordinator refuses any version it does not speak, so
// an agent and a coordinator that no longer understand each other stop at
// once with an error naming both versions instead of failing job by job.
// Version 1 is the protocol as it was before agents said so: an agent that
// names no version speaks 1. Raise it when a change to the Coordinator
// contract or its JSON would be misread by the other side.
const ProtocolVersion = 1

// CheckProtocol refuses a farm protocol version this coordinator does not
// speak, naming both (kind Invalid: asking again will not help). 0, no
// version, is version 1.
func CheckProtocol(v int) error {
	if v == 0 {
		v = 1
	}
	if v == ProtocolVersion {
		return nil
	}
	upgrade := "the coordinator"
	if v < ProtocolVersion {
		upgrade = "the builder"
	}
	return errs.E(errs.Invalid, "the builder speaks farm protocol %d, this coordinator speaks %d: upgrade %s", v, ProtocolVersion, upgrade)
}

// Registration is what a builder tells the coordinator about itself.
type Registration struct {
	// Protocol is the farm protocol version the agent speaks
	// (ProtocolVersion); 0 means 1.
	Protocol int    `json:"protocol,omitempty"`
	Name     string `json:"name"`
	// Operator is ignored: the coordinator takes a builder's operator from
	// the binding an admin made for its token. It is accepted so that
	// agents that still send it keep working.
	Operator     string          `json:"operator,omitempty"`
	PublicKey    string          `json:"public_key"` // keys.PublicKeyString form: "ed25519:<base64>"
	Arch         string          `json:"arch"`
	Toolchains   []ToolchainInfo `json:"toolchains"`
	AgentVersion string          `json:"agent_version,omitempty"`
}

// Builder is a registered builder.
type Builder struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Operator     string          `json:"operator"`
	PublicKey    string          `json:"public_key"`
	KeyID        string          `json:"key_id"`
	Arch         string          `json:"arch"`
	Toolchains   []ToolchainInfo `json:"toolchains"`
	AgentVersion string          `json:"agent_version,omitempty"`
	Registered   time.Time       `json:"registered"`
	LastSeen     time.Time       `json:"last_seen"`
}

// Job is one build handed to one builder, leased until LeaseUntil.
type Job struct {
	ID         string        `json:"id"`
	BuildID    string        `json:"build_id"`
	BuilderID  string        `json:"builder_id"`
	Attempt    int           `json:"attempt"`
	LeaseUntil time.Time     `json:"lease_until"`
	LeaseTTL   time.Duration `json:"lease_ttl_ns"` // how long each Extend renews the lease
	Spec       Spec          `json:"spec"`
	// Cold makes this job the build's cold witness: it runs with empty
	// caches and says so in its signed attestation.
	Cold bool `json:"cold,omitempty"`
}

// OutputFile is one output a builder produced.
type OutputFile struct {
	Path   string      `json:"path"`
	Kind   string      `json:"kind"`
	Digest blob.Digest `json:"digest"`
	Size   int64       `json:"size"`
}

// Report is what a builder returns when a job ends. The blobs it names
// (outputs, log, buildinfo, attestation) must be uploaded first.
type Report struct {
	Outputs     []OutputFile `json:"outputs,omitempty"`
	Log         blob.Digest  `json:"log,omitempty"`
	BuildInfo   blob.Digest  `json:"buildinfo,omitempty"`
	Attestation blob.Digest  `json:"attestation,omitempty"` // DSSE envelope of an in-toto statement
	Failed      bool         `json:"failed,omitempty"`
	Reason      string       `json:"reason,omitempty"`
}

// Coordinator is the whole agent ↔ coordinator contract. The caller's
// identity (its token) decides which builder a call is for; Register binds
// a token to a builder. builder/coord implements it once (coord.Local, for
// the builder a token is bound to); the HTTP server of builder/farmhttp
// calls that implementation and builder/farmclient carries the calls over
// HTTP.
type Coordinator interface {
	// Register records (or updates) the calling builder and its capabilities.
	Register(ctx context.Context, reg Registration) (Builder, error)
	// Next waits up to about wait for a job this builder can run and leases
	// it; nil, nil means no work came in time.
	Next(ctx context.Context, wait time.Duration) (*Job, error)
	// Extend renews the lease of a job this builder holds. A Conflict or
	// NotFound error means the lease is lost: the builder must drop the job.
	Extend(ctx context.Context, jobID string) (time.Time, error)
	// Fetch streams a blob (the source archive, an input). The caller
	// verifies the digest.
	Fetch(ctx context.Context, d blob.Digest) (io.ReadCloser, error)
	// FetchInput streams an input of a job this builder holds: the only way
	// to a build-only escrow file, which Fetch refuses. The caller verifies
	// the digest.
	FetchInput(ctx context.Context, jobID string, d blob.Digest) (io.ReadCloser, error)
	// Upload stores a blob produced by a job (an output, the log, the
	// buildinfo, the attestation) of size bytes (-1: unknown); the
	// coordinator verifies the lease, the size limit, the size and the
	// digest. A client that may retry re-reads r from its start when r is
	// an io.Seeker.
	Upload(ctx context.Context, jobID string, d blob.Digest, size int64, r io.Reader) error
	// AppendLog adds a chunk to the job's live log.
	AppendLog(ctx context.Context, jobID string, chunk []byte) error
	// Done reports the end of a job.
	Done(ctx context.Context, jobID string, rep Report) error
	// GiveBack returns a job to the queue, unfinished.
	GiveBack(ctx context.Context, jobID string) error
}
