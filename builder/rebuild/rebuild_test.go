package rebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes"
)

func file(path, content string) File {
	sum := sha256.Sum256([]byte(content))
	return File{Path: path, SHA256: hex.EncodeToString(sum[:]), Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}}
}

const recipeHead = `name: fw
version: 1.0.0
products: [acme-thermo]
license: CC0-1.0
toolchain: {name: busybox}
steps:
  - cp /inputs/escrow/src.c /out/fw.bin
outputs:
  - {path: fw.bin, kind: firmware}
`

// The refusals happen before anything runs in the sandbox.
func TestARebuildIsRefusedUnlessTheDepositAloneCanMakeIt(t *testing.T) {
	r := New(Options{WorkDir: filepath.Join(t.TempDir(), "work"), Maxima: recipes.DefaultMaxima,
		Toolchains: func(context.Context) ([]toolchain.Toolchain, error) { return nil, nil }})
	src := file("src/main.c", "int main(void) { return 0; }\n")
	for _, tc := range []struct {
		name, recipe string
		files        []File
		kind         errs.Kind
		says         string
	}{
		{"a recipe that is not among the files", "recipe/afterlife.yaml", []File{src}, errs.Invalid, "no recipe file"},
		{"a recipe that does not parse", "recipe/afterlife.yaml", []File{src, file("recipe/afterlife.yaml", "name: [")}, errs.Invalid, "afterlife.yaml"},
		{"a recipe with git inputs, which the deposit does not hold", "recipe/afterlife.yaml", []File{src, file("recipe/afterlife.yaml", recipeHead+
			"inputs:\n  git:\n    - {name: lib, url: https://example.org/lib.git, commit: 0123456789abcdef0123456789abcdef01234567}\n")}, errs.Invalid, "git inputs"},
		{"a toolchain this machine lacks", "recipe/afterlife.yaml", []File{src, file("recipe/afterlife.yaml", recipeHead)}, errs.Unavailable, "busybox"},
		{"an SBOM generator the recipe declares and this machine lacks", "recipe/afterlife.yaml", []File{src, file("recipe/afterlife.yaml", recipeHead+
			"tools: [{name: syft, version: v1.57.2}]\n")}, errs.Unavailable, "tool syft is not installed"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := r.Run(t.Context(), tc.recipe, tc.files)
			if !errs.Is(err, tc.kind) || !strings.Contains(errs.Message(err), tc.says) {
				t.Fatalf("err %v, want kind %v saying %q", err, tc.kind, tc.says)
			}
		})
	}
}
