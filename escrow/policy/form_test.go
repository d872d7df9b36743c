package policy

import (
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestAFormsChoiceBecomesThePolicyText(t *testing.T) {
	for _, c := range []struct {
		name string
		form Form
		want string
		bad  bool
	}{
		{"no choice releases immediately", Form{}, "immediate", false},
		{"a date keeps only its UTC day", Form{Kind: "date", On: time.Date(2027, 3, 4, 23, 30, 0, 0, time.UTC)}, "on=2027-03-04", false},
		{"a dead-man rule counts days", Form{Kind: DeadMan, EveryDays: 30, GraceDays: 7}, "dead-man=30d,7d", false},
		{"a dead-man rule may have no grace", Form{Kind: DeadMan, EveryDays: 1}, "dead-man=1d,0d", false},
		{"a date needs a day", Form{Kind: "date"}, "", true},
		{"a dead-man rule needs a period", Form{Kind: DeadMan, GraceDays: 3}, "", true},
		{"a quorum needs its trustees, which a form does not ask for", Form{Kind: Quorum}, "", true},
		{"an unknown kind is refused", Form{Kind: "whenever"}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := FromForm(c.form)
			if c.bad {
				if !errs.Is(err, errs.Invalid) {
					t.Fatalf("err = %v, want kind %v", err, errs.Invalid)
				}
				return
			}
			if err != nil || p.String() != c.want {
				t.Fatalf("FromForm = %q, %v; want %q", p.String(), err, c.want)
			}
			back, err := Parse(p.String())
			if err != nil || back.Kind() != p.Kind() {
				t.Fatalf("Parse(%q) = %+v, %v", p.String(), back, err)
			}
		})
	}
}
