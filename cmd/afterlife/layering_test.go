package main

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/afterlife-oss/afterlife"

// architecturePage holds the import rules; this test reads them from there
// so that the page people read and the rule the build enforces are one.
const architecturePage = "../../docs/architecture.md"

// importRule is one row of the table in docs/architecture.md.
type importRule struct {
	patterns   []string // the packages the row covers
	mayImport  []string // afterlife packages they may import; "!p" excludes
	neverLinks []string // modules or packages never among their dependencies
}

// layering is the rule: import rules and confined libraries.
type layering struct {
	rules    []importRule
	confined map[string][]string // library → the only packages that may import it
}

// pkgInfo is what go list says of one package.
type pkgInfo struct {
	imports []string // direct imports
	deps    []string // everything it links
}

func TestDependenciesFollowTheImportTable(t *testing.T) {
	l := readLayering(t, architecturePage)
	pkgs := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages; its output looks wrong", len(pkgs))
	}
	for _, v := range l.check(pkgs) {
		t.Error(v)
	}
}

// TestTheImportTableCatchesAForbiddenImport shows the check is live: the
// real module plus one scratch import that the table forbids must fail.
func TestTheImportTableCatchesAForbiddenImport(t *testing.T) {
	l := readLayering(t, architecturePage)
	pkgs := listPackages(t)
	cases := []struct {
		name, from, imp string
	}{
		{"a part imports another part", "escrow/scratch", "registry"},
		{"the vendor client imports its server", "escrow/client", "escrow"},
		{"a page imports the database", "web/scratch", "internal/db"},
		{"internal imports a part", "internal/scratch", "builder"},
		{"minio-go outside the S3 store", "registry/scratch", "github.com/minio/minio-go/v7"},
		{"a part's commands import their server", "registry/cli", "registry"},
		{"a part's commands import another part's", "recipes/cli", "builder/cli"},
		{"the shared client commands import a part", "internal/cli", "escrow/client"},
		{"the shared client commands import the database", "internal/cli", "internal/db"},
		{"the token commands import the token store", "internal/auth/authcli", "internal/auth"},
		{"the builder's commands import the farm's handlers", "builder/cli", "builder/farmhttp"},
		{"the farm's client imports the coordinator", "builder/farmclient", "builder/coord"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			scratch := map[string]pkgInfo{}
			for k, v := range pkgs {
				scratch[k] = v
			}
			imp := c.imp
			if !strings.Contains(imp, ".") {
				imp = module + "/" + imp
			}
			from := module + "/" + c.from
			p := scratch[from]
			p.imports = append(slices.Clone(p.imports), imp)
			p.deps = append(slices.Clone(p.deps), imp)
			scratch[from] = p
			if v := l.check(scratch); len(v) == 0 {
				t.Fatalf("%s importing %s passed the check", c.from, c.imp)
			}
		})
	}
	for _, c := range []struct {
		name, pkg, dep string
	}{
		{"a client linking a database driver", "escrow/client", "github.com/jackc/pgx/v5"},
		{"the vendor commands linking the web framework", "escrow/cli", "github.com/gin-gonic/gin"},
		{"the release commands linking the migration tool", "registry/cli", "github.com/pressly/goose/v3"},
		{"the recipe commands linking SQLite", "recipes/cli", "modernc.org/sqlite"},
		{"the builder's commands linking the web framework", "builder/cli", "github.com/gin-gonic/gin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			scratch := map[string]pkgInfo{}
			for k, v := range pkgs {
				scratch[k] = v
			}
			p := scratch[module+"/"+c.pkg]
			p.deps = append(slices.Clone(p.deps), c.dep)
			scratch[module+"/"+c.pkg] = p
			if v := l.check(scratch); len(v) == 0 {
				t.Fatalf("%s linking %s passed the check", c.pkg, c.dep)
			}
		})
	}
}

func TestEveryPackageHasARule(t *testing.T) {
	l := readLayering(t, architecturePage)
	for pkg := range listPackages(t) {
		if l.rule(pkg) == nil {
			t.Errorf("%s: no row of the import table in docs/architecture.md covers it", pkg)
		}
	}
}

