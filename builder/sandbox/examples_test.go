package sandbox_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"gopkg.in/yaml.v3"

	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/registry/sbom"
)

// examples is where the example recipe repositories live.
const examples = "../../recipes/examples"

// recipeFile holds the afterlife.yaml fields these tests need. The recipes
// package owns the full format; the builder does not import it.
type recipeFile struct {
	Name            string   `yaml:"name"`
	Products        []string `yaml:"products"`
	SourceDateEpoch int64    `yaml:"source_date_epoch"`
	Toolchain       struct {
		Name    string `yaml:"name"`
		Version string `yaml:"version"`
	} `yaml:"toolchain"`
	Tools []struct {
		Name    string `yaml:"name"`
		Version string `yaml:"version"`
	} `yaml:"tools"`
	Inputs struct {
		Escrow []struct {
			Digest string `yaml:"digest"`
			As     string `yaml:"as"`
		} `yaml:"escrow"`
	} `yaml:"inputs"`
	Steps   []string `yaml:"steps"`
	Outputs []struct {
		Path string `yaml:"path"`
		Kind string `yaml:"kind"`
	} `yaml:"outputs"`
}

func loadRecipe(t *testing.T, dir string) recipeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "afterlife.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r recipeFile
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s/afterlife.yaml: %v", dir, err)
	}
	if len(r.Steps) == 0 || len(r.Outputs) == 0 || len(r.Products) == 0 {
		t.Fatalf("%s/afterlife.yaml has no steps, outputs or products", dir)
	}
	return r
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// depositByDigest indexes a vendor deposit directory by file digest, the
// way escrow serves it.
func depositByDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		out[sha256File(t, p)] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// goCache is a per-slot Go build cache that survives test runs, so that
// cross-compiling the standard library is paid once per slot.
func goCache(t *testing.T, slot int) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "afterlife", "test-go-cache", fmt.Sprint(slot))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildExample builds a recipe the way a builder does, in host directories
// and with a cache particular to slot, and returns its outputs by path.
func buildExample(t *testing.T, tcs []toolchain.Toolchain, recipeDir, depositDir string, slot int) map[string][]byte {
	t.Helper()
	r := loadRecipe(t, recipeDir)
	tc, err := toolchain.Find(tcs, r.Toolchain.Name, r.Toolchain.Version)
	if err != nil {
		t.Fatalf("%s: %v (run scripts/test-deps.sh)", r.Name, err)
	}
	var pins []toolchain.Pin
	for _, tool := range r.Tools {
		pins = append(pins, toolchain.Pin{Name: tool.Name, Version: tool.Version})
	}
	tools, err := toolchain.FindTools(tcs, pins)
	if err != nil {
		t.Fatalf("%s: %v (run scripts/test-deps.sh)", r.Name, err)
	}
	tc = tc.With(tools...)
	// Distinct host paths per slot: outputs must not depend on them.
	root := filepath.Join(t.TempDir(), fmt.Sprintf("builder-%d-%s", slot, strings.Repeat("x", slot)))
	work, inputs, out := filepath.Join(root, "src", r.Name), filepath.Join(root, "in"), filepath.Join(root, "out")
	for _, d := range []string{work, inputs, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyTree(t, recipeDir, work)
	if len(r.Inputs.Escrow) > 0 {
		deposit := depositByDigest(t, depositDir)
		for _, in := range r.Inputs.Escrow {
			src, ok := deposit[in.Digest]
			if !ok {
				t.Fatalf("%s: escrow input %s (%s) is not in the deposit", r.Name, in.As, in.Digest)
			}
			dst := filepath.Join(inputs, "escrow", filepath.FromSlash(in.As))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o444); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := map[string]string{}
	for k, v := range tc.Env {
		env[k] = v
	}
	spec := sandbox.Spec{
		WorkDir: work, Inputs: inputs, OutDir: out,
		ReadOnly: tc.Paths, Path: tc.Bin, Env: env,
		Steps: r.Steps, SourceDateEpoch: r.SourceDateEpoch,
		Limits: sandbox.Limits{Timeout: 15 * time.Minute, MemoryBytes: 2 << 30},
	}
	if r.Toolchain.Name == toolchain.Go {
		spec.Cache = goCache(t, slot)
		env["GOCACHE"] = sandbox.CacheDir + "/go-build"
	}
	if spec.SourceDateEpoch == 0 {
		spec.SourceDateEpoch = 1700000000 // the commit time, in a real build
	}
	var log bytes.Buffer
	spec.Log = &log
	res, err := sandbox.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("%s: build %d failed: %v (%+v)\nlog:\n%s", r.Name, slot, err, res, log.String())
	}
	t.Logf("%s: build %d took %s", r.Name, slot, res.Duration.Round(time.Millisecond))
	outputs := map[string][]byte{}
	for _, o := range r.Outputs {
		b, err := os.ReadFile(filepath.Join(out, o.Path))
		if err != nil {
			t.Fatalf("%s: declared output %s missing: %v\nlog:\n%s", r.Name, o.Path, err, log.String())
		}
		outputs[o.Path] = b
	}
	return outputs
}

func differing(a, b map[string][]byte) []string {
	var diff []string
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return diff
}

func TestExampleRecipesBuildForRealTwice(t *testing.T) {
	requireTools(t, "bwrap", "arm-none-eabi-gcc", "qemu-system-arm")
	tcs, err := toolchain.Detect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		recipe       string
		deposit      string
		reproducible bool
		check        func(t *testing.T, outputs map[string][]byte, epoch int64)
	}{
		{"the camera daemon image is bit-for-bit reproducible", "afterlife-cam", "", true, checkCamImage},
		{"the Cortex-M3 firmware from escrowed sources is reproducible and boots", "cortex-m3/recipe", "cortex-m3/vendor-deposit", true, checkCortexFirmware},
		{"the clock-stamping recipe is not reproducible", "unreproducible", "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(examples, tt.recipe)
			deposit := ""
			if tt.deposit != "" {
				deposit = filepath.Join(examples, tt.deposit)
			}
			first := buildExample(t, tcs, dir, deposit, 1)
			second := buildExample(t, tcs, dir, deposit, 2)
			diff := differing(first, second)
			if tt.reproducible && len(diff) > 0 {
				t.Fatalf("outputs differ between two builders: %v", diff)
			}
			if !tt.reproducible && len(diff) == 0 {
				t.Fatal("two builds agreed, but this recipe stamps the clock and must not")
			}
			if !tt.reproducible && !slices.Equal(diff, []string{"stamp.txt"}) {
				t.Fatalf("differing files = %v, want only stamp.txt", diff)
			}
			if tt.check != nil {
				tt.check(t, first, loadRecipe(t, dir).SourceDateEpoch)
			}
		})
	}
}

