package manifest

import (
	"path"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Rights is what a vendor allows the escrow to do with a deposited file once
// its deposit is released: its redistribution class.
type Rights string

// The rights classes.
const (
	// Public files are published when the deposit is released.
	Public Rights = "public"
	// BuildOnly files may be build inputs: served only to builders, within
	// a job whose recipe declares them, never to the public.
	BuildOnly Rights = "build-only"
	// Private files never leave the escrow except to the depositing vendor
	// and admins, released or not.
	Private Rights = "private"
)

// AllRights lists every class, from the most open to the most closed.
var AllRights = []Rights{Public, BuildOnly, Private}

// DefaultRights is the class of a file no rule names: nothing is published
// by mistake.
const DefaultRights = Private

// ParseRights validates s as a rights class.
func ParseRights(s string) (Rights, error) {
	for _, r := range AllRights {
		if string(r) == s {
			return r, nil
		}
	}
	return "", errs.E(errs.Invalid, "rights class %q: want public, build-only or private", s)
}

// RightsRule gives the files matching Pattern the class Rights. Pattern is
// a path relative to the deposit root where "*" matches within one path
// element, "?" one character, and "**" any number of whole elements
// (drivers/** is everything under drivers/).
type RightsRule struct {
	Pattern string `json:"pattern"`
	Rights  Rights `json:"rights"`
}

// MaxRightsRules bounds the rules of one deposit.
const MaxRightsRules = 1000

// MaxGrantSize bounds the vendor's grant text (a licence or a written
// permission) in bytes.
const MaxGrantSize = 256 << 10

// ParseRightsRule reads "PATTERN=CLASS", as the vendor CLI's --rights flag
// takes it.
func ParseRightsRule(s string) (RightsRule, error) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return RightsRule{}, errs.E(errs.Invalid, "rights %q: want PATTERN=CLASS, e.g. 'drivers/**=build-only'", s)
	}
	r := RightsRule{Pattern: s[:i], Rights: Rights(s[i+1:])}
	return r, r.Validate()
}

// Validate checks the rule's pattern and class.
func (r RightsRule) Validate() error {
	if _, err := ParseRights(string(r.Rights)); err != nil {
		return err
	}
	if r.Pattern == "" || len(r.Pattern) > 1024 || strings.HasPrefix(r.Pattern, "/") || strings.ContainsAny(r.Pattern, "\\\x00[") {
		return errs.E(errs.Invalid, "rights pattern %q: want a relative path with *, ? or ** (no leading /, backslash or [)", r.Pattern)
	}
	for _, el := range strings.Split(r.Pattern, "/") {
		if el == "" || el == "." || el == ".." {
			return errs.E(errs.Invalid, "rights pattern %q: empty, . or .. element", r.Pattern)
		}
		if el != "**" {
			if _, err := path.Match(el, ""); err != nil {
				return errs.Wrap(errs.Invalid, err, "rights pattern %q", r.Pattern)
			}
		}
	}
	return nil
}

// Matches reports whether path p matches the rule's pattern.
func (r RightsRule) Matches(p string) bool {
	return matchElems(strings.Split(r.Pattern, "/"), strings.Split(p, "/"))
}

func matchElems(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchElems(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// ValidateRights checks a deposit's rules: each valid, at most
// MaxRightsRules.
func ValidateRights(rules []RightsRule) error {
	if len(rules) > MaxRightsRules {
		return errs.E(errs.TooLarge, "%d rights rules: at most %d", len(rules), MaxRightsRules)
	}
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// RightsOf is the class rules give path p: the last rule that matches wins
// (so a broad rule comes first and exceptions after it), and a path no rule
// matches is DefaultRights.
func RightsOf(rules []RightsRule, p string) Rights {
	for i := len(rules) - 1; i >= 0; i-- {
		if rules[i].Matches(p) {
			return rules[i].Rights
		}
	}
	return DefaultRights
}

// ApplyRights sets every entry's Rights from rules.
func ApplyRights(entries []Entry, rules []RightsRule) []Entry {
	out := make([]Entry, len(entries))
	for i, e := range entries {
		e.Rights = RightsOf(rules, e.Path)
		out[i] = e
	}
	return out
}

// RightsCount is how many files (links included) fall in each class.
type RightsCount struct {
	Public    int `json:"public"`
	BuildOnly int `json:"build_only"`
	Private   int `json:"private"`
}

// CountRights counts entries by their Rights (an empty class counts as
// DefaultRights).
func CountRights(entries []Entry) RightsCount {
	var c RightsCount
	for _, e := range entries {
		switch e.Rights {
		case Public:
			c.Public++
		case BuildOnly:
			c.BuildOnly++
		default:
			c.Private++
		}
	}
	return c
}
