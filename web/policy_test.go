package web_test

import (
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/web"
)

func TestPoliciesReadInWordsWithTheirHoursAndTimeOfDay(t *testing.T) {
	const day = 24 * time.Hour
	for _, c := range []struct {
		name string
		p    web.Policy
		want string
	}{
		{"a dead-man policy of days", web.Policy{Kind: "dead-man", Every: 30 * day, Grace: 7 * day}, "Released if the vendor misses a check-in (every 30 days, 7 days grace)."},
		{"a dead-man policy under a day says hours", web.Policy{Kind: "dead-man", Every: 12 * time.Hour, Grace: 6 * time.Hour}, "Released if the vendor misses a check-in (every 12 hours, 6 hours grace)."},
		{"a period of a day and hours says both", web.Policy{Kind: "dead-man", Every: 36 * time.Hour, Grace: time.Hour}, "Released if the vendor misses a check-in (every 1 day 12 hours, 1 hour grace)."},
		{"no grace says so", web.Policy{Kind: "dead-man", Every: day}, "Released if the vendor misses a check-in (every 1 day, no grace)."},
		{"minutes from the command line still read", web.Policy{Kind: "dead-man", Every: 90 * time.Minute}, "Released if the vendor misses a check-in (every 1 hour 30 minutes, no grace)."},
		{"a date says its time of day and zone", web.Policy{Kind: "date", ReleaseAt: time.Date(2031, 6, 30, 15, 30, 0, 0, time.UTC)}, "Released on 30 June 2031 at 15:30 UTC."},
		{"a date in another zone is said in UTC", web.Policy{Kind: "date", ReleaseAt: time.Date(2031, 7, 1, 1, 0, 0, 0, time.FixedZone("AEST", 10*3600))}, "Released on 30 June 2031 at 15:00 UTC."},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.Summary(); got != c.want {
				t.Errorf("Summary() = %q, want %q", got, c.want)
			}
		})
	}
}

func TestTheDepositFormsPolicyFieldsAreReadByTheServer(t *testing.T) {
	for _, c := range []struct {
		name string
		spec web.PolicySpec
		want web.PolicyChoice
		bad  bool
	}{
		{"hours are hours", web.PolicySpec{Kind: "dead-man", CheckInEvery: "12", CheckInUnit: "hours", Grace: "6", GraceUnit: "hours"},
			web.PolicyChoice{Kind: "dead-man", Every: 12 * time.Hour, Grace: 6 * time.Hour}, false},
		{"days are days", web.PolicySpec{Kind: "dead-man", CheckInEvery: " 30 ", CheckInUnit: "days", Grace: "0", GraceUnit: "days"},
			web.PolicyChoice{Kind: "dead-man", Every: 30 * 24 * time.Hour}, false},
		{"a datetime-local value is UTC", web.PolicySpec{Kind: "date", ReleaseAt: "2031-06-30T15:30"},
			web.PolicyChoice{Kind: "date", ReleaseAt: time.Date(2031, 6, 30, 15, 30, 0, 0, time.UTC)}, false},
		{"trustees come one a line", web.PolicySpec{Kind: "quorum", Quorum: "2", Trustees: []string{"alice\r\nbob\n\n carol "}},
			web.PolicyChoice{Kind: "quorum", Quorum: 2, Trustees: []string{"alice", "bob", "carol"}}, false},
		{"another policy's fields are not read", web.PolicySpec{Kind: "immediate", CheckInEvery: "x", ReleaseAt: "never"}, web.PolicyChoice{Kind: "immediate"}, false},
		{"a unit other than hours or days is refused", web.PolicySpec{Kind: "dead-man", CheckInEvery: "12", CheckInUnit: "weeks", Grace: "1", GraceUnit: "days"}, web.PolicyChoice{}, true},
		{"a fraction is refused", web.PolicySpec{Kind: "dead-man", CheckInEvery: "1.5", CheckInUnit: "days", Grace: "1", GraceUnit: "days"}, web.PolicyChoice{}, true},
		{"a period that would overflow is refused", web.PolicySpec{Kind: "dead-man", CheckInEvery: "2562048", CheckInUnit: "hours", Grace: "1", GraceUnit: "days"}, web.PolicyChoice{}, true},
		{"a number of days past a century is refused", web.PolicySpec{Kind: "dead-man", CheckInEvery: "9223372036854775807", CheckInUnit: "days", Grace: "1", GraceUnit: "days"}, web.PolicyChoice{}, true},
		{"a negative grace is refused", web.PolicySpec{Kind: "dead-man", CheckInEvery: "1", CheckInUnit: "days", Grace: "-1", GraceUnit: "days"}, web.PolicyChoice{}, true},
		{"a date without a time is refused", web.PolicySpec{Kind: "date", ReleaseAt: "30/06/2031"}, web.PolicyChoice{}, true},
		{"an empty date is refused", web.PolicySpec{Kind: "date"}, web.PolicyChoice{}, true},
		{"approvals that are not a number are refused", web.PolicySpec{Kind: "quorum", Quorum: "two", Trustees: []string{"alice"}}, web.PolicyChoice{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := web.PolicyChoiceOf(c.spec)
			if c.bad {
				if err == nil {
					t.Fatalf("accepted as %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != c.want.Kind || got.Every != c.want.Every || got.Grace != c.want.Grace || !got.ReleaseAt.Equal(c.want.ReleaseAt) ||
				got.Quorum != c.want.Quorum || len(got.Trustees) != len(c.want.Trustees) {
				t.Fatalf("read as %+v, want %+v", got, c.want)
			}
			for i := range got.Trustees {
				if got.Trustees[i] != c.want.Trustees[i] {
					t.Fatalf("trustees %q, want %q", got.Trustees, c.want.Trustees)
				}
			}
		})
	}
}

func FuzzTheDepositFormsPolicyFields(f *testing.F) {
	f.Add("dead-man", "12", "hours", "6", "days", "", "", "")
	f.Add("date", "", "", "", "", "2031-06-30T15:30", "", "")
	f.Add("quorum", "", "", "", "", "", "2", "alice\nbob,carol")
	f.Add("dead-man", "9223372036854775807", "days", "2562048", "hours", "", "", "")
	f.Fuzz(func(t *testing.T, kind, every, everyUnit, grace, graceUnit, releaseAt, quorum, trustees string) {
		c, err := web.PolicyChoiceOf(web.PolicySpec{Kind: kind, CheckInEvery: every, CheckInUnit: everyUnit, Grace: grace, GraceUnit: graceUnit,
			ReleaseAt: releaseAt, Quorum: quorum, Trustees: []string{trustees}})
		if err != nil {
			return
		}
		if c.Every < 0 || c.Grace < 0 || c.Every > 101*365*24*time.Hour || c.Grace > 101*365*24*time.Hour {
			t.Fatalf("a negative or wrapped-around period was accepted: %+v", c)
		}
		if kind == "date" && c.ReleaseAt.IsZero() {
			t.Fatalf("a date policy was accepted without a date: %+v", c)
		}
		for _, name := range c.Trustees {
			if name == "" {
				t.Fatalf("an empty trustee name was accepted: %q", c.Trustees)
			}
		}
	})
}
