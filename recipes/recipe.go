// Package recipes owns the afterlife.yaml recipe format: its strict parser,
// its validation, its JSON Schema, the canonical JSON build spec derived from
// it, and fetching recipe repositories with go-git (clone, pin a commit,
// archive its tree deterministically, extract such an archive safely).
//
// It must not run builds, talk to the database or know about other parts:
// the build farm, the registry and the CLI call into it with plain types.
package recipes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes/constraint"
)

// MaxRecipeSize bounds an afterlife.yaml file (and its canonical JSON).
const MaxRecipeSize = 256 << 10

// DefaultFile is the recipe's path in its repository when none is given.
const DefaultFile = "afterlife.yaml"

// Recipe is one parsed and validated afterlife.yaml. The yaml tags are the
// file format; the json tags are the canonical build spec; both use the same
// names. A `recipe:"required"` tag marks fields the file must set (the JSON
// Schema's "required" lists are checked against these tags by a test).
type Recipe struct {
	Name            string    `yaml:"name" json:"name" recipe:"required"`
	Version         string    `yaml:"version" json:"version" recipe:"required"`
	Products        []string  `yaml:"products" json:"products" recipe:"required"`
	License         string    `yaml:"license" json:"license" recipe:"required"`
	SourceDateEpoch *int64    `yaml:"source_date_epoch,omitempty" json:"source_date_epoch,omitempty"`
	Toolchain       Toolchain `yaml:"toolchain" json:"toolchain" recipe:"required"`
	Tools           []Tool    `yaml:"tools,omitempty" json:"tools,omitempty"`
	Arch            string    `yaml:"arch,omitempty" json:"arch,omitempty"`
	Inputs          Inputs    `yaml:"inputs,omitempty" json:"inputs,omitzero"`
	Steps           []string  `yaml:"steps" json:"steps" recipe:"required"`
	Outputs         []Output  `yaml:"outputs" json:"outputs" recipe:"required"`
	Install         string    `yaml:"install,omitempty" json:"install,omitempty"`
	RiskNotes       string    `yaml:"risk_notes,omitempty" json:"risk_notes,omitempty"`
	Limits          Limits    `yaml:"limits,omitempty" json:"limits"`
}

// Toolchain names the build environment a builder must provide.
type Toolchain struct {
	// Name is one of KnownToolchains.
	Name string `yaml:"name" json:"name" recipe:"required"`
	// Version is a constraint (see recipes/constraint); empty means any.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
}

// Tool is a tool the steps run beside the toolchain (an SBOM generator),
// pinned to one of the versions builders provide (KnownTools): what it
// writes names it, so every builder must run the same build of it.
type Tool struct {
	// Name is one of KnownTools.
	Name string `yaml:"name" json:"name" recipe:"required"`
	// Version is exactly one of the tool's known versions.
	Version string `yaml:"version" json:"version" recipe:"required"`
}

// Inputs are what a build reads besides the recipe repository itself.
type Inputs struct {
	Escrow []EscrowInput `yaml:"escrow,omitempty" json:"escrow,omitempty"`
	Git    []GitInput    `yaml:"git,omitempty" json:"git,omitempty"`
}

// EscrowInput is a released escrow file, mounted read-only at
// /inputs/escrow/<As>.
type EscrowInput struct {
	Digest string `yaml:"digest" json:"digest" recipe:"required"`
	As     string `yaml:"as" json:"as" recipe:"required"`
	// Rights is "build-only" for a file its vendor allows as a build input
	// only (never published): the recipe must say so, and the build then
	// states it was built with vendor-permitted build-only inputs. Empty or
	// "public" otherwise.
	Rights string `yaml:"rights,omitempty" json:"rights,omitempty"`
}

// BuildOnly is the rights value that declares a build-only escrow input.
const BuildOnly = "build-only"

// GitInput is a public git source pinned by full commit id, mounted
// read-only at /inputs/git/<Name>.
type GitInput struct {
	Name   string `yaml:"name" json:"name" recipe:"required"`
	URL    string `yaml:"url" json:"url" recipe:"required"`
	Commit string `yaml:"commit" json:"commit" recipe:"required"`
}

// Output is a file the steps leave under /out.
type Output struct {
	Path string `yaml:"path" json:"path" recipe:"required"`
	Kind string `yaml:"kind" json:"kind" recipe:"required"`
}

// Output kinds.
const (
	KindFirmware = "firmware"
	KindSBOM     = "sbom"
	KindLog      = "log"
	KindOther    = "other"
)

// OutputKinds lists the allowed Output.Kind values in documentation order.
var OutputKinds = []string{KindFirmware, KindSBOM, KindLog, KindOther}

// Limits bound one build. Parse fills in the defaults, so a parsed recipe
// always carries all three.
type Limits struct {
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout"`
	Memory  ByteSize `yaml:"memory,omitempty" json:"memory"`
	CPUs    int      `yaml:"cpus,omitempty" json:"cpus"`
}

