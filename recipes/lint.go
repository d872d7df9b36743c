package recipes

import (
	"fmt"
	"io/fs"
	"path"
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
	tools := ""
	for _, t := range r.Tools {
		tools += fmt.Sprintf("; tool %s %s", t.Name, t.Version)
	}
	fmt.Fprintf(&b, "%s: ok: %s %s for %s; toolchain %s %s%s; %d step(s), %d output(s); %d warning(s)\n",
		l.File, r.Name, r.Version, strings.Join(r.Products, ", "), r.Toolchain.Name,
		cmpOr(r.Toolchain.Version, "(any version)"), tools, len(r.Steps), len(r.Outputs), len(l.Warnings))
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
func LintWith(data []byte, name string, m Maxima) LintResult { return LintFiles(data, name, m, nil) }

// LintFiles is LintWith that also reads the scripts the steps run from dir,
// where the steps run: the repository's root, usually the directory holding
// the recipe file (nil: the steps alone are read), to find the tools they
// use.
func LintFiles(data []byte, name string, m Maxima, dir fs.FS) LintResult {
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
	over.undeclaredTools(r, dir)
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

// CheckTools refuses a parsed recipe whose steps, or the scripts of dir
// (the repository's root, where steps run) they name, run a known tool the
// recipe does not declare; submission checks it as lint does.
func CheckTools(r *Recipe, dir fs.FS) error {
	v := validator{file: DefaultFile}
	v.undeclaredTools(r, dir)
	if len(v.errs) > 0 {
		return v.errs.asError()
	}
	return nil
}

// maxScriptSize bounds a script lint reads to find the tools it runs.
const maxScriptSize = 1 << 20

// toolUseRe finds a command called name in shell text.
func toolUseRe(name string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[\s;&|(/'"=` + "`" + `])` + regexp.QuoteMeta(name) + `($|[\s;&|)'"` + "`" + `])`)
}

// undeclaredTools refuses a step that runs a known tool (an SBOM
// generator) the recipe does not declare under tools: builders bind only
// declared tools into the sandbox, at the pinned version. It reads each
// step and, when dir is given, each file of dir a step names (sh build.sh).
func (v *validator) undeclaredTools(r *Recipe, dir fs.FS) {
	declared := map[string]bool{}
	for _, t := range r.Tools {
		declared[t.Name] = true
	}
	for _, kt := range KnownTools {
		if declared[kt.Name] {
			continue
		}
		re := toolUseRe(kt.Name)
		for i, step := range r.Steps {
			where, used := "", re.MatchString(shellCode(step))
			if !used {
				var file string
				if file, used = scriptUsing(dir, step, re); used {
					where = " (in " + file + ")"
				}
			}
			if used {
				v.add(fmt.Sprintf("steps[%d]", i), "runs %s%s, which the recipe does not declare: add {name: %s, version: %s} under tools",
					kt.Name, where, kt.Name, kt.Versions[len(kt.Versions)-1])
				break
			}
		}
	}
}

// scriptUsing reports the first file of dir that step names and whose
// code matches re.
func scriptUsing(dir fs.FS, step string, re *regexp.Regexp) (string, bool) {
	if dir == nil {
		return "", false
	}
	for _, word := range strings.Fields(step) {
		name := path.Clean(strings.TrimPrefix(strings.Trim(word, `'"`), "./"))
		if !fs.ValidPath(name) || name == "." {
			continue
		}
		st, err := fs.Stat(dir, name)
		if err != nil || !st.Mode().IsRegular() || st.Size() > maxScriptSize {
			continue
		}
		data, err := fs.ReadFile(dir, name)
		if err == nil && re.MatchString(shellCode(string(data))) {
			return name, true
		}
	}
	return "", false
}

// shellCode is text without its comment lines, so that a comment naming a
// tool is not taken for a use of it.
func shellCode(text string) string {
	lines := strings.Split(text, "\n")
	out := lines[:0]
	for _, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
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
