package recipes

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const minimal = `name: mini
version: "2"
products: [demo-cam]
license: MIT
toolchain: {name: busybox}
steps: [echo hi > /out/fw.bin]
outputs: [{path: fw.bin, kind: firmware}]
`

func TestParseReadsEveryFieldOfTheFullExample(t *testing.T) {
	r, err := Parse(readTestdata(t, "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	epoch := int64(1700000000)
	want := &Recipe{
		Name: "afterlife-cam", Version: "1.0.0", Products: []string{"demo-cam", "demo-cam-pro"},
		License: "GPL-2.0-or-later", SourceDateEpoch: &epoch,
		Toolchain: Toolchain{Name: "go", Version: "1.26"}, Arch: "amd64",
		Inputs: Inputs{
			Escrow: []EscrowInput{
				{Digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", As: "firmware-src/main.c"},
				{Digest: "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", As: "spec/board.pdf"},
			},
			Git: []GitInput{{Name: "libfoo", URL: "https://example.org/libfoo.git", Commit: "0123456789abcdef0123456789abcdef01234567"}},
		},
		Steps: []string{
			"go build -trimpath -o /out/cam ./cmd/cam",
			"tar --sort=name --mtime=@$SOURCE_DATE_EPOCH -C /out -czf /out/afterlife-cam.tar.gz cam",
		},
		Outputs:   []Output{{Path: "afterlife-cam.tar.gz", Kind: "firmware"}, {Path: "build.log", Kind: "log"}},
		Install:   "Copy the file to the SD card and hold RESET.\n",
		RiskNotes: "Community firmware; the camera's cloud features stop working.\n",
		Limits:    Limits{Timeout: Duration(20 * time.Minute), Memory: 2 << 30, CPUs: DefaultCPUs},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
}

func TestParseFillsDefaultLimits(t *testing.T) {
	r, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{Timeout: DefaultTimeout, Memory: DefaultMemory, CPUs: DefaultCPUs}
	if r.Limits != want {
		t.Errorf("limits = %+v, want %+v", r.Limits, want)
	}
	if got := r.Epoch(time.Unix(1600000000, 0)); got != 1600000000 {
		t.Errorf("epoch without source_date_epoch = %d, want the commit time", got)
	}
}

// replace swaps one line of the full example for another text.
func replace(t *testing.T, old, new string) string {
	t.Helper()
	s := string(readTestdata(t, "full.yaml"))
	if !strings.Contains(s, old) {
		t.Fatalf("full.yaml has no %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestParseNamesLineAndFieldOfEachProblem(t *testing.T) {
	zeros := strings.Repeat("0", 40)
	tests := []struct {
		name      string
		yaml      string
		line      int
		field     string
		msgSubstr string
	}{
		{"an unknown output kind is refused", replace(t, "kind: log", "kind: binary"), 27, "outputs[1].kind", `"binary" is not one of firmware, sbom, log, other`},
		{"an unknown field is refused with a suggestion", replace(t, "arch: amd64", "archh: amd64"), 9, "", `unknown field "archh" (did you mean "arch"?)`},
		{"an unknown nested field is refused", replace(t, "  memory: 2GiB", "  memory: 2GiB\n  disk: 1GiB"), 35, "limits", `unknown field "disk"`},
		{"a field set twice is refused", replace(t, "arch: amd64", "arch: amd64\narch: arm64"), 10, "arch", "set twice (first at line 9)"},
		{"a bad recipe name is refused", replace(t, "name: afterlife-cam", "name: Afterlife Cam"), 1, "name", "is not valid"},
		{"a bad version is refused", replace(t, "version: 1.0.0", "version: v1"), 2, "version", "is not valid"},
		{"a bad product id is refused", replace(t, "demo-cam-pro]", "Demo_Cam]"), 3, "products[1]", "product id"},
		{"a repeated product is refused", replace(t, "demo-cam-pro]", "demo-cam]"), 3, "products[1]", "listed twice"},
		{"a broken license expression is refused", replace(t, "GPL-2.0-or-later", "GPL-2.0 AND"), 4, "license", "not an SPDX license expression"},
		{"a negative epoch is refused", replace(t, "1700000000", "-1"), 5, "source_date_epoch", "out of range"},
		{"a text epoch is refused", replace(t, "1700000000", "yesterday"), 5, "source_date_epoch", "want a whole number"},
		{"an unknown toolchain is refused", replace(t, "name: go", "name: rust"), 7, "toolchain.name", `"rust" is not one of go, gcc-arm-none-eabi, busybox`},
		{"a bad toolchain constraint is refused", replace(t, `"1.26"`, `"~>1.26"`), 8, "toolchain.version", "not a version constraint"},
		{"an unknown arch is refused", replace(t, "arch: amd64", "arch: x86_64"), 9, "arch", "is not one of"},
		{"a short digest is refused", replace(t, "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", "sha256:abc"), 14, "inputs.escrow[1].digest", "is not a digest"},
		{"an escaping escrow path is refused", replace(t, "as: spec/board.pdf", "as: ../etc/passwd"), 15, "inputs.escrow[1].as", "leaves its directory"},
		{"an absolute escrow path is refused", replace(t, "as: spec/board.pdf", "as: /etc/passwd"), 15, "inputs.escrow[1].as", "is absolute"},
		{"an unclean escrow path is refused", replace(t, "as: spec/board.pdf", "as: spec//board.pdf"), 15, "inputs.escrow[1].as", `write "spec/board.pdf"`},
		{"a repeated escrow path is refused", replace(t, "as: spec/board.pdf", "as: firmware-src/main.c"), 15, "inputs.escrow[1].as", "used twice"},
		{"an escrow file inside another is refused", replace(t, "as: spec/board.pdf", "as: firmware-src/main.c/x"), 15, "inputs.escrow[1].as", "which is a file"},
		{"a short commit is refused", replace(t, "commit: 0123456789abcdef0123456789abcdef01234567", "commit: 0123456"), 19, "inputs.git[0].commit", "not a full commit id"},
		{"a git url with credentials is refused", replace(t, "https://example.org", "https://me:pw@example.org"), 18, "inputs.git[0].url", "credentials"},
		{"an ssh git url is refused", replace(t, "https://example.org/libfoo.git", "ssh://example.org/libfoo.git"), 18, "inputs.git[0].url", "scheme"},
		{"a bad git input name is refused", replace(t, "name: libfoo", "name: ../x"), 17, "inputs.git[0].name", "is not valid"},
		{"a repeated git input name is refused", replace(t, "      commit: 0123456789abcdef0123456789abcdef01234567", "      commit: 0123456789abcdef0123456789abcdef01234567\n    - {name: libfoo, url: https://e.org/x, commit: "+zeros+"}"), 20, "inputs.git[1].name", "already the name"},
		{"an empty step is refused", replace(t, "  - go build", "  - \"  \"\n  - go build"), 21, "steps[0]", "empty step"},
		{"a null step is refused", replace(t, "  - go build", "  -\n  - go build"), 21, "steps[0]", "empty list item"},
		{"steps as a mapping are refused", replace(t, "  - go build -trimpath -o /out/cam ./cmd/cam\n  - tar", "  a: go build\n  b: tar"), 21, "steps", "want a list"},
		{"a repeated output path is refused", replace(t, "path: build.log", "path: afterlife-cam.tar.gz"), 26, "outputs[1].path", "used twice"},
		{"an escaping output path is refused", replace(t, "path: build.log", "path: a/../../x"), 26, "outputs[1].path", "leaves its directory"},
		{"a bad timeout is refused", replace(t, "timeout: 20m", "timeout: soon"), 33, "limits.timeout", "not a duration"},
		{"a too long timeout is refused", replace(t, "timeout: 20m", "timeout: 48h"), 33, "limits.timeout", "out of range 1m..12h"},
		{"a bad memory size is refused", replace(t, "memory: 2GiB", "memory: lots"), 34, "limits.memory", "not a size"},
		{"a tiny memory size is refused", replace(t, "memory: 2GiB", "memory: 1MiB"), 34, "limits.memory", "out of range"},
		{"zero cpus are refused", replace(t, "memory: 2GiB", "memory: 2GiB\n  cpus: 0"), 35, "limits.cpus", "out of range 1..64"},
		{"an alias is refused", replace(t, "products: [demo-cam, demo-cam-pro]", "products: &p [demo-cam]"), 3, "products", "anchors and aliases"},
		{"a custom tag is refused", replace(t, "license: GPL-2.0-or-later", "license: !secret GPL"), 4, "license", "custom YAML tag"},
		{"a binary scalar is refused", replace(t, "license: GPL-2.0-or-later", "license: !!binary R1BM"), 4, "license", "want a string"},
		{"a mapping where a string belongs is refused", replace(t, "version: 1.0.0", "version: {major: 1}"), 2, "version", "want a string, got a mapping"},
		{"a missing toolchain is reported at the top", strings.Replace(minimal, "toolchain: {name: busybox}\n", "", 1), 1, "toolchain.name", "required"},
		{"missing steps are reported", strings.Replace(minimal, "steps: [echo hi > /out/fw.bin]\n", "", 1), 1, "steps", "required"},
		{"an empty outputs list is reported", strings.Replace(minimal, "outputs: [{path: fw.bin, kind: firmware}]", "outputs: []", 1), 7, "outputs", "required"},
		{"a YAML syntax error is reported with its line", "name: x\nversion:\n\t- 1\n", 3, "", "cannot start any token"},
		{"two documents are refused", minimal + "---\nname: y\n", 8, "", "one YAML document"},
		{"an empty file is refused", "", 0, "", "file is empty"},
		{"a list at the top is refused", "- a\n- b\n", 1, "", "want a mapping"},
		{"invalid UTF-8 is refused", "name: \xff\n", 0, "", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse accepted the recipe")
			}
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("error kind = %v, want invalid", errs.KindOf(err))
			}
			var list Errors
			if !errors.As(err, &list) {
				t.Fatalf("error %v does not carry Errors", err)
			}
			for _, e := range list {
				if e.Line == tt.line && e.Field == tt.field && strings.Contains(e.Msg, tt.msgSubstr) {
					if e.File != DefaultFile {
						t.Errorf("file = %q", e.File)
					}
					return
				}
			}
			t.Errorf("no error at line %d field %q containing %q; got:\n%v", tt.line, tt.field, tt.msgSubstr, err)
		})
	}
}

func TestParseReportsEveryProblemNotOnlyTheFirst(t *testing.T) {
	s := replace(t, "kind: log", "kind: binary")
	s = strings.Replace(s, "arch: amd64", "arch: sparc", 1)
	s = strings.Replace(s, "timeout: 20m", "timeout: never", 1)
	_, err := Parse([]byte(s))
	var list Errors
	if !errors.As(err, &list) || len(list) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	want := "afterlife.yaml:9: arch: \"sparc\" is not one of"
	if !strings.HasPrefix(list[0].Error(), want) {
		t.Errorf("first error %q, want prefix %q (sorted by line)", list[0].Error(), want)
	}
	if list[1].Line != 27 || list[2].Line != 33 {
		t.Errorf("errors not in line order: %v", list)
	}
}

func TestParseRefusesAnOversizedFile(t *testing.T) {
	big := minimal + "install: |\n" + strings.Repeat("  "+strings.Repeat("x", 1000)+"\n", 300)
	_, err := Parse([]byte(big))
	if err == nil || !strings.Contains(err.Error(), "the limit is") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseRefusesTooManySteps(t *testing.T) {
	s := strings.Replace(minimal, "steps: [echo hi > /out/fw.bin]", "steps: ["+strings.Repeat("true, ", MaxSteps)+"true]", 1)
	_, err := Parse([]byte(s))
	if err == nil || !strings.Contains(err.Error(), "steps: 201 steps; the limit is 200") {
		t.Fatalf("err = %v", err)
	}
}

func TestCanonicalIsStableAndRoundTrips(t *testing.T) {
	for _, name := range []string{"full", "minimal"} {
		t.Run("the "+name+" recipe survives canonical JSON", func(t *testing.T) {
			data := []byte(minimal)
			if name == "full" {
				data = readTestdata(t, "full.yaml")
			}
			r, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			c1, err := r.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseJSON(c1)
			if err != nil {
				t.Fatalf("ParseJSON(%s): %v", c1, err)
			}
			if !reflect.DeepEqual(back, r) {
				t.Errorf("round trip changed the recipe:\n%+v\n%+v", r, back)
			}
			c2, _ := back.Canonical()
			if string(c1) != string(c2) {
				t.Errorf("canonical JSON not stable:\n%s\n%s", c1, c2)
			}
		})
	}
	r, _ := Parse([]byte(minimal))
	c, _ := r.Canonical()
	want := `{"name":"mini","version":"2","products":["demo-cam"],"license":"MIT","toolchain":{"name":"busybox"},"steps":["echo hi > /out/fw.bin"],"outputs":[{"path":"fw.bin","kind":"firmware"}],"limits":{"timeout":"30m","memory":"4GiB","cpus":2}}`
	if string(c) != want {
		t.Errorf("canonical =\n%s\nwant\n%s", c, want)
	}
}

func TestParseJSONRefusesUnknownFieldsAndBadValues(t *testing.T) {
	tests := map[string]string{
		"an unknown field is refused":  `{"name":"x","bogus":1}`,
		"trailing data is refused":     `{"name":"mini","version":"2","products":["p"],"license":"MIT","toolchain":{"name":"busybox"},"steps":["true"],"outputs":[{"path":"f","kind":"firmware"}]} {}`,
		"an invalid recipe is refused": `{"name":"mini","version":"2","products":["p"],"license":"MIT","toolchain":{"name":"busybox"},"steps":["true"],"outputs":[{"path":"../f","kind":"firmware"}]}`,
		"a bad duration is refused":    `{"limits":{"timeout":5}}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseJSON([]byte(in)); !errs.Is(err, errs.Invalid) {
				t.Errorf("err = %v, want an invalid error", err)
			}
		})
	}
}

// The constraint grammar itself is tested in recipes/constraint; a recipe
// reads its toolchain and arch through it.
func TestARecipeMatchesToolchainsAndArchitectures(t *testing.T) {
	r, _ := Parse(readTestdata(t, "full.yaml"))
	if !r.ToolchainMatches("go", "1.26.8") || r.ToolchainMatches("busybox", "1.26.8") || r.ToolchainMatches("go", "1.25.0") {
		t.Error("Recipe.ToolchainMatches disagrees with the constraint")
	}
	if !r.ArchMatches("amd64") || r.ArchMatches("arm64") {
		t.Error("ArchMatches ignores arch")
	}
}

func TestSizesAndDurationsHaveOneCanonicalForm(t *testing.T) {
	sizes := map[string]string{"2GiB": "2GiB", "2048MiB": "2GiB", "1536M": "1536MiB", "1GB": "1000000000B", "4096": "4KiB", "100B": "100B"}
	for in, want := range sizes {
		b, err := ParseByteSize(in)
		if err != nil || b.String() != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %s", in, b, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "1.5GiB", "+3", "99999999999999TiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
	durs := map[string]string{"20m": "20m", "90m": "1h30m", "3600s": "1h", "1h0m5s": "1h5s"}
	for in, want := range durs {
		d, err := ParseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
}

func TestLicenseExpressions(t *testing.T) {
	good := []string{"MIT", "GPL-2.0-or-later", "MIT OR Apache-2.0", "GPL-2.0-only WITH Linux-syscall-note", "(MIT AND BSD-3-Clause) OR LicenseRef-vendor", "GPL-2.0+", "((MIT))"}
	bad := []string{"", "MIT OR", "AND MIT", "(MIT", "MIT)", "MIT WITH", "my license", "MIT/X11", "Not-A-Licence-1.0", "MIT OR GPL-9.0-only"}
	for _, s := range good {
		if err := CheckLicense(s); err != nil {
			t.Errorf("CheckLicense(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := CheckLicense(s); err == nil {
			t.Errorf("CheckLicense(%q) accepted", s)
		}
	}
}
