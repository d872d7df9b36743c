package toolchain_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestDetectReportsWhatIsReallyInstalled(t *testing.T) {
	for _, tool := range []string{"go", "arm-none-eabi-gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/local/go/bin/" + tool); err != nil {
				t.Fatalf("%s is not installed: run scripts/test-deps.sh", tool)
			}
		}
	}
	tcs, err := toolchain.Detect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("go reports the version the go command prints", func(t *testing.T) {
		tc, err := toolchain.Find(tcs, toolchain.Go, "")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(tc.Bin[0], "go"), "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "go"+tc.Version+" ") {
			t.Fatalf("go version prints %q, detected %q", out, tc.Version)
		}
		if tc.Env["GOTOOLCHAIN"] != "local" || tc.Paths[0] != filepath.Dir(tc.Bin[0]) {
			t.Fatalf("go toolchain = %+v", tc)
		}
	})
	for _, tool := range []struct{ name, version string }{{toolchain.CycloneDXGomod, "v1.10.0"}, {toolchain.Syft, "v1.57.2"}} {
		t.Run(tool.name+" is found at the version its script pins, and only its file is bound", func(t *testing.T) {
			found, err := toolchain.FindTools(tcs, []toolchain.Pin{{Name: tool.name, Version: tool.version}})
			if err != nil {
				t.Fatalf("%v (scripts/%s.sh installs it)", err, tool.name)
			}
			bin := filepath.Join(toolchain.ToolCache(), tool.name)
			if tc := found[0]; len(tc.Paths) != 1 || tc.Paths[0] != bin || tc.Bin[0] != filepath.Dir(bin) {
				t.Fatalf("%s = %+v, want only %s bound", tool.name, tc, bin)
			}
		})
	}
	t.Run("the Go toolchain no longer carries an SBOM generator of its own", func(t *testing.T) {
		tc, err := toolchain.Find(tcs, toolchain.Go, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(tc.Paths) != 1 {
			t.Fatalf("go binds %v", tc.Paths)
		}
	})
	t.Run("a tool at a version the builder lacks is refused, naming what it has", func(t *testing.T) {
		_, err := toolchain.FindTools(tcs, []toolchain.Pin{{Name: toolchain.Syft, Version: "v0.1.0"}})
		if !errs.Is(err, errs.NotFound) || !strings.Contains(err.Error(), "this builder has v1.57.2") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("the ARM compiler is found with its library dirs", func(t *testing.T) {
		tc, err := toolchain.Find(tcs, toolchain.ArmGCC, ">=12")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("arm-none-eabi-gcc", "-dumpversion").Output()
		if err != nil || strings.TrimSpace(string(out)) != tc.Version {
			t.Fatalf("arm-none-eabi-gcc -dumpversion = %q, %v; detected %q", out, err, tc.Version)
		}
		for _, p := range tc.Paths {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("path %s does not exist: %v", p, err)
			}
		}
	})
	t.Run("the ARM compiler hands over the Debian records of its packages and of no other", func(t *testing.T) {
		tc, err := toolchain.Find(tcs, toolchain.ArmGCC, ">=12")
		if err != nil {
			t.Fatal(err)
		}
		status := tc.Env[toolchain.DpkgStatusEnv]
		for _, pkg := range []string{"gcc-arm-none-eabi", "binutils-arm-none-eabi", "libnewlib-arm-none-eabi"} {
			if !strings.Contains(status, "Package: "+pkg+"\nStatus: install ok installed\n") {
				t.Errorf("no record of %s in %s:\n%s", pkg, toolchain.DpkgStatusEnv, status)
			}
		}
		if n := strings.Count(status, "Package: "); n != 3 {
			t.Errorf("%d records, want the toolchain's 3", n)
		}
	})
	t.Run("the base shell tools are always there", func(t *testing.T) {
		tc, err := toolchain.Find(tcs, toolchain.Busybox, "")
		if err != nil || tc.Version == "" {
			t.Fatalf("busybox = %+v, %v", tc, err)
		}
	})
	t.Run("an unknown toolchain is not found", func(t *testing.T) {
		if _, err := toolchain.Find(tcs, "rustc", ""); !errs.Is(err, errs.NotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a version the builder lacks is named in the error", func(t *testing.T) {
		_, err := toolchain.Find(tcs, toolchain.Go, "1.2")
		if !errs.Is(err, errs.NotFound) || !strings.Contains(err.Error(), "this builder has") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDetectIgnoresToolchainsThatAreAbsent(t *testing.T) {
	// Only the base tools are installed, whatever else this machine's
	// PATH holds (a developer's PATH may hold syft or cyclonedx-gomod).
	base := []string{"sh", "tar", "gzip", "sha256sum", "date", "busybox", "env"}
	f := toolchain.Finder{
		LookPath: func(name string) (string, error) {
			if !slices.Contains(base, name) {
				return "", exec.ErrNotFound
			}
			return exec.LookPath(name)
		},
		Extra:    []string{},
		ToolDirs: []string{},
	}
	tcs, err := f.Detect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(tcs) != 1 || tcs[0].Name != toolchain.Busybox {
		t.Fatalf("detected %+v, want only the base tools", tcs)
	}
	if toolchain.Arch() == "" {
		t.Fatal("Arch is empty")
	}
}

func TestAToolchainWithToolsBindsEachAndSetsTheirVariables(t *testing.T) {
	gcc := toolchain.Toolchain{Name: toolchain.ArmGCC, Version: "12.2.1", Paths: []string{"/usr/bin"}, Bin: []string{"/usr/bin"}, Env: map[string]string{"A": "1"}}
	syft := toolchain.Toolchain{Name: toolchain.Syft, Version: "v1.57.2", Paths: []string{"/cache/bin/syft"}, Bin: []string{"/cache/bin"}, Env: map[string]string{"SYFT_CHECK_FOR_APP_UPDATE": "false"}}
	gomod := toolchain.Toolchain{Name: toolchain.CycloneDXGomod, Version: "v1.10.0", Paths: []string{"/cache/bin/cyclonedx-gomod"}, Bin: []string{"/cache/bin"}}
	box := gcc.With(syft, gomod)
	if box.Name != toolchain.ArmGCC || box.Version != "12.2.1" {
		t.Fatalf("With renamed the toolchain: %+v", box)
	}
	if want := []string{"/usr/bin", "/cache/bin/syft", "/cache/bin/cyclonedx-gomod"}; strings.Join(box.Paths, " ") != strings.Join(want, " ") {
		t.Errorf("paths = %v, want %v", box.Paths, want)
	}
	if want := []string{"/usr/bin", "/cache/bin"}; strings.Join(box.Bin, " ") != strings.Join(want, " ") {
		t.Errorf("bin = %v, want %v (each directory once, the toolchain's first)", box.Bin, want)
	}
	if box.Env["A"] != "1" || box.Env["SYFT_CHECK_FOR_APP_UPDATE"] != "false" {
		t.Errorf("env = %v", box.Env)
	}
	if len(gcc.Paths) != 1 || len(gcc.Env) != 1 {
		t.Errorf("With changed the toolchain it was called on: %+v", gcc)
	}
}
