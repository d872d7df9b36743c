package recipes

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/relpath"
	"github.com/afterlife-oss/afterlife/recipes/constraint"
)

// Patterns shared with schema.json (a test keeps them equal).
var (
	NamePattern    = `^[a-z0-9][a-z0-9._-]{0,62}$`
	ProductPattern = `^[a-z0-9][a-z0-9-]{0,62}$`
	VersionPattern = `^[0-9]+(\.[0-9]+)*(-[0-9A-Za-z.-]+)?$`
	CommitPattern  = `^[0-9a-f]{40}$`
	DigestPattern  = `^sha256:[0-9a-f]{64}$`

	nameRe    = regexp.MustCompile(NamePattern)
	productRe = regexp.MustCompile(ProductPattern)
	versionRe = regexp.MustCompile(VersionPattern)
	commitRe  = regexp.MustCompile(CommitPattern)
)

// MaxVersionLen bounds Recipe.Version.
const MaxVersionLen = 64

// KnownArches are the builder architectures a recipe may ask for.
var KnownArches = []string{"amd64", "arm64", "386", "arm", "riscv64", "ppc64le", "s390x", "loong64", "mips64le"}

// GitSchemes are the URL schemes a git input may use. Which of them a given
// server actually fetches is its own policy.
var GitSchemes = []string{"https", "http", "git", "file"}

type validator struct {
	file  string
	lines map[string]int
	bad   map[string]bool // fields already reported as undecodable
	errs  Errors
}

// line is where field (or, failing that, its nearest parent) is written.
func (v *validator) line(field string) int {
	for {
		if l, ok := v.lines[field]; ok {
			return l
		}
		if field == "" {
			return 0
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			field = ""
		} else {
			field = field[:i]
		}
	}
}

func (v *validator) present(field string) bool {
	_, ok := v.lines[field]
	return ok
}

