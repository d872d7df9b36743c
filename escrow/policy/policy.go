// Package policy owns release policies: their text form ("immediate",
// "on=2027-01-01", "dead-man=30d,7d", "quorum=2/3:alice,bob,carol",
// combined with "+"), parsing it, and deciding at a given instant whether a
// sealed deposit is due for release.
//
// It is pure: no clock of its own, no database, no I/O. Callers pass the
// instant and the facts (seal time, last check-in, approvals).
package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Condition names, as recorded in the event log when one fires.
const (
	Immediate = "immediate"
	On        = "on"
	DeadMan   = "dead-man"
	Quorum    = "quorum"
)

// Policy is a set of conditions; the deposit releases when ANY fires.
type Policy struct {
	Immediate bool
	On        time.Time // zero: no date condition
	DeadMan   *DeadManRule
	Quorum    *QuorumRule
}

// DeadManRule releases when the vendor has not checked in for Every, plus
// Grace.
type DeadManRule struct {
	Every, Grace time.Duration
}

// QuorumRule releases when K of the named trustees approve.
type QuorumRule struct {
	K        int
	Trustees []string
}

// maxDuration bounds dead-man periods: beyond a century, a typo is likelier
// than intent.
const maxDuration = 100 * 365 * 24 * time.Hour

var trusteeName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidTrusteeName reports whether s can name a trustee.
func ValidTrusteeName(s string) bool { return trusteeName.MatchString(s) }

// Parse reads a policy: conditions separated by "+".
func Parse(s string) (Policy, error) {
	return ParseList(strings.Split(s, "+"))
}

// ParseList reads a policy given as a list of conditions (each may itself
// contain "+").
func ParseList(conds []string) (Policy, error) {
	var p Policy
	n := 0
	for _, c := range conds {
		for _, part := range strings.Split(c, "+") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if err := p.add(part); err != nil {
				return Policy{}, err
			}
			n++
		}
	}
	if n == 0 {
		return Policy{}, errs.E(errs.Invalid, "release policy is empty: give immediate, on=DATE, dead-man=EVERY,GRACE or quorum=K/N:NAMES")
	}
	return p, nil
}

func (p *Policy) add(c string) error {
	name, arg, hasArg := strings.Cut(c, "=")
	switch name {
	case Immediate:
		if hasArg {
			return errs.E(errs.Invalid, "policy %q: immediate takes no value", c)
		}
		p.Immediate = true
	case On:
		if !p.On.IsZero() {
			return errs.E(errs.Invalid, "policy %q: on= given twice", c)
		}
		t, err := parseDate(arg)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "policy %q", c)
		}
		p.On = t
	case DeadMan:
		if p.DeadMan != nil {
			return errs.E(errs.Invalid, "policy %q: dead-man= given twice", c)
		}
		every, grace, ok := strings.Cut(arg, ",")
		if !ok {
			return errs.E(errs.Invalid, "policy %q: want dead-man=EVERY,GRACE (e.g. 30d,7d)", c)
		}
		e, err := ParseDuration(every)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "policy %q", c)
		}
		g, err := ParseDuration(grace)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "policy %q", c)
		}
		if e <= 0 || g < 0 {
			return errs.E(errs.Invalid, "policy %q: the check-in period must be positive and the grace not negative", c)
		}
		p.DeadMan = &DeadManRule{Every: e, Grace: g}
	case Quorum:
		if p.Quorum != nil {
			return errs.E(errs.Invalid, "policy %q: quorum= given twice", c)
		}
		q, err := parseQuorum(arg)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "policy %q", c)
		}
		p.Quorum = q
	default:
		return errs.E(errs.Invalid, "policy %q: unknown condition (want immediate, on, dead-man or quorum)", c)
	}
	return nil
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errs.E(errs.Invalid, "date %q: want YYYY-MM-DD or RFC 3339", s)
	}
	return t.UTC(), nil
}

var durationRe = regexp.MustCompile(`^([0-9]{1,9})([wdhms])$`)

// ParseDuration reads "30d", "2w", "12h", "90m", "45s", or a Go duration
// ("1h30m").
func ParseDuration(s string) (time.Duration, error) {
	if m := durationRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64) // at most 9 digits
		unit := map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second}[m[2]]
		if n > int64(maxDuration/unit) {
			return 0, errs.E(errs.Invalid, "duration %q: longer than a century", s)
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errs.E(errs.Invalid, "duration %q: want a number and a unit (w, d, h, m, s)", s)
	}
	if d > maxDuration {
		return 0, errs.E(errs.Invalid, "duration %q: longer than a century", s)
	}
	return d, nil
}