// Default and allowed limits.
const (
	DefaultTimeout = Duration(30 * time.Minute)
	DefaultMemory  = ByteSize(4 << 30)
	DefaultCPUs    = 2

	MinTimeout = Duration(time.Minute)
	MaxTimeout = Duration(12 * time.Hour)
	MinMemory  = ByteSize(128 << 20)
	MaxMemory  = ByteSize(64 << 30)
	MaxCPUs    = 64
)

// Maxima are the most a recipe may ask for on a given build farm: a
// server's max-build-* settings. MaxTimeout, MaxMemory and MaxCPUs above
// bound the format; Maxima bound what a farm will run.
type Maxima struct {
	Timeout Duration
	Memory  ByteSize
	CPUs    int
}

// DefaultMaxima are the server's defaults, which `afterlife recipe lint`
// checks against.
var DefaultMaxima = Maxima{Timeout: Duration(2 * time.Hour), Memory: ByteSize(8 << 30), CPUs: 8}

// Bounds on the sizes of a recipe's parts.
const (
	MaxSteps       = 200
	MaxStepSize    = 16 << 10
	MaxOutputs     = 64
	MaxProducts    = 64
	MaxEscrowFiles = 1000
	MaxGitInputs   = 64
	MaxTools       = 8
	MaxTextSize    = 64 << 10 // install, risk_notes
	// MaxSourceDateEpoch is the largest time a plain ustar header holds
	// (8^11-1 seconds, year 2242), so archives never need extra records.
	MaxSourceDateEpoch = 1<<33 - 1
)

// Parse reads an afterlife.yaml. Errors are of kind errs.Invalid and wrap an
// Errors value listing every problem with its line and field.
func Parse(data []byte) (*Recipe, error) { return ParseFile(DefaultFile, data) }

// ParseFile is Parse with the file name used in error messages.
func ParseFile(name string, data []byte) (*Recipe, error) {
	r, list := parse(name, data)
	if len(list) > 0 {
		return nil, list.asError()
	}
	return r, nil
}

func parse(name string, data []byte) (*Recipe, Errors) {
	if len(data) > MaxRecipeSize {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("file is %d bytes; the limit is %d", len(data), MaxRecipeSize)}}
	}
	d := &decoder{file: name, lines: map[string]int{}, bad: map[string]bool{}}
	r := d.decode(data)
	if r == nil {
		d.errs.sort()
		return nil, d.errs
	}
	v := validator{file: name, lines: d.lines, bad: d.bad, errs: d.errs}
	v.recipe(r)
	if len(v.errs) > 0 {
		v.errs.sort()
		return nil, v.errs
	}
	r.normalize()
	return r, nil
}

// ParseJSON reads a canonical build spec written by Canonical (or any JSON
// with the same fields) and validates it like Parse. Unknown fields are
// errors; errors carry no line numbers.
func ParseJSON(data []byte) (*Recipe, error) {
	const name = "recipe.json"
	if len(data) > MaxRecipeSize {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("spec is %d bytes; the limit is %d", len(data), MaxRecipeSize)}}.asError()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Recipe
	if err := dec.Decode(&r); err != nil {
		return nil, Errors{{File: name, Msg: err.Error()}}.asError()
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errors{{File: name, Msg: "trailing data after the JSON object"}}.asError()
	}
	r.normalize()
	v := validator{file: name}
	v.recipe(&r)
	if len(v.errs) > 0 {
		v.errs.sort()
		return nil, v.errs.asError()
	}
	return &r, nil
}

// Canonical is the deterministic JSON of the parsed recipe, with defaults
// filled in: the same recipe always gives the same bytes, so the build farm
// can use it (and its digest) as the build spec.
func (r *Recipe) Canonical() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: encode %s", r.Name)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Epoch is the SOURCE_DATE_EPOCH of a build: the recipe's own value, or else
// the time of the recipe commit.
func (r *Recipe) Epoch(commitTime time.Time) int64 {
	if r.SourceDateEpoch != nil {
		return *r.SourceDateEpoch
	}
	return commitTime.Unix()
}

// ToolchainMatches reports whether a builder's toolchain (name and version,
// e.g. "go", "1.26.8") satisfies the recipe.
func (r *Recipe) ToolchainMatches(name, version string) bool {
	if name != r.Toolchain.Name {
		return false
	}
	return constraint.Satisfies(version, r.Toolchain.Version)
}

// ArchMatches reports whether a builder of architecture arch (GOARCH-style)
// may build the recipe.
func (r *Recipe) ArchMatches(arch string) bool { return r.Arch == "" || r.Arch == arch }

// normalize fills defaults so that a parsed recipe is explicit.
func (r *Recipe) normalize() {
	if r.Limits.Timeout == 0 {
		r.Limits.Timeout = DefaultTimeout
	}
	if r.Limits.Memory == 0 {
		r.Limits.Memory = DefaultMemory
	}
	if r.Limits.CPUs == 0 {
		r.Limits.CPUs = DefaultCPUs
	}
	if len(r.Inputs.Escrow) == 0 {
		r.Inputs.Escrow = nil
	}
	if len(r.Inputs.Git) == 0 {
		r.Inputs.Git = nil
	}
	if len(r.Tools) == 0 {
		r.Tools = nil
	}
}
