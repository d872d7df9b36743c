package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkDeviceClientSize builds afterlife-device and afterlife for
// linux/arm (GOARM=7) as make device-client and make dist do (-trimpath,
// stripped), reports both sizes, and prints the device binary's code
// bytes by module ("size-by-module MODULE KiB" lines that
// scripts/bench.sh shows). Code (text symbols) is counted because it is
// what symbols can be attributed to without overlap; the function tables
// and read-only data of a binary grow with it.
func BenchmarkDeviceClientSize(b *testing.B) {
	dir := b.TempDir()
	build := func(out, pkg string, strip bool) int64 {
		b.Helper()
		args := []string{"build", "-trimpath", "-o", out}
		if strip {
			args = append(args, "-ldflags", "-s -w")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		fi, err := os.Stat(out)
		if err != nil {
			b.Fatal(err)
		}
		return fi.Size()
	}
	const mod = "github.com/afterlife-oss/afterlife"
	var device, full int64
	for i := 0; i < b.N; i++ {
		device = build(filepath.Join(dir, "afterlife-device"), mod+"/cmd/afterlife-device", true)
	}
	b.StopTimer()
	full = build(filepath.Join(dir, "afterlife"), mod+"/cmd/afterlife", true)
	withSymbols := filepath.Join(dir, "afterlife-device.sym")
	build(withSymbols, mod+"/cmd/afterlife-device", false)
	b.ReportMetric(float64(device)/(1<<20), "device-MiB")
	b.ReportMetric(float64(full)/(1<<20), "afterlife-MiB")
	for _, m := range sizeByModule(b, withSymbols) {
		fmt.Printf("size-by-module %s %.0f\n", m.module, float64(m.bytes)/1024)
	}
}

type moduleSize struct {
	module string
	bytes  int64
}

// sizeByModule sums the sizes go tool nm gives the binary's code symbols
// by the module their package belongs to (go version -m lists them).
func sizeByModule(b *testing.B, bin string) []moduleSize {
	b.Helper()
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		b.Fatalf("go version -m: %v", err)
	}
	var modules []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "dep" || f[0] == "mod") {
			modules = append(modules, f[1])
		}
	}
	sort.Slice(modules, func(i, j int) bool { return len(modules[i]) > len(modules[j]) })
	nm, err := exec.Command("go", "tool", "nm", "-size", bin).Output()
	if err != nil {
		b.Fatalf("go tool nm: %v", err)
	}
	sums := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(nm))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size == 0 || (f[2] != "T" && f[2] != "t") {
			continue
		}
		sums[moduleOf(strings.Join(f[3:], " "), modules)] += size
	}
	var out2 []moduleSize
	for m, n := range sums {
		out2 = append(out2, moduleSize{m, n})
	}
	sort.Slice(out2, func(i, j int) bool { return out2[i].bytes > out2[j].bytes })
	return out2
}

// moduleOf names the module a symbol belongs to: "std" for the runtime
// and standard library, "(no-package)" for symbols of no package.
func moduleOf(sym string, modules []string) string {
	sym = strings.TrimPrefix(strings.TrimPrefix(sym, "type:"), "go:")
	if i := strings.IndexAny(sym, "(["); i >= 0 {
		sym = sym[:i]
	}
	slash := strings.LastIndex(sym, "/")
	dot := strings.Index(sym[slash+1:], ".")
	if dot < 0 {
		return "(no-package)"
	}
	pkg := sym[:slash+1+dot]
	if first, _, _ := strings.Cut(pkg, "/"); !strings.Contains(first, ".") {
		return "std"
	}
	for _, m := range modules {
		if pkg == m || strings.HasPrefix(pkg, m+"/") {
			return m
		}
	}
	return "(other)"
}