func parseQuorum(s string) (*QuorumRule, error) {
	frac, names, ok := strings.Cut(s, ":")
	if !ok {
		return nil, errs.E(errs.Invalid, "want quorum=K/N:NAME,NAME,…")
	}
	ks, ns, ok := strings.Cut(frac, "/")
	if !ok {
		return nil, errs.E(errs.Invalid, "want quorum=K/N:NAME,NAME,…")
	}
	k, err1 := strconv.Atoi(ks)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || k < 1 || n < k || n > 100 {
		return nil, errs.E(errs.Invalid, "quorum %q: want 1 ≤ K ≤ N ≤ 100", frac)
	}
	list := strings.Split(names, ",")
	if len(list) != n {
		return nil, errs.E(errs.Invalid, "quorum names %d trustees, but N is %d", len(list), n)
	}
	seen := map[string]bool{}
	for _, t := range list {
		if !ValidTrusteeName(t) {
			return nil, errs.E(errs.Invalid, "trustee name %q: want [a-z0-9][a-z0-9._-]{0,63}", t)
		}
		if seen[t] {
			return nil, errs.E(errs.Invalid, "trustee %q named twice", t)
		}
		seen[t] = true
	}
	return &QuorumRule{K: k, Trustees: list}, nil
}

// String is the canonical text form; Parse(p.String()) equals p.
func (p Policy) String() string {
	var parts []string
	if p.Immediate {
		parts = append(parts, Immediate)
	}
	if !p.On.IsZero() {
		if p.On.Equal(p.On.Truncate(24 * time.Hour)) {
			parts = append(parts, "on="+p.On.Format(time.DateOnly))
		} else {
			parts = append(parts, "on="+p.On.Format(time.RFC3339))
		}
	}
	if p.DeadMan != nil {
		parts = append(parts, fmt.Sprintf("dead-man=%s,%s", formatDuration(p.DeadMan.Every), formatDuration(p.DeadMan.Grace)))
	}
	if p.Quorum != nil {
		parts = append(parts, fmt.Sprintf("quorum=%d/%d:%s", p.Quorum.K, len(p.Quorum.Trustees), strings.Join(p.Quorum.Trustees, ",")))
	}
	return strings.Join(parts, "+")
}

func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		s string
		d time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return d.String()
}

// HasTrustee reports whether name is one of the quorum's trustees.
func (p Policy) HasTrustee(name string) bool {
	return p.Quorum != nil && slices.Contains(p.Quorum.Trustees, name)
}

// Facts are what a decision needs besides the policy.
type Facts struct {
	Now         time.Time
	SealedAt    time.Time
	LastCheckin time.Time // zero: never checked in
	Approvals   []string  // distinct trustees whose approval verified
}

// DeadManDeadline is the instant a dead-man rule fires: the later of the
// seal and the last check-in, plus the period, plus the grace.
func (r DeadManRule) Deadline(sealedAt, lastCheckin time.Time) time.Time {
	base := sealedAt
	if lastCheckin.After(base) {
		base = lastCheckin
	}
	return base.Add(r.Every).Add(r.Grace)
}

// DeadManDeadlineFrom is when the dead-man rule fires for a deposit sealed
// at sealedAt that is never checked in for; zero without a dead-man rule.
func (p Policy) DeadManDeadlineFrom(sealedAt time.Time) time.Time {
	if p.DeadMan == nil {
		return time.Time{}
	}
	return p.DeadMan.Deadline(sealedAt, time.Time{})
}

// NextDeadline is the earliest instant a rule of time fires (the date, or
// the dead-man deadline after sealedAt and lastCheckin) and which rule it
// is; zero and "" when no rule is of time (immediate already fired; a
// quorum waits for people).
func (p Policy) NextDeadline(sealedAt, lastCheckin time.Time) (time.Time, string) {
	var at time.Time
	var rule string
	if !p.On.IsZero() {
		at, rule = p.On, On
	}
	if p.DeadMan != nil {
		if d := p.DeadMan.Deadline(sealedAt, lastCheckin); at.IsZero() || d.Before(at) {
			at, rule = d, DeadMan
		}
	}
	return at, rule
}

// Due reports the first condition that fires at f.Now, or "" when none
// does. The order is fixed (immediate, on, dead-man, quorum) so the event
// log names the same condition on every replica.
func (p Policy) Due(f Facts) string {
	if p.Immediate {
		return Immediate
	}
	if !p.On.IsZero() && !f.Now.Before(p.On) {
		return On
	}
	if p.DeadMan != nil && !f.Now.Before(p.DeadMan.Deadline(f.SealedAt, f.LastCheckin)) {
		return DeadMan
	}
	if p.Quorum != nil {
		n := 0
		for _, a := range f.Approvals {
			if p.HasTrustee(a) {
				n++
			}
		}
		if n >= p.Quorum.K {
			return Quorum
		}
	}
	return ""
}

// ApprovalMessage is what a trustee signs (ed25519) to approve the release
// of a deposit: it names the deposit and the exact manifest approved.
func ApprovalMessage(depositID, manifestDigest string) []byte {
	return []byte("afterlife-approve:v1:" + depositID + ":" + manifestDigest)
}
