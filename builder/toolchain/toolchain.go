// Package toolchain finds the build toolchains that are really installed on
// this machine (Go, the ARM bare-metal GCC, the base shell tools) and the
// tools recipes declare beside them (the SBOM generators), so that a
// builder advertises only what it can run, and says which host directories
// the sandbox must bind read-only for each of them. It must not install
// anything, trust a declared list, or know about jobs or recipes; it reads
// version constraints with recipes/constraint, the grammar recipes use.
package toolchain

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes/constraint"
)

// Names of the toolchains a recipe may ask for.
const (
	Go       = "go"
	ArmGCC   = "gcc-arm-none-eabi"
	Busybox  = "busybox"
	probeMax = 20 * time.Second
)

// Toolchain is one toolchain found on this machine.
type Toolchain struct {
	Name    string
	Version string
	// Paths are host directories the sandbox binds read-only, at the same
	// path, so the toolchain works inside it.
	Paths []string
	// Bin are directories (inside the sandbox, equal to the host paths) to
	// put in front of PATH.
	Bin []string
	// Env is set in the sandbox for steps using this toolchain.
	Env map[string]string
}

// Arch is the architecture builds run on, in GOARCH spelling.
func Arch() string { return runtime.GOARCH }

// Finder locates executables; tests and odd hosts can replace the search.
type Finder struct {
	// LookPath finds a command; exec.LookPath when nil.
	LookPath func(string) (string, error)
	// Extra are directories searched after PATH (default: /usr/local/go/bin).
	Extra []string
	// ToolDirs are searched for tools after PATH and Extra (default:
	// ToolCache()).
	ToolDirs []string
}

// Detect probes the machine and returns every toolchain it can run, sorted
// by name. The shell toolchain (busybox) is always present or Detect fails:
// without sh, tar and gzip no recipe can run.
func Detect(ctx context.Context) ([]Toolchain, error) {
	return Finder{}.Detect(ctx)
}

