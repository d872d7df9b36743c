package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestLogCallsPutErrorsUnderErrAndNameEachKeyOnce reads every Go file of the
// module: no slog call may put an error under "error" (the key is "err"),
// nor give a key twice, in one call or to a logger already made With it in
// the same package. Lines written at run time are checked too: the servers
// and builders internal/testenv starts have their logs checked when they
// stop, and testenv.Logger checks in-process loggers; this test covers the
// calls no test runs, such as error paths.
func TestLogCallsPutErrorsUnderErrAndNameEachKeyOnce(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string][]*ast.File{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages under %s", len(pkgs), root)
	}
	for _, files := range pkgs {
		for _, p := range logKeyProblems(fset, files) {
			t.Error(p)
		}
	}
}

// TestTheLogKeyCheckCatchesBadCalls shows the check is live on scratch code.
func TestTheLogKeyCheckCatchesBadCalls(t *testing.T) {
	for _, c := range []struct {
		name, src, want string // want "" for no problem
	}{
		{"an error under err passes", `log.Warn("m", "deposit", id, "err", err)`, ""},
		{"an error under error fails", `log.Warn("m", "deposit", id, "error", err)`, `"error"`},
		{"an error attribute under error fails", `log.LogAttrs(ctx, slog.LevelWarn, "m", slog.String("error", err.Error()))`, `"error"`},
		{"a key given twice in one call fails", `log.Info("m", "job", a, slog.String("job", b))`, "repeats job"},
		{"a key given again to a logger made With it fails", `l := log.With("builder", n); l.Info("m", "builder", n)`, "repeats builder"},
		{"a key given again through chained Withs fails", `log.With("part", "a").With("part", "b").Info("m")`, "repeats part"},
		{"a key given again to a struct's logger made With it fails",
			`a := &Agent{log: o.Logger.With("builder", n)}; a.log.Info("m", "builder", n)`, "repeats builder"},
		{"keys after an argument the check cannot read are not guessed", `log.Info("m", args[0], "error")`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "scratch.go", "package scratch\nfunc f() {\n"+c.src+"\n}\n", 0)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(logKeyProblems(fset, []*ast.File{f}), "\n")
			if c.want == "" && got != "" || !strings.Contains(got, c.want) {
				t.Fatalf("problems %q, want one naming %q", got, c.want)
			}
		})
	}
}

// logArgs maps a slog.Logger method to the index of its first key or
// attribute argument.
var logArgs = map[string]int{
	"Debug": 1, "Info": 1, "Warn": 1, "Error": 1,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2,
	"Log": 3, "LogAttrs": 3, "With": 0,
}

// attrFuncs are slog's attribute constructors, whose first argument is the key.
var attrFuncs = []string{"String", "Int", "Int64", "Uint64", "Float64", "Bool", "Time", "Duration", "Any", "Group"}

// logKeyProblems checks the log calls of one package's files. Without type
// information it reads calls by their method names and string literal
// keys, and stops reading a call's keys at an argument it cannot read.
func logKeyProblems(fset *token.FileSet, files []*ast.File) []string {
	// Loggers kept in struct fields: field name → the keys they carry.
	fields := map[string][]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok {
					if keys := withKeys(n.Value, nil, nil); keys != nil {
						fields[k.Name] = keys
					}
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if sel, ok := lhs.(*ast.SelectorExpr); ok && i < len(n.Rhs) {
						if keys := withKeys(n.Rhs[i], nil, nil); keys != nil {
							fields[sel.Sel.Name] = keys
						}
					}
				}
			}
			return true
		})
	}
	var problems []string
	for _, f := range files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			locals := map[string][]string{} // loggers in variables of this function
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.AssignStmt:
					for i, lhs := range n.Lhs {
						if id, ok := lhs.(*ast.Ident); ok && i < len(n.Rhs) {
							if keys := withKeys(n.Rhs[i], locals, fields); keys != nil {
								locals[id.Name] = keys
							}
						}
					}
				case *ast.CallExpr:
					if p := attrProblem(n); p != "" {
						problems = append(problems, fmt.Sprintf("%s: %s", fset.Position(n.Pos()), p))
					}
					sel, ok := n.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					first, ok := logArgs[sel.Sel.Name]
					if !ok || len(n.Args) < first {
						return true
					}
					keys := append(carried(sel.X, locals, fields), argKeys(n.Args[first:], n.Ellipsis.IsValid())...)
					if p := testenv.LogKeyProblem(keys); p != "" {
						problems = append(problems, fmt.Sprintf("%s: %s.%s with keys %v: %s", fset.Position(n.Pos()), exprString(sel.X), sel.Sel.Name, keys, p))
					}
				}
				return true
			})
		}
	}
	return problems
}

// withKeys is the keys a logger made by e carries, when e is a With call.
func withKeys(e ast.Expr, locals, fields map[string][]string) []string {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return nil
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "With" {
		return nil
	}
	return append(carried(sel.X, locals, fields), argKeys(call.Args, call.Ellipsis.IsValid())...)
}

// carried is the keys the logger e already holds, as far as they are known.
func carried(e ast.Expr, locals, fields map[string][]string) []string {
	switch e := e.(type) {
	case *ast.Ident:
		return slices.Clone(locals[e.Name])
	case *ast.SelectorExpr:
		return slices.Clone(fields[e.Sel.Name])
	case *ast.CallExpr:
		return withKeys(e, locals, fields)
	}
	return nil
}

// argKeys reads the keys of key-value and attribute arguments, as slog
// pairs them, up to the first argument it cannot read.
func argKeys(args []ast.Expr, spread bool) []string {
	if spread && len(args) > 0 {
		args = args[:len(args)-1]
	}
	var keys []string
	for i := 0; i < len(args); {
		if k, ok := stringLit(args[i]); ok {
			keys = append(keys, k)
			i += 2
			continue
		}
		if k, ok := attrKey(args[i]); ok {
			keys = append(keys, k)
			i++
			continue
		}
		break
	}
	return keys
}

// attrKey is the key of slog.String("k", …) and its kin.
func attrKey(e ast.Expr) (string, bool) {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || exprString(sel.X) != "slog" || !slices.Contains(attrFuncs, sel.Sel.Name) {
		return "", false
	}
	return stringLit(call.Args[0])
}

// attrProblem catches an attribute built under "error" wherever it is.
func attrProblem(call *ast.CallExpr) string {
	if k, ok := attrKey(call); ok && k == "error" {
		return `an attribute under "error": use "err"`
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	case *ast.CallExpr:
		return exprString(e.Fun) + "(…)"
	}
	return "…"
}
