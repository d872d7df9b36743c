package policy

import (
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Form is a policy as a form asks for it: one kind of condition and its
// fields. Kind is "" or Immediate, "date", DeadMan or Quorum.
type Form struct {
	Kind      string
	On        time.Time // date: the release day (UTC)
	EveryDays int       // dead-man: check-in period in days
	GraceDays int       // dead-man: grace after a missed check-in, in days
}

// FromForm turns a form's choice into a policy. A quorum names its
// trustees, which a form does not ask for: it is refused with the command
// that deposits with one.
func FromForm(f Form) (Policy, error) {
	switch f.Kind {
	case "", Immediate:
		return Policy{Immediate: true}, nil
	case "date":
		if f.On.IsZero() {
			return Policy{}, errs.E(errs.Invalid, "a date policy needs a release date")
		}
		y, m, d := f.On.UTC().Date()
		return Policy{On: time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}, nil
	case DeadMan:
		if f.EveryDays <= 0 || f.GraceDays < 0 {
			return Policy{}, errs.E(errs.Invalid, "a dead-man policy needs check-in days and grace days")
		}
		day := 24 * time.Hour
		return Policy{DeadMan: &DeadManRule{Every: time.Duration(f.EveryDays) * day, Grace: time.Duration(f.GraceDays) * day}}, nil
	case Quorum:
		return Policy{}, errs.E(errs.Invalid, "a quorum policy names its trustees: deposit with `afterlife vendor deposit --policy quorum=K/N:alice,bob,…`")
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
