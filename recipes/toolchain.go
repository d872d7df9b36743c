package recipes

import (
	"fmt"
	"strconv"
	"strings"
)

// KnownToolchain describes a build environment builders can provide.
type KnownToolchain struct {
	Name        string
	Description string
}

// KnownToolchains are the toolchain names a recipe may ask for.
var KnownToolchains = []KnownToolchain{
	{"go", "the Go toolchain (go build; cross-compiles with GOOS/GOARCH)"},
	{"gcc-arm-none-eabi", "GCC for bare-metal ARM (Cortex-M) with newlib"},
	{"busybox", "a plain POSIX shell with coreutils, tar and gzip"},
}

// ToolchainNames lists the names of KnownToolchains.
func ToolchainNames() []string {
	names := make([]string, len(KnownToolchains))
	for i, t := range KnownToolchains {
		names[i] = t.Name
	}
	return names
}

// Constraint is a parsed toolchain version constraint: a comma-separated
// list of clauses that must all hold. A clause is a version with an optional
// operator: "1.26" (no operator) matches any version that starts with those
// components (1.26, 1.26.8 but not 1.27); ">=1.25", ">1.25", "<=1.27",
// "<1.27" and "=1.26.8" compare component by component. The empty
// constraint and "*" match every version.
type Constraint struct {
	clauses []clause
}

type clause struct {
	op  string // "", ">=", ">", "<=", "<", "="
	ver []int
}

// MaxConstraintLen bounds a constraint's text.
const MaxConstraintLen = 64

// ParseConstraint reads a constraint such as "1.26", ">=1.25" or ">=1.25,<1.27".
func ParseConstraint(s string) (Constraint, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return Constraint{}, nil
	}
	if len(s) > MaxConstraintLen {
		return Constraint{}, fmt.Errorf("constraint is longer than %d characters", MaxConstraintLen)
	}
	var c Constraint
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		var cl clause
		for _, op := range []string{">=", "<=", ">", "<", "="} {
			if rest, ok := strings.CutPrefix(part, op); ok {
				cl.op, part = op, strings.TrimSpace(rest)
				break
			}
		}
		v, rest := parseVersion(part)
		if v == nil || rest != "" {
			return Constraint{}, fmt.Errorf("%q is not a version constraint like \"1.26\", \">=1.25\" or \">=1.25,<1.27\"", s)
		}
		cl.ver = v
		c.clauses = append(c.clauses, cl)
	}
	return c, nil
}

// Matches reports whether the version have (e.g. "1.26.8", "go1.26.8",
// "12.2.1") satisfies every clause. A version that cannot be read matches
// only the empty constraint.
func (c Constraint) Matches(have string) bool {
	if len(c.clauses) == 0 {
		return true
	}
	h := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(have), "go"), "v")
	v, _ := parseVersion(h)
	if v == nil {
		return false
	}
	for _, cl := range c.clauses {
		if !cl.holds(v) {
			return false
		}
	}
	return true
}

func (cl clause) holds(v []int) bool {
	if cl.op == "" {
		if len(v) < len(cl.ver) {
			// "1.26" is 1.26.0: it has the prefix 1.26 but not 1.26.8.
			v = append(v, make([]int, len(cl.ver)-len(v))...)
		}
		return compare(v[:len(cl.ver)], cl.ver) == 0
	}
	c := compare(v, cl.ver)
	switch cl.op {
	case ">=":
		return c >= 0
	case ">":
		return c > 0
	case "<=":
		return c <= 0
	case "<":
		return c < 0
	default:
		return c == 0
	}
}

// compare orders versions component by component; missing components are 0.
func compare(a, b []int) int {
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// parseVersion reads leading dot-separated numbers ("1.26.8rc1" gives
// [1 26 8] and "rc1"); nil when s does not start with a digit.
func parseVersion(s string) ([]int, string) {
	var v []int
	for {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return nil, s
		}
		n, _ := strconv.Atoi(s[:i])
		v = append(v, n)
		s = s[i:]
		if len(s) < 2 || s[0] != '.' || s[1] < '0' || s[1] > '9' {
			return v, s
		}
		s = s[1:]
	}
}
