package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/recipes/examples"
)

// buildCortexM3 runs the Cortex-M3 example's build.sh in bubblewrap with
// vendor as /inputs/escrow/vendor, the way a builder mounts a deposit, and
// returns the output directory.
func buildCortexM3(t *testing.T, ex, vendor string) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
		"--symlink", "usr/lib64", "/lib64", "--ro-bind", "/etc/alternatives", "/etc/alternatives", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
		"--ro-bind", vendor, "/inputs/escrow/vendor", "--bind", out, "/out", "--ro-bind", filepath.Join(ex, "recipe"), "/build",
		"--chdir", "/build", "--clearenv", "--setenv", "PATH", "/usr/bin", "--setenv", "SOURCE_DATE_EPOCH", "1700000000", "--setenv", "TZ", "UTC",
		"sh", "build.sh")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Cortex-M3 example: %v\n%s", err, b)
	}
	return out
}

func writeTar(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range []string{"firmware.bin", "firmware.elf", "sensor-table.bin"} {
		data, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b.Bytes())
}

// TestTheCompletenessOfTheCortexM3DepositIsMeasured compares the image a
// vendor shipped with a rebuild from the Cortex-M3 example's deposit, with
// `afterlife vendor completeness`: the complete deposit scores 100 %; a
// shipped image with a file the deposit left out scores below and the
// report names the file.
func TestTheCompletenessOfTheCortexM3DepositIsMeasured(t *testing.T) {
	fsys, err := examples.Dir("cortex-m3")
	if err != nil {
		t.Fatal(err)
	}
	ex := t.TempDir()
	if err := os.CopyFS(ex, fsys); err != nil {
		t.Fatal(err)
	}
	vendor := filepath.Join(ex, "vendor-deposit")
	shippedBuild := buildCortexM3(t, ex, vendor) // what the vendor built and shipped
	rebuilt := buildCortexM3(t, ex, vendor)      // the rebuild from the deposit
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(shippedBuild, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dir := t.TempDir()
	type report struct {
		Percent  int    `json:"percent"`
		Sentence string `json:"sentence"`
		Counts   struct{ Identical, Differs, Missing, Extra int }
		Files    []struct{ Path, Class string }
	}
	check := func(t *testing.T, shipped string) report {
		t.Helper()
		out, _ := afterlife(t, true, "vendor", "completeness", "--json", "--shipped", shipped, rebuilt)
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		text, _ := afterlife(t, true, "vendor", "completeness", "--shipped", shipped, rebuilt)
		t.Logf("%s:\n%s", filepath.Base(shipped), text)
		return r
	}
	t.Run("the complete deposit rebuilds the shipped image at 100 %", func(t *testing.T) {
		shipped := filepath.Join(dir, "acme-thermo-2.4.1.tar")
		writeTar(t, shipped, map[string][]byte{"firmware.elf": read("firmware.elf"), "firmware.bin": read("firmware.bin")})
		r := check(t, shipped)
		if r.Percent != 100 || r.Counts.Identical < 3 || r.Counts.Differs+r.Counts.Missing+r.Counts.Extra != 0 {
			t.Fatalf("report %+v", r)
		}
		if r.Sentence != "Deposit completeness: 100 % of the shipped image rebuilt bit-for-bit from the deposit" {
			t.Fatalf("sentence %q", r.Sentence)
		}
	})
	t.Run("a shipped file the deposit left out is named and the score is below 100 %", func(t *testing.T) {
		shipped := filepath.Join(dir, "acme-thermo-2.4.1-full.tar")
		table := bytes.Repeat([]byte("calibration row\n"), 64) // a vendor blob the deposit lacks
		writeTar(t, shipped, map[string][]byte{"firmware.elf": read("firmware.elf"), "firmware.bin": read("firmware.bin"), "sensor-table.bin": table})
		r := check(t, shipped)
		var missing []string
		for _, f := range r.Files {
			if f.Class == "missing" {
				missing = append(missing, f.Path)
			}
		}
		if r.Percent >= 100 || r.Percent <= 0 || strings.Join(missing, ",") != "acme-thermo-2.4.1-full.tar/sensor-table.bin" {
			t.Fatalf("percent %d, missing %v", r.Percent, missing)
		}
	})
}
