package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A project that asks builders for reproducible firmware ships reproducibly
// itself: `make dist` run on two copies of the source in different
// directories gives the same bytes, SBOM included.
func TestDistBuildsTheSameBytesInAnyDirectory(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files := sourceFiles(t, root)
	sums := make([][]byte, 2)
	for i, dir := range []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "second", "copy")} {
		copyFiles(t, root, dir, files)
		cmd := exec.Command("scripts/dist.sh")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "VERSION=v0.0.0-test", "TARGETS=linux/arm64", "DIST="+filepath.Join(dir, "dist"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dist in %s: %v\n%s", dir, err, out)
		}
		sums[i], err = os.ReadFile(filepath.Join(dir, "dist", "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(sums[i], []byte("afterlife-v0.0.0-test-linux-arm64.cdx.json")) {
			t.Fatalf("SHA256SUMS lists no SBOM:\n%s", sums[i])
		}
		if !bytes.Contains(sums[i], []byte("afterlife-device-v0.0.0-test-linux-arm64\n")) {
			t.Fatalf("SHA256SUMS lists no device client:\n%s", sums[i])
		}
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Fatalf("two builds of one source differ:\n%s\n%s", sums[0], sums[1])
	}
}

func copyFiles(t *testing.T, from, to string, files []string) {
	t.Helper()
	for _, f := range files {
		src := filepath.Join(from, f)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or not a plain file
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(to, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// sourceFiles lists the source tree: what git tracks (and would track), or,
// in a copy without .git, every file outside the build outputs and data.
func sourceFiles(t *testing.T, root string) []string {
	t.Helper()
	if out, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard").Output(); err == nil {
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	skip := map[string]bool{".git": true, "bin": true, "data": true, "dist": true, "test-artifacts": true, "device": true}
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && skip[rel] {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && !strings.HasSuffix(rel, ".test") {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list the source tree: %v", err)
	}
	return files
}
