package builder_test

import (
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/constraint"
)

// FuzzEveryReaderOfAToolchainConstraintAgrees checks that the three places
// that once read toolchain constraints each their own way now give one
// answer: recipe lint (and the recipe's own ToolchainMatches), the farm
// matching a job to a builder (builder.Capable) and a builder choosing
// among the toolchains it detected (toolchain.Find). The seeds are the
// cases on which they used to disagree.
func FuzzEveryReaderOfAToolchainConstraintAgrees(f *testing.F) {
	for _, seed := range [][2]string{
		{">=1.26", "1.26rc1"},
		{"1.26", "1.26rc1"},
		{"1.26", "go1.26.8"},
		{">=1.25", "go1.26.8"},
		{"1.26", "1.26.8"},
		{"1.26", "1.260"},
		{"12", "12.2.1 20221205"},
		{">=12.2", "12.2.1 20221205"},
		{"=12.2.1", "12.2.1+local"},
		{">=1.25,<1.27", "1.26.1"},
		{">= 1.25 , <1.27", "1.27"},
		{"==1.26", "1.26"},
		{">=x", "9.1"},
		{"abc", "abc"},
		{"1.26,", "1.26"},
		{"", "anything"},
		{"*", "1.0"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, want, have string) {
		if !utf8.ValidString(want) {
			t.Skip("a recipe is UTF-8")
		}
		yaml := "name: fuzz\nversion: \"1\"\nproducts: [demo-cam]\nlicense: MIT\n" +
			"toolchain:\n  name: go\n  version: " + strconv.Quote(want) + "\n" +
			"steps: [\"true\"]\noutputs: [{path: fw, kind: firmware}]\n"
		lint := recipes.Lint([]byte(yaml), "afterlife.yaml")
		for _, e := range lint.Errors {
			if e.Field != "toolchain.version" {
				t.Skipf("the recipe around the constraint does not lint: %v", e)
			}
		}
		_, parseErr := constraint.Parse(want)
		if lint.OK() != (parseErr == nil) {
			t.Fatalf("lint accepts %q: %v; the grammar: %v", want, lint.OK(), parseErr)
		}
		farm := builder.Capable("amd64", []builder.ToolchainInfo{{Name: "go", Version: have}}, builder.ToolchainReq{Name: "go", Version: want}, "amd64")
		_, findErr := toolchain.Find([]toolchain.Toolchain{{Name: "go", Version: have}}, "go", want)
		detected := findErr == nil
		if !lint.OK() {
			// A constraint lint refuses never reaches the farm through a
			// recipe; if a spec carried one anyway, nothing may run it.
			if farm || detected {
				t.Fatalf("lint refuses %q, yet the farm matches %q: %v, detection finds it: %v", want, have, farm, detected)
			}
			return
		}
		recipe := lint.Recipe.ToolchainMatches("go", have)
		if recipe != farm || farm != detected {
			t.Fatalf("%q against %q: the recipe says %v, the farm %v, detection %v", have, want, recipe, farm, detected)
		}
	})
}
