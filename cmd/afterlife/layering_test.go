package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/afterlife-oss/afterlife"

// part names the top-level part a package belongs to: escrow, recipes,
// builder, registry, web, internal, cmd, deploy.
func part(pkg string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rest, "/")
	return strings.TrimSuffix(top, "_test")
}

// allowed is the dependency rule of DESIGN.md: cmd → web → (registry,
// escrow, builder, recipes) → internal. Parts never import each other;
// cmd/afterlife adapts one part to another's interfaces.
var allowed = map[string][]string{
	"internal": {"internal"},
	"escrow":   {"escrow", "internal"},
	"recipes":  {"recipes", "internal"},
	"builder":  {"builder", "internal"},
	"registry": {"registry", "internal"},
	"web":      {"web", "internal"},
	"deploy":   {"deploy", "internal"},
	"bench":    {"bench", "cmd", "web", "registry", "escrow", "builder", "recipes", "internal"},
	"cmd":      {"cmd", "web", "registry", "escrow", "builder", "recipes", "internal"},
}

// confined third-party libraries may only be imported inside these packages,
// so their types never leak into interfaces between parts.
var confined = map[string][]string{
	"github.com/minio/minio-go/v7": {module + "/internal/blob/s3store"},
	"github.com/go-git/go-git/v5":  {module + "/recipes"},
}

func TestDependenciesPointOneWay(t *testing.T) {
	// Production imports only: tests may reach across parts to set up a
	// story (a farm test submits a recipe), but shipped code may not.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		if strings.HasSuffix(pkg, ".test") || strings.Contains(pkg, "[") {
			continue
		}
		checked++
		from := part(pkg)
		for _, imp := range fields[1:] {
			for lib, where := range confined {
				if strings.HasPrefix(imp, lib) && !hasPrefixAny(pkg, where) {
					t.Errorf("%s imports %s, which only %v may use", pkg, imp, where)
				}
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := part(imp)
			if !contains(allowed[from], to) {
				t.Errorf("%s (%s) imports %s (%s): %s may only depend on %v", pkg, from, imp, to, from, allowed[from])
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages; go list output looks wrong", checked)
	}
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
