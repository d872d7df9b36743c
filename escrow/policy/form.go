package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Form is a policy as a form asks for it: one kind of condition and its
// fields. Kind is "" or Immediate, "date", DeadMan or Quorum.
type Form struct {
	Kind string
	On   time.Time // date: the release instant (kept to the minute, in UTC)
	// Every and Grace are the dead-man check-in period and the grace
	// after a missed check-in; a form may take them in hours or days.
	Every, Grace time.Duration
	Quorum       int      // quorum: approvals needed (k)
	Trustees     []string // quorum: the trustees who may approve (n)
}

// FromForm turns a form's choice into a policy, checked by the same rules
// as the policy's text form.
func FromForm(f Form) (Policy, error) {
	switch f.Kind {
	case "", Immediate:
		return Policy{Immediate: true}, nil
	case "date":
		if f.On.IsZero() {
			return Policy{}, errs.E(errs.Invalid, "a date policy needs a release date and time")
		}
		return Policy{On: f.On.UTC().Truncate(time.Minute)}, nil
	case DeadMan:
		if f.Every <= 0 || f.Grace < 0 {
			return Policy{}, errs.E(errs.Invalid, "a dead-man policy needs a check-in period (more than zero) and a grace period (zero or more)")
		}
		if f.Every > maxDuration || f.Grace > maxDuration {
			return Policy{}, errs.E(errs.Invalid, "a dead-man period longer than a century is more likely a typo than intent")
		}
		return Policy{DeadMan: &DeadManRule{Every: f.Every, Grace: f.Grace}}, nil
	case Quorum:
		var names []string
		for _, t := range f.Trustees {
			if t = strings.TrimSpace(t); t != "" {
				names = append(names, t)
			}
		}
		if len(names) == 0 {
			return Policy{}, errs.E(errs.Invalid, "a quorum policy names its trustees: one per line")
		}
		if f.Quorum < 1 || f.Quorum > len(names) {
			return Policy{}, errs.E(errs.Invalid, "a quorum needs between 1 and %d approvals (the number of trustees named), not %d", len(names), f.Quorum)
		}
		q, err := parseQuorum(fmt.Sprintf("%d/%d:%s", f.Quorum, len(names), strings.Join(names, ",")))
		if err != nil {
			return Policy{}, err
		}
		return Policy{Quorum: q}, nil
	}
	return Policy{}, errs.E(errs.Invalid, "unknown policy %q", f.Kind)
}

// Kind names the policy's main condition for a reader, in the order that
// matters most to one: "quorum", "dead-man", "date" or "immediate".
func (p Policy) Kind() string {
	switch {
	case p.Quorum != nil:
		return Quorum
	case p.DeadMan != nil:
		return DeadMan
	case !p.On.IsZero():
		return "date"
	}
	return Immediate
}
