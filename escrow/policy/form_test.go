package policy

import (
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestAFormsChoiceBecomesThePolicyText(t *testing.T) {
	const day = 24 * time.Hour
	for _, c := range []struct {
		name string
		form Form
		want string
		bad  bool
	}{
		{"no choice releases immediately", Form{}, "immediate", false},
		{"a date keeps its time, in UTC, to the minute", Form{Kind: "date", On: time.Date(2027, 3, 4, 23, 30, 15, 0, time.FixedZone("CET", 3600))}, "on=2027-03-04T22:30:00Z", false},
		{"a date at midnight UTC reads as a day", Form{Kind: "date", On: time.Date(2027, 3, 4, 0, 0, 0, 0, time.UTC)}, "on=2027-03-04", false},
		{"a dead-man rule counts days", Form{Kind: DeadMan, Every: 30 * day, Grace: 7 * day}, "dead-man=30d,7d", false},
		{"a dead-man rule may be shorter than a day", Form{Kind: DeadMan, Every: 12 * time.Hour, Grace: 6 * time.Hour}, "dead-man=12h,6h", false},
		{"a dead-man rule may have no grace", Form{Kind: DeadMan, Every: day}, "dead-man=1d,0d", false},
		{"a quorum names k of its trustees", Form{Kind: Quorum, Quorum: 2, Trustees: []string{"alice", " bob ", "", "carol"}}, "quorum=2/3:alice,bob,carol", false},
		{"a date needs a day", Form{Kind: "date"}, "", true},
		{"a dead-man rule needs a period", Form{Kind: DeadMan, Grace: 3 * day}, "", true},
		{"a dead-man rule of more than a century is refused", Form{Kind: DeadMan, Every: 101 * 365 * day}, "", true},
		{"a quorum without trustees is refused", Form{Kind: Quorum, Quorum: 1}, "", true},
		{"a quorum asking more approvals than trustees is refused", Form{Kind: Quorum, Quorum: 3, Trustees: []string{"alice", "bob"}}, "", true},
		{"a trustee named twice is refused", Form{Kind: Quorum, Quorum: 1, Trustees: []string{"alice", "alice"}}, "", true},
		{"a trustee name with a space is refused", Form{Kind: Quorum, Quorum: 1, Trustees: []string{"Alice Smith"}}, "", true},
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
