package recipes

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes/examples"
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

func TestARecipeDeclaresEachSBOMGeneratorItRunsPinnedToAVersionBuildersProvide(t *testing.T) {
	const base = `name: sbom
version: "1"
products: [demo-cam]
license: MIT
toolchain: {name: gcc-arm-none-eabi, version: "12.2"}
%s
steps:
  - sh build.sh
  - %s
outputs: [{path: fw.bin, kind: firmware}, {path: fw.spdx.json, kind: sbom}]
install: flash it
`
	recipe := func(tools, step string) []byte { return []byte(fmt.Sprintf(base, tools, step)) }
	scripts := fstest.MapFS{
		"build.sh":   {Data: []byte("#!/bin/sh\n# writes the SBOM later with syft\narm-none-eabi-gcc -o /out/fw.bin main.c\n")},
		"sbom.sh":    {Data: []byte("#!/bin/sh\nset -eu\nsyft scan dir:/inputs -o spdx-json=/out/fw.spdx.json\n")},
		"gomod.sh":   {Data: []byte("exec cyclonedx-gomod bin -json /out/fw.bin\n")},
		"notsyft.sh": {Data: []byte("echo syftish > /out/fw.spdx.json\n")},
	}
	for _, c := range []struct {
		name, tools, step string
		field, says       string // empty: lints clean
	}{
		{"a declared, pinned generator lints clean", "tools: [{name: syft, version: v1.57.2}]", "sh sbom.sh", "", ""},
		{"a generator run in a step without being declared is refused", "", "syft scan dir:/inputs -o spdx-json=/out/fw.spdx.json", "steps[1]",
			"runs syft, which the recipe does not declare: add {name: syft, version: v1.57.2} under tools"},
		{"a generator run in a script a step names is refused, naming the script", "", "sh sbom.sh", "steps[1]", "runs syft (in sbom.sh)"},
		{"each undeclared generator is named", "tools: [{name: syft, version: v1.57.2}]", "sh ./gomod.sh", "steps[1]", "runs cyclonedx-gomod (in gomod.sh)"},
		{"a comment naming a generator is no use of it", "", "true", "", ""},
		{"a word that only starts like a generator is no use of it", "", "sh notsyft.sh", "", ""},
		{"an unknown version is refused, naming the versions builders provide", "tools: [{name: syft, version: v1.0.0}]", "sh sbom.sh", "tools[0].version",
			`syft "v1.0.0" is not a version builders provide: pin one of v1.57.2`},
		{"a version range is refused: a generator is pinned", "tools: [{name: cyclonedx-gomod, version: \">=v1.10.0\"}]", "true", "tools[0].version", "pin one of v1.10.0"},
		{"a missing version is refused", "tools: [{name: syft}]", "sh sbom.sh", "tools[0].version", "required: the exact version"},
		{"an unknown generator is refused", "tools: [{name: trivy, version: v0.50.0}]", "true", "tools[0].name", `"trivy" is not one of cyclonedx-gomod, syft`},
		{"a generator declared twice is refused", "tools: [{name: syft, version: v1.57.2}, {name: syft, version: v1.57.2}]", "sh sbom.sh", "tools[1].name", "already declared by tools[0]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := LintFiles(recipe(c.tools, c.step), "afterlife.yaml", DefaultMaxima, scripts)
			if c.says == "" {
				if !l.OK() {
					t.Fatalf("refused:\n%s", l.Report())
				}
				return
			}
			for _, e := range l.Errors {
				if e.Field == c.field && strings.Contains(e.Msg, c.says) {
					return
				}
			}
			t.Fatalf("no error on %s saying %q:\n%s", c.field, c.says, l.Report())
		})
	}
	t.Run("submission refuses an undeclared generator as lint does", func(t *testing.T) {
		r, err := Parse(recipe("", "sh sbom.sh"))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckTools(r, scripts); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "runs syft (in sbom.sh)") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a declared generator is part of the canonical build spec", func(t *testing.T) {
		r, err := Parse(recipe("tools: [{name: syft, version: v1.57.2}]", "sh sbom.sh"))
		if err != nil {
			t.Fatal(err)
		}
		spec, _ := r.Canonical()
		if !strings.Contains(string(spec), `"tools":[{"name":"syft","version":"v1.57.2"}]`) {
			t.Fatalf("spec: %s", spec)
		}
	})
}

func TestTheExampleRecipesDeclareTheSBOMGeneratorsTheirScriptsRun(t *testing.T) {
	for _, dir := range []string{"afterlife-cam", "cortex-m3/recipe", "unreproducible"} {
		t.Run(dir+" lints clean with its scripts", func(t *testing.T) {
			fsys, err := examples.Dir(dir)
			if err != nil {
				t.Fatal(err)
			}
			data, err := fs.ReadFile(fsys, DefaultFile)
			if err != nil {
				t.Fatal(err)
			}
			l := LintFiles(data, dir+"/"+DefaultFile, DefaultMaxima, fsys)
			if !l.OK() {
				t.Fatalf("%s", l.Report())
			}
			if dir != "unreproducible" && (len(l.Recipe.Tools) != 1 || !strings.Contains(l.Report(), "; tool "+l.Recipe.Tools[0].Name+" ")) {
				t.Fatalf("%s declares tools %+v, want its one SBOM generator named in the verdict:\n%s", dir, l.Recipe.Tools, l.Report())
			}
		})
	}
}

// The versions builders provide are written in three places besides
// KnownTools: the scripts that install them on a bare machine and the
// builder image. A new version must reach all of them.
func TestEveryPinnedToolVersionIsWhatTheInstallersInstall(t *testing.T) {
	containerfile, err := os.ReadFile("../deploy/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range KnownTools {
		script, err := os.ReadFile("../scripts/" + tool.Name + ".sh")
		if err != nil {
			t.Fatal(err)
		}
		v := tool.Versions[len(tool.Versions)-1]
		if !strings.Contains(string(script), `version="`+v+`"`) {
			t.Errorf("scripts/%s.sh does not install %s", tool.Name, v)
		}
		if !strings.Contains(string(containerfile), "/"+tool.Name+"@"+v) {
			t.Errorf("deploy/Containerfile does not install %s %s", tool.Name, v)
		}
	}
}