// Detect is the package Detect with f's search rules.
func (f Finder) Detect(ctx context.Context) ([]Toolchain, error) {
	var out []Toolchain
	base, err := f.shell(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, base)
	if tc, ok, err := f.golang(ctx); err != nil {
		return nil, err
	} else if ok {
		out = append(out, tc)
	}
	if tc, ok, err := f.armGCC(ctx); err != nil {
		return nil, err
	} else if ok {
		out = append(out, tc)
	}
	for _, name := range []string{CycloneDXGomod, Syft} {
		if tc, ok := f.tool(ctx, name); ok {
			out = append(out, tc)
		}
	}
	slices.SortFunc(out, func(a, b Toolchain) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Find returns the toolchain called name whose version satisfies the
// constraint want (recipes/constraint).
func Find(tcs []Toolchain, name, want string) (Toolchain, error) {
	var seen []string
	for _, tc := range tcs {
		if tc.Name != name {
			continue
		}
		if constraint.Satisfies(tc.Version, want) {
			return tc, nil
		}
		seen = append(seen, tc.Version)
	}
	if len(seen) == 0 {
		return Toolchain{}, errs.E(errs.NotFound, "toolchain %s is not installed on this builder", name)
	}
	return Toolchain{}, errs.E(errs.NotFound, "toolchain %s %q not available: this builder has %s", name, want, strings.Join(seen, ", "))
}

func (f Finder) look(name string) (string, bool) {
	lp := f.LookPath
	if lp == nil {
		lp = exec.LookPath
	}
	if p, err := lp(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, true
		}
	}
	extra := f.Extra
	if extra == nil {
		extra = []string{"/usr/local/go/bin"}
	}
	for _, d := range extra {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func probe(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeMax)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A toolchain must answer the same way for every caller: no inherited
	// GOFLAGS/GOTOOLCHAIN surprises.
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + os.TempDir(), "GOTOOLCHAIN=local", "LC_ALL=C"}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("toolchain: run %s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (f Finder) golang(ctx context.Context) (Toolchain, bool, error) {
	bin, ok := f.look("go")
	if !ok {
		return Toolchain{}, false, nil
	}
	out, err := probe(ctx, bin, "env", "GOROOT", "GOVERSION")
	if err != nil {
		return Toolchain{}, false, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		return Toolchain{}, false, errs.E(errs.Internal, "toolchain: go env printed %q, want GOROOT and GOVERSION", out)
	}
	goroot, version := strings.TrimSpace(lines[0]), strings.TrimPrefix(strings.TrimSpace(lines[1]), "go")
	if !filepath.IsAbs(goroot) || version == "" {
		return Toolchain{}, false, errs.E(errs.Internal, "toolchain: go env gave GOROOT %q and version %q", goroot, version)
	}
	tc := Toolchain{
		Name:    Go,
		Version: version,
		Paths:   []string{goroot},
		Bin:     []string{filepath.Join(goroot, "bin")},
		// GOTOOLCHAIN=local: the sandbox has no network, and a build must
		// use the toolchain the builder advertised, never fetch another.
		Env: map[string]string{"GOTOOLCHAIN": "local"},
	}
	return tc, true, nil
}

// Tools a recipe may declare beside its toolchain (recipes.KnownTools):
// the SBOM generators. A builder advertises each it finds, at the version
// it reports, and binds one into the sandbox only for a job that declares
// it at exactly that version: their SBOMs name the generator and its
// version, so every builder must run the same build of it.
const (
	// CycloneDXGomod writes a CycloneDX SBOM of a Go module or binary.
	CycloneDXGomod = "cyclonedx-gomod"
	// Syft writes a CycloneDX or SPDX SBOM of a directory, archive or image.
	Syft = "syft"
)

// toolEnv is what each tool gets in the sandbox besides PATH: syft must
// not look for a newer version of itself (there is no network, and the
// answer would depend on the day).
var toolEnv = map[string]map[string]string{
	Syft: {"SYFT_CHECK_FOR_APP_UPDATE": "false"},
}

// ToolCache is where afterlife's scripts install the tools builds use
// (scripts/cyclonedx-gomod.sh, scripts/syft.sh): $AFTERLIFE_CACHE/bin, or
// ~/.cache/afterlife/bin.
func ToolCache() string {
	if c := os.Getenv("AFTERLIFE_CACHE"); c != "" {
		return filepath.Join(c, "bin")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "afterlife", "bin")
}

// tool finds the tool called name on PATH, in the extra directories or in
// ToolCache, and asks it its version ("Version: v1.10.0" or "Version:
// 1.57.2"; always given with a leading v, as recipes pin it). A tool that
// does not answer is not advertised.
func (f Finder) tool(ctx context.Context, name string) (Toolchain, bool) {
	bin, ok := f.look(name)
	dirs := f.ToolDirs
	if dirs == nil {
		dirs = []string{ToolCache()}
	}
	for _, dir := range dirs {
		if ok || dir == "" {
			break
		}
		bin, ok = Finder{LookPath: func(string) (string, error) { return "", os.ErrNotExist }, Extra: []string{dir}}.look(name)
	}
	if !ok {
		return Toolchain{}, false
	}
	out, err := probe(ctx, bin, "version")
	if err != nil {
		return Toolchain{}, false
	}
	for _, line := range strings.Split(out, "\n") {
		v, found := strings.CutPrefix(line, "Version:")
		if v = strings.TrimSpace(v); !found || v == "" {
			continue
		}
		if !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		env := map[string]string{}
		for k, val := range toolEnv[name] {
			env[k] = val
		}
		// Only the tool's own file is bound, not the directory it sits in.
		return Toolchain{Name: name, Version: v, Paths: []string{bin}, Bin: []string{filepath.Dir(bin)}, Env: env}, true
	}
	return Toolchain{}, false
}

// With is tc carrying tools into the sandbox too: their files bound, their
// directories on PATH after tc's, their variables set.
func (tc Toolchain) With(tools ...Toolchain) Toolchain {
	out := tc
	out.Paths = slices.Clone(tc.Paths)
	out.Bin = slices.Clone(tc.Bin)
	out.Env = map[string]string{}
	for k, v := range tc.Env {
		out.Env[k] = v
	}
	for _, t := range tools {
		for _, p := range t.Paths {
			if !slices.Contains(out.Paths, p) {
				out.Paths = append(out.Paths, p)
			}
		}
		for _, b := range t.Bin {
			if !slices.Contains(out.Bin, b) {
				out.Bin = append(out.Bin, b)
			}
		}
		for k, v := range t.Env {
			out.Env[k] = v
		}
	}
	return out
}

// Pin is a tool at one exact version, as a job declares it.
type Pin struct{ Name, Version string }

// FindTools returns the tools a job declares, each at exactly its version.
func FindTools(tcs []Toolchain, want []Pin) ([]Toolchain, error) {
	var out []Toolchain
	for _, w := range want {
		i := slices.IndexFunc(tcs, func(t Toolchain) bool { return t.Name == w.Name && t.Version == w.Version })
		if i < 0 {
			var seen []string
			for _, t := range tcs {
				if t.Name == w.Name {
					seen = append(seen, t.Version)
				}
			}
			if len(seen) == 0 {
				return nil, errs.E(errs.NotFound, "tool %s is not installed on this builder", w.Name)
			}
			return nil, errs.E(errs.NotFound, "tool %s %s not available: this builder has %s", w.Name, w.Version, strings.Join(seen, ", "))
		}
		out = append(out, tcs[i])
	}
	return out, nil
}

func (f Finder) armGCC(ctx context.Context) (Toolchain, bool, error) {
	bin, ok := f.look("arm-none-eabi-gcc")
	if !ok {
		return Toolchain{}, false, nil
	}
	out, err := probe(ctx, bin, "-dumpversion")
	if err != nil {
		return Toolchain{}, false, err
	}
	version := strings.TrimSpace(out)
	if version == "" {
		return Toolchain{}, false, errs.E(errs.Internal, "toolchain: %s -dumpversion printed nothing", bin)
	}
	// Debian installs the cross compiler's pieces in these places; only the
	// ones that exist are bound.
	binDir := filepath.Dir(bin)
	var paths []string
	for _, p := range []string{binDir, "/usr/lib/gcc/arm-none-eabi", "/usr/lib/arm-none-eabi", "/usr/libexec/gcc/arm-none-eabi", "/usr/include/newlib"} {
		if _, err := os.Stat(p); err == nil && !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	paths = append(paths, linksOutside(paths[1:])...)
	env := map[string]string{}
	if status := f.debianRecords(ctx, armGCCPackages); status != "" {
		env[DpkgStatusEnv] = status
	}
	return Toolchain{Name: ArmGCC, Version: version, Paths: paths, Bin: []string{binDir}, Env: env}, true, nil
}

// DpkgStatusEnv holds, in the sandbox, the Debian package records (dpkg
// status stanzas, as dpkg-query -s prints them) of the packages a
// toolchain is made of, when the builder installed it from Debian's
// packages: an SBOM generator that reads a dpkg database (syft) names the
// toolchain from them. Records of the same package versions are the same
// bytes on every builder; the rest of the host's package database stays
// out of the sandbox.
const DpkgStatusEnv = "AFTERLIFE_DPKG_STATUS"

// armGCCPackages are the Debian packages the ARM bare-metal toolchain is
// made of: the compiler, its binutils and the C library it links.
var armGCCPackages = []string{"gcc-arm-none-eabi", "binutils-arm-none-eabi", "libnewlib-arm-none-eabi"}

// debianRecords is the dpkg status stanzas of the installed packages among
// names, in that order, or "" when dpkg-query is not there.
func (f Finder) debianRecords(ctx context.Context, names []string) string {
	bin, ok := f.look("dpkg-query")
	if !ok {
		return ""
	}
	var stanzas []string
	for _, name := range names {
		out, err := probe(ctx, bin, "-s", name)
		if err != nil || !strings.Contains(out, "\nStatus: install ok installed\n") {
			continue
		}
		stanzas = append(stanzas, strings.TrimSpace(out)+"\n")
	}
	return strings.Join(stanzas, "\n")
}

// linksOutside finds symlinks directly inside dirs that point out of /usr
// (Debian's /etc/alternatives: /usr/lib/arm-none-eabi/include →
// /etc/alternatives/gcc-arm-none-eabi-include → /usr/include/newlib) and
// returns their targets, so the sandbox can bind them and the links resolve.
func linksOutside(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Type()&os.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(filepath.Join(d, e.Name()))
			if err != nil || !filepath.IsAbs(target) {
				continue
			}
			target = filepath.Clean(target)
			if strings.HasPrefix(target, "/usr/") || slices.Contains(out, target) {
				continue
			}
			if _, err := os.Stat(target); err == nil {
				out = append(out, target)
			}
		}
	}
	slices.Sort(out)
	return out
}

var versionRe = regexp.MustCompile(`\d+(\.\d+)+`)

// shell is the base every sandbox gets: sh and the usual tools from /usr.
// Its version is busybox's when installed, otherwise GNU coreutils'.
func (f Finder) shell(ctx context.Context) (Toolchain, error) {
	var missing []string
	for _, tool := range []string{"sh", "tar", "gzip", "sha256sum", "date"} {
		if _, ok := f.look(tool); !ok {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return Toolchain{}, errs.E(errs.Unavailable, "toolchain: basic tools missing from this machine: %s", strings.Join(missing, ", "))
	}
	version := ""
	if bb, ok := f.look("busybox"); ok {
		if out, err := probe(ctx, bb); err == nil {
			version = versionRe.FindString(out)
		}
	}
	if version == "" {
		env, _ := f.look("env")
		out, err := probe(ctx, env, "--version")
		if err != nil {
			return Toolchain{}, err
		}
		version = versionRe.FindString(firstLine(out))
	}
	if version == "" {
		return Toolchain{}, errs.E(errs.Internal, "toolchain: cannot tell the version of the base tools")
	}
	return Toolchain{Name: Busybox, Version: version, Paths: []string{"/usr"}, Bin: []string{"/usr/bin"}, Env: map[string]string{}}, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