// check returns one message per import or link against the rule.
func (l layering) check(pkgs map[string]pkgInfo) []string {
	var bad []string
	for _, pkg := range slices.Sorted(maps.Keys(pkgs)) {
		info := pkgs[pkg]
		r := l.rule(pkg)
		if r == nil {
			bad = append(bad, pkg+": no row of the import table covers it")
			continue
		}
		for _, imp := range info.imports {
			for lib, where := range l.confined {
				if (imp == lib || strings.HasPrefix(imp, lib+"/")) && !slices.Contains(where, rel(pkg)) {
					bad = append(bad, pkg+" imports "+imp+", which only "+strings.Join(where, ", ")+" may use")
				}
			}
			if !strings.HasPrefix(imp, module+"/") || imp == pkg {
				continue
			}
			if !r.allows(rel(imp)) {
				bad = append(bad, pkg+" imports "+rel(imp)+": its row ("+strings.Join(r.patterns, ", ")+") allows "+strings.Join(r.mayImport, ", "))
			}
		}
		for _, dep := range info.deps {
			for _, never := range r.neverLinks {
				if dep == never || strings.HasPrefix(dep, never+"/") || (strings.HasPrefix(dep, module+"/") && matches(never, rel(dep))) {
					bad = append(bad, pkg+" links "+dep+", which its row never allows")
				}
			}
		}
	}
	return bad
}

// rule is the row with the longest pattern matching pkg, or nil. Length is
// the path's without "/...", and a pattern naming pkg itself beats one of
// the same path with "/..." (`x` over `x/...`; `x/cli` over `x/...`).
func (l layering) rule(pkg string) *importRule {
	p := rel(pkg)
	var best *importRule
	bestLen := -1
	for i := range l.rules {
		for _, pat := range l.rules[i].patterns {
			if matches(pat, p) && specificity(pat) > bestLen {
				best, bestLen = &l.rules[i], specificity(pat)
			}
		}
	}
	return best
}

func specificity(pattern string) int {
	if pattern == "..." {
		return 0
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return 2 * len(base)
	}
	return 2*len(pattern) + 1
}

func (r *importRule) allows(p string) bool {
	ok := false
	for _, pat := range r.mayImport {
		if neg, found := strings.CutPrefix(pat, "!"); found {
			if matches(neg, p) {
				return false
			}
			continue
		}
		if matches(pat, p) {
			ok = true
		}
	}
	return ok
}

// matches reports whether a module-relative package path p is covered by
// pattern: "x" is exactly x, "x/..." is x and below, "..." is everything.
func matches(pattern, p string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

func rel(pkg string) string {
	return strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
}

// readLayering parses the two marked tables of the architecture page.
func readLayering(t *testing.T, path string) layering {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatalf("read the import rules: %v", err)
	}
	page := string(b)
	l := layering{confined: map[string][]string{}}
	for _, row := range tableRows(t, page, "import-rules") {
		if len(row) != 4 {
			t.Fatalf("%s: import rule row %q: want 4 cells", path, row)
		}
		l.rules = append(l.rules, importRule{patterns: codeSpans(row[0]), mayImport: codeSpans(row[2]), neverLinks: codeSpans(row[3])})
	}
	for _, row := range tableRows(t, page, "confined-libraries") {
		if len(row) != 2 {
			t.Fatalf("%s: confined library row %q: want 2 cells", path, row)
		}
		for _, lib := range codeSpans(row[0]) {
			l.confined[lib] = codeSpans(row[1])
		}
	}
	if len(l.rules) < 5 {
		t.Fatalf("%s: found only %d import rules between the import-rules markers", path, len(l.rules))
	}
	return l
}

// tableRows returns the cells of the body rows of the markdown table
// between <!-- name:begin --> and <!-- name:end -->.
func tableRows(t *testing.T, page, name string) [][]string {
	t.Helper()
	_, rest, ok := strings.Cut(page, "<!-- "+name+":begin -->")
	body, _, ok2 := strings.Cut(rest, "<!-- "+name+":end -->")
	if !ok || !ok2 {
		t.Fatalf("docs/architecture.md has no %s table between its markers", name)
	}
	var rows [][]string
	for i, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if i < 2 { // header and separator
			continue
		}
		line = strings.TrimSpace(line)
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

// codeSpans returns the `quoted` items of a cell.
func codeSpans(cell string) []string {
	var out []string
	for {
		_, rest, ok := strings.Cut(cell, "`")
		if !ok {
			return out
		}
		span, after, ok := strings.Cut(rest, "`")
		if !ok {
			return out
		}
		out = append(out, span)
		cell = after
	}
}

// listPackages runs go list over the module's shipped code.
func listPackages(t *testing.T) map[string]pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkgInfo{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("go list printed %q", line)
		}
		pkgs[parts[0]] = pkgInfo{imports: strings.Fields(parts[1]), deps: strings.Fields(parts[2])}
	}
	return pkgs
}
