package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
)

// TestARecipeIsTriedOnThisMachineBeforeItIsSubmitted has a maintainer try
// a recipe with `afterlife recipe try`: a real build in the bubblewrap
// sandbox with the busybox toolchain, its public escrow input fetched from
// a real server's released deposit and its build-only input given as a
// local copy; the outputs' digests and the next command are printed. A
// recipe without escrow inputs needs no server; a failing one shows the
// end of its log.
func TestARecipeIsTriedOnThisMachineBeforeItIsSubmitted(t *testing.T) {
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--local-builders", "0"}})
	vendorToken := newVendor(t, srv, "acme")
	vendor := []string{"--server", srv.URL, "--token", vendorToken}
	afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:acme:cam"}, vendor...)...)
	dir := t.TempDir()
	greeting, driver := "hello from acme\n", "a driver only builds may use\n"
	writeFile(t, filepath.Join(dir, "sunset", "docs", "greeting.txt"), []byte(greeting))
	writeFile(t, filepath.Join(dir, "sunset", "drivers", "drv.bin"), []byte(driver))
	afterlife(t, true, append([]string{"vendor", "deposit", "--yes", "--product", "acme-cam", "--policy", "immediate",
		"--rights", "**=public", "--rights", "drivers/**=build-only",
		"--state", filepath.Join(dir, "state"), "--receipt", filepath.Join(dir, "receipt.json"), filepath.Join(dir, "sunset") + "/"}, vendor...)...)
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	repo := func(t *testing.T, recipe string) string {
		t.Helper()
		r := filepath.Join(t.TempDir(), "recipe.git")
		if _, err := recipes.CommitTree(context.Background(), r, fstest.MapFS{"afterlife.yaml": {Data: []byte(recipe)}}, "recipe", time.Unix(1_700_000_000, 0)); err != nil {
			t.Fatal(err)
		}
		return r
	}
	const head = "name: try-demo\nversion: 0.1.0\nproducts: [acme-cam]\nlicense: CC0-1.0\ntoolchain: {name: busybox}\n" +
		"install: \"Do not install: a test.\"\nrisk_notes: \"None.\"\nlimits: {timeout: 1m, memory: 256MiB}\n"
	withInputs := repo(t, head+
		"inputs:\n  escrow:\n    - {digest: sha256:"+sum(greeting)+", as: greeting.txt}\n    - {digest: sha256:"+sum(driver)+", as: drv.bin, rights: build-only}\n"+
		"steps:\n  - cat /inputs/escrow/greeting.txt > /out/hello.txt\n  - wc -c < /inputs/escrow/drv.bin > /out/size.txt\n"+
		"outputs:\n  - {path: hello.txt, kind: other}\n  - {path: size.txt, kind: other}\n")
	localDriver := filepath.Join(dir, "drv.bin")
	writeFile(t, localDriver, []byte(driver))

	t.Run("a build-only input is not fetched from the registry: the try asks for a local copy", func(t *testing.T) {
		_, stderr := afterlife(t, false, "recipe", "try", "--repo", withInputs, "--out", t.TempDir(), "--server", srv.URL)
		if !strings.Contains(stderr, "build-only") || !strings.Contains(stderr, "--input AS=PATH") {
			t.Fatalf("the refusal does not say how to give the file:\n%s", stderr)
		}
	})
	t.Run("a local copy with another digest is named with its digest", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "drv.bin")
		writeFile(t, wrong, []byte("another driver\n"))
		_, stderr := afterlife(t, false, "recipe", "try", "--repo", withInputs, "--out", t.TempDir(), "--server", srv.URL, "--input", "drv.bin="+wrong)
		if !strings.Contains(stderr, "drv.bin=sha256:"+sum("another driver\n")) {
			t.Fatalf("the refusal does not name the local copy's digest:\n%s", stderr)
		}
	})
	t.Run("the build runs in the sandbox and prints its outputs' digests and how to submit", func(t *testing.T) {
		out := t.TempDir()
		stdout, stderr := afterlife(t, true, "recipe", "try", "--repo", withInputs, "--out", out, "--server", srv.URL, "--input", "drv.bin="+localDriver)
		t.Logf("afterlife recipe try printed:\n%s", stdout)
		size := "29\n"
		for _, want := range []string{
			"hello.txt  sha256:" + sum(greeting), "size.txt  sha256:" + sum(size),
			"One build, no quorum", "afterlife recipe submit --repo URL --ref ",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("the output lacks %q:\n%s\n%s", want, stdout, stderr)
			}
		}
		if b, err := os.ReadFile(filepath.Join(out, "hello.txt")); err != nil || string(b) != greeting {
			t.Errorf("hello.txt = %q, %v", b, err)
		}
		if b, err := os.ReadFile(filepath.Join(out, "build.log")); err != nil || !strings.Contains(string(b), "input escrow/greeting.txt verified") {
			t.Errorf("build.log = %q, %v", b, err)
		}
	})
	t.Run("a recipe without escrow inputs needs no server, and a failure shows the end of its log", func(t *testing.T) {
		failing := repo(t, head+"steps:\n  - echo the-step-before-the-failure\n  - exit 3\noutputs:\n  - {path: x.txt, kind: other}\n")
		stdout, _ := afterlife(t, false, "recipe", "try", "--repo", failing, "--out", t.TempDir(), "--server", "http://127.0.0.1:1")
		if !strings.Contains(stdout, "the build failed") || !strings.Contains(stdout, "the-step-before-the-failure") {
			t.Fatalf("the failure does not show the log's end:\n%s", stdout)
		}
	})
}
