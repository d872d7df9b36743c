package toolchain_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	t.Run("go carries the SBOM generator the test dependencies install, and only its file", func(t *testing.T) {
		tc, err := toolchain.Find(tcs, toolchain.Go, "")
		if err != nil {
			t.Fatal(err)
		}
		tool := filepath.Join(toolchain.ToolCache(), toolchain.GoSBOMTool)
		if len(tc.Paths) != 2 || tc.Paths[1] != tool || tc.Bin[1] != filepath.Dir(tool) || tc.Env[toolchain.GoSBOMToolVersionEnv] != "v1.10.0" {
			t.Fatalf("go toolchain = %+v, want it to carry %s v1.10.0 (scripts/cyclonedx-gomod.sh installs it)", tc, tool)
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
	f := toolchain.Finder{
		LookPath: func(name string) (string, error) {
			if name == "go" || name == "arm-none-eabi-gcc" {
				return "", exec.ErrNotFound
			}
			return exec.LookPath(name)
		},
		Extra: []string{},
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
