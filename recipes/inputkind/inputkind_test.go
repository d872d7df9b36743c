package inputkind_test

import (
	"testing"

	"github.com/afterlife-oss/afterlife/recipes/inputkind"
)

func TestOnlyTheNamedKindsAreValid(t *testing.T) {
	for kind, want := range map[string]bool{
		inputkind.Escrow: true, inputkind.GitArchive: true,
		"": false, "git": false, "Escrow": false, "file": false,
	} {
		if got := inputkind.Valid(kind); got != want {
			t.Errorf("Valid(%q) = %v, want %v", kind, got, want)
		}
	}
}
