package manifest

import (
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestRightsRulesGiveEachPathItsClass(t *testing.T) {
	rules := []RightsRule{
		{Pattern: "**", Rights: Public},
		{Pattern: "drivers/**", Rights: BuildOnly},
		{Pattern: "**/*.key", Rights: Private},
		{Pattern: "drivers/README.md", Rights: Public},
	}
	tests := []struct {
		name, path string
		want       Rights
	}{
		{"a path only the broad rule matches is public", "docs/board.pdf", Public},
		{"everything under drivers is build-only", "drivers/net/eth.c", BuildOnly},
		{"a later exception wins over an earlier rule", "drivers/README.md", Public},
		{"a key anywhere is private", "drivers/net/sign.key", Private},
		{"a key at the root is private", "root.key", Private},
		{"drivers/** matches the directory drivers itself too", "drivers", BuildOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RightsOf(rules, tt.path); got != tt.want {
				t.Fatalf("RightsOf(%q) = %s, want %s", tt.path, got, tt.want)
			}
		})
	}
	t.Run("a path no rule matches is private", func(t *testing.T) {
		if got := RightsOf([]RightsRule{{Pattern: "src/*.c", Rights: Public}}, "src/sub/x.c"); got != Private {
			t.Fatalf("got %s", got)
		}
		if got := RightsOf(nil, "anything"); got != Private {
			t.Fatalf("got %s", got)
		}
	})
}

func TestRightsRulesAreParsedAndBadOnesRefused(t *testing.T) {
	r, err := ParseRightsRule("drivers/**=build-only")
	if err != nil || r.Pattern != "drivers/**" || r.Rights != BuildOnly {
		t.Fatalf("ParseRightsRule = %+v, %v", r, err)
	}
	for _, bad := range []string{"drivers/**", "x=secret", "/abs=public", "a/../b=public", "a//b=public", "=public", `a\b=public`, "a[=public"} {
		if _, err := ParseRightsRule(bad); !errs.Is(err, errs.Invalid) {
			t.Errorf("ParseRightsRule(%q) = %v, want Invalid", bad, err)
		}
	}
}

func TestTheManifestDigestDoesNotDependOnRights(t *testing.T) {
	es := []Entry{{Path: "a", Size: 1, SHA256: "00", Kind: Other}}
	with := ApplyRights(es, []RightsRule{{Pattern: "**", Rights: Public}})
	if Digest(es) != Digest(with) {
		t.Fatal("setting rights changed the manifest digest, so receipts and approvals made before would no longer match")
	}
	if c := CountRights(with); c.Public != 1 || c.Private != 0 {
		t.Fatalf("CountRights = %+v", c)
	}
}