func checkCamImage(t *testing.T, outputs map[string][]byte, epoch int64) {
	img := outputs["afterlife-cam.tar.gz"]
	if len(img) < 10 || img[0] != 0x1f || img[1] != 0x8b {
		t.Fatal("afterlife-cam.tar.gz is not gzip")
	}
	if mtime := img[4:8]; !bytes.Equal(mtime, []byte{0, 0, 0, 0}) {
		t.Fatalf("gzip header carries a timestamp %x; want none (gzip -n)", mtime)
	}
	zr, err := gzip.NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	var daemon []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s is owned by %d:%d (%q:%q), want numeric 0:0", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != epoch {
			t.Errorf("%s has mtime %d, want SOURCE_DATE_EPOCH %d", h.Name, h.ModTime.Unix(), epoch)
		}
		if h.Name == "./usr/sbin/afterlife-camd" {
			if daemon, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries are not sorted: %v", names)
	}
	if daemon == nil {
		t.Fatalf("the image has no ./usr/sbin/afterlife-camd: %v", names)
	}
	f, err := elf.NewFile(bytes.NewReader(daemon))
	if err != nil {
		t.Fatalf("afterlife-camd is not an ELF file: %v", err)
	}
	if f.Machine != elf.EM_ARM || f.Class != elf.ELFCLASS32 || f.Type != elf.ET_EXEC {
		t.Fatalf("afterlife-camd is %v %v %v, want a 32-bit ARM executable", f.Class, f.Machine, f.Type)
	}
	// The SBOM is CycloneDX 1.6 written by cyclonedx-gomod: it describes
	// the daemon, lists the Go standard library it links, and names the
	// daemon's digest.
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(outputs["afterlife-cam.sbom.json"]), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("the SBOM is not CycloneDX JSON: %v", err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Metadata == nil || bom.Metadata.Component == nil || bom.Metadata.Component.Name != "afterlife.example/cam" ||
		bom.Metadata.Tools == nil || bom.Components == nil || (*bom.Components)[0].Name != "std" {
		t.Fatalf("the SBOM is not cyclonedx-gomod's CycloneDX 1.6 of the daemon:\n%s", outputs["afterlife-cam.sbom.json"])
	}
	sum := sha256.Sum256(daemon)
	named := false
	for _, p := range *bom.Metadata.Properties {
		named = named || (p.Name == "cdx:gomod:binary:hash:SHA-256" && p.Value == hex.EncodeToString(sum[:]))
	}
	if !named {
		t.Fatalf("the SBOM does not name the daemon's digest:\n%s", outputs["afterlife-cam.sbom.json"])
	}
}

