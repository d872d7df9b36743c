package bench

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/recipes/examples"
)

// exampleRecipe is the part of afterlife.yaml this benchmark runs.
type exampleRecipe struct {
	SourceDateEpoch int64 `yaml:"source_date_epoch"`
	Toolchain       struct {
		Name    string `yaml:"name"`
		Version string `yaml:"version"`
	} `yaml:"toolchain"`
	Steps   []string `yaml:"steps"`
	Outputs []struct {
		Path string `yaml:"path"`
	} `yaml:"outputs"`
}

// benchGoCache is a Go build cache of the benchmark's own that survives
// runs, one per way of building, so both are measured warm.
func benchGoCache(b *testing.B, name string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(base, "afterlife", "bench-go-cache", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// exampleCheckout copies the example recipe into a fresh directory.
func exampleCheckout(b *testing.B, name string) (string, exampleRecipe) {
	src, err := examples.Dir(name)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), name)
	if err := os.CopyFS(dir, src); err != nil {
		b.Fatal(err)
	}
	raw, err := fs.ReadFile(src, "afterlife.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var r exampleRecipe
	if err := yaml.Unmarshal(raw, &r); err != nil {
		b.Fatal(err)
	}
	return dir, r
}

// buildSandboxed runs the example's steps in bubblewrap, as a builder does.
func buildSandboxed(b *testing.B, tc toolchain.Toolchain, cache string) (time.Duration, []byte) {
	work, r := exampleCheckout(b, "afterlife-cam")
	out := b.TempDir()
	env := map[string]string{"GOCACHE": sandbox.CacheDir + "/go-build"}
	for k, v := range tc.Env {
		env[k] = v
	}
	var log bytes.Buffer
	start := time.Now()
	res, err := sandbox.Run(context.Background(), sandbox.Spec{
		WorkDir: work, OutDir: out, Cache: cache, ReadOnly: tc.Paths, Path: tc.Bin, Env: env,
		Steps: r.Steps, SourceDateEpoch: r.SourceDateEpoch, Log: &log,
		Limits: sandbox.Limits{Timeout: 15 * time.Minute, MemoryBytes: 2 << 30},
	})
	took := time.Since(start)
	if err != nil || res.Failure != sandbox.FailNone {
		b.Fatalf("sandboxed build: %v %+v\n%s", err, res, log.String())
	}
	img, err := os.ReadFile(filepath.Join(out, r.Outputs[0].Path))
	if err != nil {
		b.Fatal(err)
	}
	return took, img
}

// buildDirect runs the same steps with sh on the host, no bwrap: the
// fixed sandbox paths the scripts use (/out, /tmp/…, /cache) are rewritten
// to host directories.
func buildDirect(b *testing.B, tc toolchain.Toolchain, cache string) (time.Duration, []byte) {
	work, r := exampleCheckout(b, "afterlife-cam")
	out, tmp := b.TempDir(), b.TempDir()
	rw := strings.NewReplacer("/out/", out+"/", "/tmp/", tmp+"/", "/cache", cache)
	scripts, _ := filepath.Glob(filepath.Join(work, "scripts", "*.sh"))
	for _, s := range scripts {
		raw, err := os.ReadFile(s)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(s, []byte(rw.Replace(string(raw))), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	env := []string{
		"PATH=" + strings.Join(append(append([]string{}, tc.Bin...), "/usr/local/bin", "/usr/bin", "/bin"), ":"),
		"HOME=" + work, "TZ=UTC", "LC_ALL=C.UTF-8", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", r.SourceDateEpoch),
	}
	for k, v := range tc.Env {
		env = append(env, k+"="+v)
	}
	start := time.Now()
	for _, step := range r.Steps {
		cmd := exec.Command("sh", "-c", step)
		cmd.Dir, cmd.Env = work, env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("direct step %q: %v\n%s", step, err, out)
		}
	}
	took := time.Since(start)
	img, err := os.ReadFile(filepath.Join(out, r.Outputs[0].Path))
	if err != nil {
		b.Fatal(err)
	}
	return took, img
}

// BenchmarkExampleBuild builds example (a), recipes/examples/afterlife-cam
// (a Go daemon cross-compiled for linux/arm and packed reproducibly),
// through the sandbox and with the same steps run directly. Each way has
// a warm Go build cache of its own: one build warms it, the next is timed.
// The cold witness's build, from an empty cache, is timed beside them.
func BenchmarkExampleBuild(b *testing.B) {
	need(b, "bwrap")
	tcs, err := toolchain.Detect(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	tc, err := toolchain.Find(tcs, toolchain.Go, "1.26")
	if err != nil {
		b.Fatalf("%v: run scripts/test-deps.sh", err)
	}
	// The recipe declares its SBOM generator; a builder binds it beside Go.
	gomod, err := toolchain.FindTools(tcs, []toolchain.Pin{{Name: toolchain.CycloneDXGomod, Version: "v1.10.0"}})
	if err != nil {
		b.Fatalf("%v: run scripts/test-deps.sh", err)
	}
	tc = tc.With(gomod...)
	sbCache, directCache := benchGoCache(b, "sandbox"), benchGoCache(b, "direct")
	buildSandboxed(b, tc, sbCache)
	buildDirect(b, tc, directCache)
	for b.Loop() {
		sb, sbImg := buildSandboxed(b, tc, sbCache)
		dr, drImg := buildDirect(b, tc, directCache)
		// The cold witness: the same build from an empty /cache, as the
		// job of every build that must agree runs it.
		cold, coldImg := buildSandboxed(b, tc, b.TempDir())
		same, coldSame := 0.0, 0.0
		if bytes.Equal(sbImg, drImg) {
			same = 1
		}
		if bytes.Equal(sbImg, coldImg) {
			coldSame = 1
		}
		b.ReportMetric(sb.Seconds(), "sandbox-s")
		b.ReportMetric(dr.Seconds(), "direct-s")
		b.ReportMetric(cold.Seconds(), "cold-s")
		b.ReportMetric(same, "same-image")
		b.ReportMetric(coldSame, "cold-same-image")
		figure("afterlife-cam build, warm Go cache each: bwrap %.2f s | direct %.2f s | overhead %.2f s | identical image %v",
			sb.Seconds(), dr.Seconds(), (sb - dr).Seconds(), same == 1)
		figure("afterlife-cam build, cold witness (empty /cache) in bwrap: %.2f s, %.1f× the warm build | identical image %v",
			cold.Seconds(), cold.Seconds()/sb.Seconds(), coldSame == 1)
	}
}
