// Package constraint is the one grammar of toolchain version constraints:
// what a recipe may write in toolchain.version, and which toolchain
// versions satisfy it. Recipe lint, the farm's matching of jobs to
// builders and the builder's choice among its detected toolchains all read
// constraints here, so they cannot disagree.
//
// It is a format package: no I/O, no server code, nothing but the standard
// library, so the builder agent can import it. Firmware release versions
// are another grammar (registry/version).
package constraint

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxLen bounds a constraint's text.
const MaxLen = 64

// Constraint is a parsed constraint: clauses that must all hold. The zero
// Constraint matches every version.
type Constraint struct {
	clauses []clause
}

type clause struct {
	op  string // "" (prefix), ">=", ">", "<=", "<", "="
	ver []int
}

// ops in the order they are tried, longest first.
var ops = []string{">=", "<=", ">", "<", "="}

// Parse reads a constraint: empty or "*" (any version), or clauses joined
// by commas, each a version of dot-separated decimal numbers with an
// optional operator. "1.26" (no operator) is a prefix: 1.26 and every
// 1.26.x, not 1.27 and not a pre-release of 1.26 itself; ">=1.25", ">1.25",
// "<=1.27", "<1.27" and "=1.26.8" compare component by component, missing
// components counting as 0. Spaces around clauses and operators are
// ignored.
func Parse(s string) (Constraint, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return Constraint{}, nil
	}
	if len(s) > MaxLen {
		return Constraint{}, fmt.Errorf("constraint is longer than %d characters", MaxLen)
	}
	var c Constraint
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		var cl clause
		for _, op := range ops {
			if rest, ok := strings.CutPrefix(part, op); ok {
				cl.op, part = op, strings.TrimSpace(rest)
				break
			}
		}
		v, rest := numbers(part)
		if v == nil || rest != "" {
			return Constraint{}, fmt.Errorf("%q is not a version constraint like \"1.26\", \">=1.25\" or \">=1.25,<1.27\"", s)
		}
		cl.ver = v
		c.clauses = append(c.clauses, cl)
	}
	return c, nil
}

// Satisfies reports whether version satisfies constraint; a constraint
// that does not parse is satisfied by nothing.
func Satisfies(version, constraint string) bool {
	c, err := Parse(constraint)
	return err == nil && c.Matches(version)
}

// Matches reports whether a toolchain's version satisfies every clause.
// The version is what the toolchain reports: an optional "go" or "v",
// dot-separated decimal numbers, then optionally a suffix. A suffix that
// starts with a letter or '-' ("1.26rc1", "2.0-beta") makes it a
// pre-release, ordered just before the release its numbers name; any other
// suffix (" 20221205", "+local") is ignored. A version that cannot be read
// matches only the empty constraint.
func (c Constraint) Matches(version string) bool {
	if len(c.clauses) == 0 {
		return true
	}
	v, ok := read(version)
	if !ok {
		return false
	}
	for _, cl := range c.clauses {
		if !cl.holds(v) {
			return false
		}
	}
	return true
}

// version is a toolchain version as read by read.
type version struct {
	nums []int
	pre  bool
}

func read(s string) (version, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "go")
	s = strings.TrimPrefix(s, "v")
	nums, rest := numbers(s)
	if nums == nil {
		return version{}, false
	}
	pre := rest != "" && (rest[0] == '-' || 'a' <= rest[0] && rest[0] <= 'z' || 'A' <= rest[0] && rest[0] <= 'Z')
	return version{nums: nums, pre: pre}, true
}

// compare orders v against the release r: numbers first (missing
// components are 0), then a pre-release before its release.
func compare(v version, r []int) int {
	if c := compareNums(v.nums, r); c != 0 {
		return c
	}
	if v.pre {
		return -1
	}
	return 0
}

func (cl clause) holds(v version) bool {
	c := compare(v, cl.ver)
	switch cl.op {
	case "":
		// A prefix: the leading components are cl.ver (a missing one is
		// 0: "1.26" is 1.26.0), and it is not a pre-release of cl.ver.
		head := v.nums
		if len(head) < len(cl.ver) {
			head = append(head[:len(head):len(head)], make([]int, len(cl.ver)-len(head))...)
		}
		return compareNums(head[:len(cl.ver)], cl.ver) == 0 && c >= 0
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

func compareNums(a, b []int) int {
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

// numbers reads leading dot-separated decimal numbers of at most 9 digits
// each ("1.26.8rc1" gives [1 26 8] and "rc1"); nil when s does not start
// with a digit or a number is longer.
func numbers(s string) ([]int, string) {
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