func (v *validator) add(field, format string, args ...any) {
	for f := field; ; {
		if v.bad[f] {
			return
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	v.errs = append(v.errs, FieldError{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) recipe(r *Recipe) {
	v.pattern("name", r.Name, nameRe, "lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, at most 63")
	if len(r.Version) > MaxVersionLen {
		v.add("version", "longer than %d characters", MaxVersionLen)
	} else {
		v.pattern("version", r.Version, versionRe, "digits and dots with an optional -suffix, like 1.0.0 or 2.1-rc1")
	}
	v.products(r.Products)
	if r.License == "" {
		v.add("license", "required: an SPDX license expression such as GPL-2.0-or-later")
	} else if err := CheckLicense(r.License); err != nil {
		v.add("license", "%v", err)
	}
	if e := r.SourceDateEpoch; e != nil && (*e < 0 || *e > MaxSourceDateEpoch) {
		v.add("source_date_epoch", "%d is out of range 0..%d", *e, int64(MaxSourceDateEpoch))
	}
	v.toolchain(r.Toolchain)
	v.tools(r.Tools)
	if r.Arch != "" && !slices.Contains(KnownArches, r.Arch) {
		v.add("arch", "%q is not one of %s", r.Arch, strings.Join(KnownArches, ", "))
	}
	v.escrow(r.Inputs.Escrow)
	v.git(r.Inputs.Git)
	v.steps(r.Steps)
	v.outputs(r.Outputs)
	v.text("install", r.Install)
	v.text("risk_notes", r.RiskNotes)
	v.limits(r.Limits)
}

func (v *validator) pattern(field, s string, re *regexp.Regexp, want string) {
	switch {
	case s == "":
		v.add(field, "required")
	case !re.MatchString(s):
		v.add(field, "%q is not valid: want %s", s, want)
	}
}

func (v *validator) products(ps []string) {
	if len(ps) == 0 {
		v.add("products", "required: list at least one product id")
		return
	}
	if len(ps) > MaxProducts {
		v.add("products", "%d products; the limit is %d", len(ps), MaxProducts)
	}
	seen := map[string]bool{}
	for i, p := range ps {
		f := fmt.Sprintf("products[%d]", i)
		v.pattern(f, p, productRe, "a product id: lowercase letters, digits and '-', at most 63")
		if seen[p] {
			v.add(f, "%q is listed twice", p)
		}
		seen[p] = true
	}
}

func (v *validator) toolchain(t Toolchain) {
	switch {
	case t.Name == "":
		v.add("toolchain.name", "required: one of %s", strings.Join(ToolchainNames(), ", "))
	case !slices.Contains(ToolchainNames(), t.Name):
		v.add("toolchain.name", "%q is not one of %s", t.Name, strings.Join(ToolchainNames(), ", "))
	}
	if _, err := constraint.Parse(t.Version); err != nil {
		v.add("toolchain.version", "%v", err)
	}
}

func (v *validator) tools(tools []Tool) {
	if len(tools) > MaxTools {
		v.add("tools", "%d tools; the limit is %d", len(tools), MaxTools)
	}
	seen := map[string]int{}
	for i, t := range tools {
		f := fmt.Sprintf("tools[%d]", i)
		known := KnownToolVersions(t.Name)
		switch {
		case t.Name == "":
			v.add(f+".name", "required: one of %s", strings.Join(ToolNames(), ", "))
			continue
		case known == nil:
			v.add(f+".name", "%q is not one of %s", t.Name, strings.Join(ToolNames(), ", "))
			continue
		}
		if first, dup := seen[t.Name]; dup {
			v.add(f+".name", "%q is already declared by tools[%d]", t.Name, first)
		} else {
			seen[t.Name] = i
		}
		switch {
		case t.Version == "":
			v.add(f+".version", "required: the exact version, one of %s", strings.Join(known, ", "))
		case !slices.Contains(known, t.Version):
			v.add(f+".version", "%s %q is not a version builders provide: pin one of %s", t.Name, t.Version, strings.Join(known, ", "))
		}
	}
}

func (v *validator) escrow(in []EscrowInput) {
	if len(in) > MaxEscrowFiles {
		v.add("inputs.escrow", "%d files; the limit is %d", len(in), MaxEscrowFiles)
	}
	paths := make([]string, 0, len(in))
	for i, e := range in {
		f := fmt.Sprintf("inputs.escrow[%d]", i)
		if e.Digest == "" {
			v.add(f+".digest", "required: sha256:<64 hex digits>")
		} else if _, err := blob.ParseDigest(e.Digest); err != nil {
			v.add(f+".digest", "%q is not a digest: want sha256:<64 lowercase hex digits>", e.Digest)
		}
		if e.Rights != "" && e.Rights != "public" && e.Rights != BuildOnly {
			v.add(f+".rights", "%q: want public or build-only", e.Rights)
		}
		if v.confined(f+".as", e.As) {
			paths = append(paths, e.As)
		} else {
			paths = append(paths, "")
		}
	}
	v.pathSet("inputs.escrow", ".as", paths)
}

func (v *validator) git(in []GitInput) {
	if len(in) > MaxGitInputs {
		v.add("inputs.git", "%d sources; the limit is %d", len(in), MaxGitInputs)
	}
	seen := map[string]int{}
	for i, g := range in {
		f := fmt.Sprintf("inputs.git[%d]", i)
		v.pattern(f+".name", g.Name, nameRe, "lowercase letters, digits, '.', '_' or '-', at most 63")
		if first, dup := seen[g.Name]; dup && g.Name != "" {
			v.add(f+".name", "%q is already the name of inputs.git[%d]", g.Name, first)
		} else {
			seen[g.Name] = i
		}
		if err := checkGitURL(g.URL); err != nil {
			v.add(f+".url", "%v", err)
		}
		if g.Commit == "" {
			v.add(f+".commit", "required: the full 40-hex commit id")
		} else if !commitRe.MatchString(g.Commit) {
			v.add(f+".commit", "%q is not a full commit id: want 40 lowercase hex digits (branches and tags move)", g.Commit)
		}
	}
}

func checkGitURL(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	if len(s) > 2048 || strings.ContainsFunc(s, unicode.IsControl) || strings.ContainsRune(s, ' ') {
		return fmt.Errorf("%q is not a usable URL", s)
	}
	u, err := url.Parse(s)
	if err != nil || !slices.Contains(GitSchemes, u.Scheme) {
		return fmt.Errorf("%q is not a URL with scheme %s", s, strings.Join(GitSchemes, ", "))
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials: inputs are public")
	}
	if u.Scheme != "file" && u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

func (v *validator) steps(steps []string) {
	if len(steps) == 0 {
		v.add("steps", "required: list at least one shell command")
		return
	}
	if len(steps) > MaxSteps {
		v.add("steps", "%d steps; the limit is %d", len(steps), MaxSteps)
	}
	for i, s := range steps {
		f := fmt.Sprintf("steps[%d]", i)
		switch {
		case strings.TrimSpace(s) == "":
			v.add(f, "empty step")
		case len(s) > MaxStepSize:
			v.add(f, "%d bytes; the limit is %d", len(s), MaxStepSize)
		case strings.ContainsRune(s, 0):
			v.add(f, "contains a NUL byte")
		}
	}
}

func (v *validator) outputs(outs []Output) {
	if len(outs) == 0 {
		v.add("outputs", "required: list at least one output file")
		return
	}
	if len(outs) > MaxOutputs {
		v.add("outputs", "%d outputs; the limit is %d", len(outs), MaxOutputs)
	}
	paths := make([]string, len(outs))
	for i, o := range outs {
		f := fmt.Sprintf("outputs[%d]", i)
		if v.confined(f+".path", o.Path) {
			paths[i] = o.Path
		}
		switch {
		case o.Kind == "":
			v.add(f+".kind", "required: one of %s", strings.Join(OutputKinds, ", "))
		case !slices.Contains(OutputKinds, o.Kind):
			v.add(f+".kind", "%q is not one of %s", o.Kind, strings.Join(OutputKinds, ", "))
		}
	}
	v.pathSet("outputs", ".path", paths)
}

// pathSet reports paths that repeat, or where one is a directory of another
// (a file cannot be both "a" and "a/b"). Empty entries were already reported.
func (v *validator) pathSet(list, suffix string, paths []string) {
	seen := map[string]int{}
	for i, p := range paths {
		if _, dup := seen[p]; p != "" && !dup {
			seen[p] = i
		}
	}
	for i, p := range paths {
		if p == "" {
			continue
		}
		f := fmt.Sprintf("%s[%d]%s", list, i, suffix)
		if first := seen[p]; first != i {
			v.add(f, "%q is used twice (also %s[%d])", p, list, first)
			continue
		}
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if j, ok := seen[dir]; ok {
				v.add(f, "%q is inside %q (%s[%d]), which is a file", p, dir, list, j)
				break
			}
		}
	}
}

// confined checks a path that must stay inside its mount point.
func (v *validator) confined(field, p string) bool {
	if p == "" {
		v.add(field, "required: a relative path")
		return false
	}
	if err := relpath.Check(p); err != nil {
		v.add(field, "%v", err)
		return false
	}
	return true
}

func (v *validator) text(field, s string) {
	switch {
	case len(s) > MaxTextSize:
		v.add(field, "%d bytes; the limit is %d", len(s), MaxTextSize)
	case strings.ContainsRune(s, 0):
		v.add(field, "contains a NUL byte")
	}
}

// maxima reports each limit l asks for above m, naming the server
// setting that bounds it. Zero fields of m do not bound.
func (v *validator) maxima(l Limits, m Maxima) {
	if m.Timeout > 0 && l.Timeout > m.Timeout {
		v.add("limits.timeout", "%s is more than this build farm allows: at most %s (max-build-timeout)", l.Timeout, m.Timeout)
	}
	if m.Memory > 0 && l.Memory > m.Memory {
		v.add("limits.memory", "%s is more than this build farm allows: at most %s (max-build-memory)", l.Memory, m.Memory)
	}
	if m.CPUs > 0 && l.CPUs > m.CPUs {
		v.add("limits.cpus", "%d is more than this build farm allows: at most %d (max-build-cpus)", l.CPUs, m.CPUs)
	}
}

// CheckMaxima refuses a parsed recipe that asks for more than m; the error
// has kind Invalid and names each limit.
func CheckMaxima(r *Recipe, m Maxima) error {
	v := validator{file: DefaultFile}
	v.maxima(r.Limits, m)
	if len(v.errs) > 0 {
		return v.errs.asError()
	}
	return nil
}

func (v *validator) limits(l Limits) {
	if l.Timeout != 0 && (l.Timeout < MinTimeout || l.Timeout > MaxTimeout) {
		v.add("limits.timeout", "%s is out of range %s..%s", l.Timeout, MinTimeout, MaxTimeout)
	}
	if v.present("limits.timeout") && l.Timeout == 0 {
		v.add("limits.timeout", "empty; leave the field out for the default %s", DefaultTimeout)
	}
	if l.Memory != 0 && (l.Memory < MinMemory || l.Memory > MaxMemory) {
		v.add("limits.memory", "%s is out of range %s..%s", l.Memory, MinMemory, MaxMemory)
	}
	if v.present("limits.memory") && l.Memory == 0 {
		v.add("limits.memory", "empty; leave the field out for the default %s", DefaultMemory)
	}
	if l.CPUs < 0 || l.CPUs > MaxCPUs || (l.CPUs == 0 && v.present("limits.cpus")) {
		v.add("limits.cpus", "%d is out of range 1..%d", l.CPUs, MaxCPUs)
	}
}
