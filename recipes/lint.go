package recipes

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// LintResult is what `afterlife recipe lint` shows: the errors that make a
// recipe unusable and warnings about things that usually go wrong in the
// sandbox.
type LintResult struct {
	File     string
	Recipe   *Recipe // nil when there are errors
	Errors   Errors
	Warnings Errors
}

// OK reports whether the recipe has no errors (warnings are allowed).
func (l LintResult) OK() bool { return len(l.Errors) == 0 }

// Report is a human-readable summary, one problem per line, ending with a
// verdict line.
func (l LintResult) Report() string {
	var b strings.Builder
	for _, e := range l.Errors {
		fmt.Fprintf(&b, "error: %s\n", e.Error())
	}
	for _, w := range l.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w.Error())
	}
	if !l.OK() {
		fmt.Fprintf(&b, "%s: %d error(s), %d warning(s)\n", l.File, len(l.Errors), len(l.Warnings))
		return b.String()
	}
	r := l.Recipe
	fmt.Fprintf(&b, "%s: ok: %s %s for %s; toolchain %s %s; %d step(s), %d output(s); %d warning(s)\n",
		l.File, r.Name, r.Version, strings.Join(r.Products, ", "), r.Toolchain.Name,
		cmpOr(r.Toolchain.Version, "(any version)"), len(r.Steps), len(r.Outputs), len(l.Warnings))
	return b.String()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Lint parses data (named name in messages), checks its limits against
// DefaultMaxima and adds warnings.
func Lint(data []byte, name string) LintResult { return LintWith(data, name, DefaultMaxima) }

// LintWith is Lint against a given farm's maxima.
func LintWith(data []byte, name string, m Maxima) LintResult {
	if name == "" {
		name = DefaultFile
	}
	r, list := parse(name, data)
	res := LintResult{File: name, Recipe: r, Errors: list}
	if r == nil {
		return res
	}
	// Positions for maxima and warnings: parse again only for the line table.
	d := &decoder{file: name, lines: map[string]int{}}
	d.decode(data)
	over := validator{file: name, lines: d.lines}
	over.maxima(r.Limits, m)
	if len(over.errs) > 0 {
		res.Recipe, res.Errors = nil, over.errs
		return res
	}
	w := validator{file: name, lines: d.lines}
	w.warn(r)
	w.errs.sort()
	res.Warnings = w.errs
	return res
}

// LintReport is LintWith's report and verdict in one call.
func LintReport(data []byte, name string, m Maxima) (report string, ok bool) {
	l := LintWith(data, name, m)
	return l.Report(), l.OK()
}

var (
	networkRe    = regexp.MustCompile(`(^|[\s;&|(])(curl|wget|git\s+(clone|fetch|pull)|apt(-get)?\s+install|pip3?\s+install|npm\s+install|go\s+get|go\s+mod\s+download)\b`)
	goBuildRe    = regexp.MustCompile(`(^|[\s;&|(])go\s+build\b`)
	goTrimpathRe = regexp.MustCompile(`-trimpath\b`)
)

func (v *validator) warn(r *Recipe) {
	if !slices.ContainsFunc(r.Outputs, func(o Output) bool { return o.Kind == KindFirmware }) {
		v.add("outputs", "no output has kind firmware: nothing can be released to devices")
	}
	if r.Toolchain.Version == "" {
		v.add("toolchain.version", "no version constraint: builders with different toolchain versions rarely agree bit for bit")
	}
	if strings.TrimSpace(r.Install) == "" {
		v.add("install", "no install notes for device owners")
	}
	for i, s := range r.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		if m := networkRe.FindStringSubmatch(s); m != nil {
			v.add(f, "%q needs the network, which the build sandbox does not have; pin sources under inputs instead", strings.TrimSpace(m[2]))
		}
		if r.Toolchain.Name == "go" && goBuildRe.MatchString(s) && !goTrimpathRe.MatchString(s) && !strings.Contains(s, "GOFLAGS") {
			v.add(f, "go build without -trimpath records the build directory in the binary")
		}
	}
}
