package principal_test

import (
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

func TestPrincipals(t *testing.T) {
	vendor := principal.Principal{Name: "acme-ci", Role: principal.Vendor, Org: "acme"}
	admin := principal.Principal{Name: "root", Role: principal.Admin}
	cases := []struct {
		name string
		got  bool
	}{
		{"the zero principal is anonymous", principal.Principal{}.IsAnonymous()},
		{"an anonymous caller has no role", !principal.Principal{}.Is(principal.Vendor)},
		{"a vendor is a vendor", vendor.Is(principal.Maintainer, principal.Vendor)},
		{"a vendor is not an admin", !vendor.Is(principal.Admin)},
		{"an admin has every role", admin.Is(principal.Builder) && admin.Is()},
		{"a caller is named by role and name in event logs", vendor.Actor() == "vendor:acme-ci"},
		{"an anonymous caller is named anonymous", principal.Principal{}.Actor() == "anonymous"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.got {
				t.Fail()
			}
		})
	}
	t.Run("every role parses and an unknown one is invalid", func(t *testing.T) {
		for _, r := range principal.Roles {
			if got, err := principal.ParseRole(string(r)); err != nil || got != r {
				t.Fatalf("ParseRole(%q) = %q, %v", r, got, err)
			}
		}
		if _, err := principal.ParseRole("root"); !errs.Is(err, errs.Invalid) {
			t.Fatalf("ParseRole(root): %v", err)
		}
	})
}