func checkCortexFirmware(t *testing.T, outputs map[string][]byte, _ int64) {
	fw := filepath.Join(t.TempDir(), "firmware.elf")
	if err := os.WriteFile(fw, outputs["firmware.elf"], 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(fw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_ARM || f.Entry == 0 {
		t.Fatalf("firmware.elf is machine %v entry %#x, want ARM", f.Machine, f.Entry)
	}
	if len(outputs["firmware.bin"]) == 0 {
		t.Fatal("firmware.bin is empty")
	}
	checkCortexSBOM(t, outputs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-arm", "-M", "lm3s6965evb", "-nographic",
		"-semihosting", "-monitor", "none", "-serial", "none", "-kernel", fw)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the firmware did not exit within 30s; it printed %q", out)
	}
	if err != nil {
		t.Fatalf("qemu: %v; output %q", err, out)
	}
	if !strings.Contains(string(out), "afterlife cortex-m3 demo: ok\n") {
		t.Fatalf("the firmware printed %q, want %q", out, "afterlife cortex-m3 demo: ok")
	}
}

func TestCortexM3RecipePinsEveryDepositedFileByItsDigest(t *testing.T) {
	dir := filepath.Join(examples, "cortex-m3")
	r := loadRecipe(t, filepath.Join(dir, "recipe"))
	deposit := depositByDigest(t, filepath.Join(dir, "vendor-deposit"))
	pinned := map[string]bool{}
	for _, in := range r.Inputs.Escrow {
		src, ok := deposit[in.Digest]
		if !ok {
			t.Errorf("input %s has digest %s, which matches no deposited file", in.As, in.Digest)
			continue
		}
		if filepath.Base(src) != filepath.Base(in.As) {
			t.Errorf("input %s has the digest of %s", in.As, filepath.Base(src))
		}
		pinned[src] = true
	}
	for digest, src := range deposit {
		if !pinned[src] {
			t.Errorf("deposited file %s (%s) is not an input of the recipe", filepath.Base(src), digest)
		}
	}
}

// checkCortexSBOM reads the Cortex-M3 example's SBOM with the registry's
// reader (SPDX 2.3 through tools-golang) and checks that syft described
// what the firmware is made of: every deposited source by its digest, the
// images, and the Debian packages of the toolchain.
func checkCortexSBOM(t *testing.T, outputs map[string][]byte) {
	doc := outputs["firmware.spdx.json"]
	s, err := sbom.Parse(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("the SBOM is not SPDX 2.3 the registry accepts: %v\n%s", err, doc)
	}
	if s.Format != "SPDX 2.3" || s.Subject.Name != "acme-thermo-firmware" || s.Subject.Version != "2.4.1" {
		t.Fatalf("the SBOM describes %+v in %s", s.Subject, s.Format)
	}
	if !bytes.Contains(doc, []byte(`"creators":["Organization: Anchore, Inc","Tool: syft-1.57.2"],"created":"2023-11-14T22:13:20Z"`)) {
		t.Errorf("the SBOM does not name syft 1.57.2 and SOURCE_DATE_EPOCH as its creation:\n%s", doc)
	}
	has := map[string]bool{}
	for _, c := range s.Components {
		has[c.Name+" "+c.Digest] = true
		has[c.Name] = true
	}
	for _, pkg := range []string{"gcc-arm-none-eabi", "binutils-arm-none-eabi", "libnewlib-arm-none-eabi"} {
		if !has[pkg] {
			t.Errorf("the SBOM does not name the toolchain's package %s: %+v", pkg, s.Components)
		}
	}
	for digest, src := range depositByDigest(t, filepath.Join(examples, "cortex-m3", "vendor-deposit")) {
		if name := "src/" + filepath.Base(src); !has[name+" "+digest] {
			t.Errorf("the SBOM does not name the deposited %s by its digest %s", name, digest)
		}
	}
	for _, fw := range []string{"firmware.elf", "firmware.bin"} {
		sum := sha256.Sum256(outputs[fw])
		if !has["firmware/"+fw+" sha256:"+hex.EncodeToString(sum[:])] {
			t.Errorf("the SBOM does not name %s by its digest", fw)
		}
	}
}
