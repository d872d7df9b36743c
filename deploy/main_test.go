// The tests of this package check the deployment files (compose, Kubernetes,
// systemd) against the binary built from this checkout and against the
// tools that read them. This file builds the binary and holds the helpers
// every check uses.

package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// afterlifeBin and deviceBin are the binaries built from this checkout by
// TestMain.
var afterlifeBin, deviceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "afterlife-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	afterlifeBin, deviceBin = filepath.Join(dir, "afterlife"), filepath.Join(dir, "afterlife-device")
	for bin, pkg := range map[string]string{afterlifeBin: "cmd/afterlife", deviceBin: "cmd/afterlife-device"} {
		build := exec.Command("go", "build", "-o", bin, "github.com/afterlife-oss/afterlife/"+pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "deploy: build", pkg+":", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool fails the test when a tool the checks rely on is missing.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run scripts/test-deps.sh (Debian package %s)", name, debianPackage)
	}
	return p
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func anyMap(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func allFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
