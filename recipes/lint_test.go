package recipes

import (
	"os"
	"strings"
	"testing"
)

func TestLintReportsAVerdictLine(t *testing.T) {
	report, ok := LintReport(readTestdata(t, "full.yaml"), "cam/afterlife.yaml", DefaultMaxima)
	if !ok {
		t.Fatalf("full example not ok:\n%s", report)
	}
	want := "cam/afterlife.yaml: ok: afterlife-cam 1.0.0 for demo-cam, demo-cam-pro; toolchain go 1.26; 2 step(s), 2 output(s); 0 warning(s)\n"
	if report != want {
		t.Errorf("report =\n%s\nwant\n%s", report, want)
	}
}

func TestLintFailsWithEveryErrorOnItsOwnLine(t *testing.T) {
	data := strings.Replace(minimal, "kind: firmware", "kind: binary", 1)
	data = strings.Replace(data, "license: MIT", "license: MIT OR", 1)
	report, ok := LintReport([]byte(data), "x.yaml", DefaultMaxima)
	if ok {
		t.Fatal("lint passed a broken recipe")
	}
	for _, want := range []string{
		"error: x.yaml:4: license: ",
		"error: x.yaml:7: outputs[0].kind: \"binary\" is not one of firmware, sbom, log, other\n",
		"x.yaml: 2 error(s), 0 warning(s)\n",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestLintWarnsAboutWhatFailsInTheSandbox(t *testing.T) {
	data := `name: net
version: "1"
products: [demo-cam]
license: MIT
toolchain: {name: go}
steps:
  - curl -O https://example.org/x.tar.gz
  - go build -o /out/fw ./cmd/fw
outputs: [{path: fw, kind: other}]
`
	l := Lint([]byte(data), "")
	if !l.OK() {
		t.Fatalf("errors: %v", l.Errors)
	}
	wants := []struct {
		line  int
		field string
		msg   string
	}{
		{5, "toolchain.version", "no version constraint"},
		{7, "steps[0]", `"curl" needs the network`},
		{8, "steps[1]", "without -trimpath"},
		{9, "outputs", "no output has kind firmware"},
		{1, "install", "no install notes"},
	}
	for _, w := range wants {
		found := false
		for _, e := range l.Warnings {
			found = found || (e.Line == w.line && e.Field == w.field && strings.Contains(e.Msg, w.msg))
		}
		if !found {
			t.Errorf("no warning %d %s %q in %v", w.line, w.field, w.msg, l.Warnings)
		}
	}
	if !strings.Contains(l.Report(), "afterlife.yaml: ok: ") {
		t.Errorf("report: %s", l.Report())
	}
}

func TestTheDocumentedExampleLintsClean(t *testing.T) {
	doc, err := os.ReadFile("../docs/recipes.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/recipes.md has no yaml example")
	}
	l := Lint([]byte(example), "docs/recipes.md")
	if !l.OK() || len(l.Warnings) > 0 {
		t.Errorf("the documented example does not lint clean:\n%s", l.Report())
	}
}

func TestLintRefusesLimitsAboveTheFarmsMaximaNamingEach(t *testing.T) {
	tests := []struct {
		name   string
		limits string
		maxima Maxima
		want   string
	}{
		{"a timeout above the default maximum", "limits: {timeout: 12h}\n", DefaultMaxima, "error: x.yaml:8: limits.timeout: 12h is more than this build farm allows: at most 2h (max-build-timeout)"},
		{"memory above the default maximum", "limits: {memory: 64GiB}\n", DefaultMaxima, "limits.memory: 64GiB is more than this build farm allows: at most 8GiB (max-build-memory)"},
		{"CPUs above the default maximum", "limits: {cpus: 64}\n", DefaultMaxima, "limits.cpus: 64 is more than this build farm allows: at most 8 (max-build-cpus)"},
		{"memory above a farm's own maximum", "limits: {memory: 2GiB}\n", Maxima{Memory: 1 << 30}, "at most 1GiB (max-build-memory)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report, ok := LintReport([]byte(minimal+tt.limits), "x.yaml", tt.maxima)
			if ok || !strings.Contains(report, tt.want) {
				t.Fatalf("report:\n%s\nwant an error containing %q", report, tt.want)
			}
		})
	}
	t.Run("limits within the maxima pass", func(t *testing.T) {
		if report, ok := LintReport([]byte(minimal+"limits: {timeout: 2h, memory: 8GiB, cpus: 8}\n"), "x.yaml", DefaultMaxima); !ok {
			t.Fatalf("report:\n%s", report)
		}
	})
}
