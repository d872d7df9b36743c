package web

import (
	"strconv"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// PolicySpec is the release policy as the deposit form sends it: the
// chosen kind and that kind's fields, as typed. Only the chosen kind's
// fields are read.
type PolicySpec struct {
	Kind string `json:"kind"` // immediate | date | dead-man | quorum
	// ReleaseAt is the date policy's release date and time in UTC, as a
	// datetime-local field gives it ("2027-06-30T15:00"), or RFC 3339.
	ReleaseAt string `json:"release_at,omitempty"`
	// CheckInEvery and Grace are the dead-man periods, each a whole
	// number of CheckInUnit and GraceUnit ("hours" or "days").
	CheckInEvery string `json:"checkin_every,omitempty"`
	CheckInUnit  string `json:"checkin_unit,omitempty"`
	Grace        string `json:"grace,omitempty"`
	GraceUnit    string `json:"grace_unit,omitempty"`
	// Quorum approvals of Trustees (one name each) release a quorum
	// policy.
	Quorum   string   `json:"quorum,omitempty"`
	Trustees []string `json:"trustees,omitempty"`
}

// choice reads the chosen kind's fields; the escrow checks the rest.
func (s PolicySpec) choice() (PolicyChoice, error) {
	c := PolicyChoice{Kind: s.Kind}
	var err error
	switch s.Kind {
	case "date":
		if c.ReleaseAt, err = releaseInstant(s.ReleaseAt); err != nil {
			return c, err
		}
	case "dead-man":
		if c.Every, err = period("the check-in period", s.CheckInEvery, s.CheckInUnit); err != nil {
			return c, err
		}
		if c.Grace, err = period("the grace period", s.Grace, s.GraceUnit); err != nil {
			return c, err
		}
	case "quorum":
		k, err := strconv.Atoi(strings.TrimSpace(s.Quorum))
		if err != nil {
			return c, errs.E(errs.Invalid, "the number of approvals needed must be a whole number")
		}
		c.Quorum = k
		for _, t := range s.Trustees {
			for _, name := range strings.FieldsFunc(t, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
				if name = strings.TrimSpace(name); name != "" {
					c.Trustees = append(c.Trustees, name)
				}
			}
		}
	}
	return c, nil
}

// releaseInstant reads a date policy's release time: a datetime-local
// value (no zone: the form says it is UTC) or RFC 3339.
func releaseInstant(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errs.E(errs.Invalid, "a date policy needs a release date and time")
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errs.E(errs.Invalid, "the release date and time %q: want a date and a time, e.g. 2027-06-30T15:00 (UTC)", s)
}

var units = map[string]time.Duration{"hours": time.Hour, "days": 24 * time.Hour}

// maxPeriod bounds a dead-man period before it is multiplied out, so a
// huge number cannot wrap around into a short one.
const maxPeriod = 100 * 366 * 24 * time.Hour

// period reads a whole number of hours or days.
func period(what, n, unit string) (time.Duration, error) {
	u, ok := units[unit]
	if !ok {
		return 0, errs.E(errs.Invalid, "%s: choose hours or days", what)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if err != nil || v < 0 {
		return 0, errs.E(errs.Invalid, "%s must be a whole number of %s", what, unit)
	}
	if v > int64(maxPeriod/u) {
		return 0, errs.E(errs.Invalid, "%s: longer than a century is more likely a typo than intent", what)
	}
	return time.Duration(v) * u, nil
}

// span says a period in words (policy.Span), "no" for none: "every 12
// hours, no grace".
func span(d time.Duration) string {
	if d <= 0 {
		return "no"
	}
	return policy.Span(d)
}
