package policy

import (
	"testing"
	"time"
)

func TestParseRoundTrips(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"immediate alone is kept", "immediate", "immediate"},
		{"a date is kept", "on=2027-01-01", "on=2027-01-01"},
		{"an RFC 3339 instant is kept", "on=2027-01-01T10:00:00Z", "on=2027-01-01T10:00:00Z"},
		{"a dead-man rule is kept", "dead-man=30d,7d", "dead-man=30d,7d"},
		{"weeks become days", "dead-man=2w,0s", "dead-man=14d,0d"},
		{"a quorum is kept", "quorum=2/3:alice,bob,carol", "quorum=2/3:alice,bob,carol"},
		{"combined conditions come out in a fixed order", "quorum=1/1:al+on=2030-05-01+dead-man=1d,1h", "on=2030-05-01+dead-man=1d,1h+quorum=1/1:al"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{"", "+", "never", "immediate=1", "on=tomorrow", "on=2027-13-01",
		"dead-man=30d", "dead-man=0d,1d", "dead-man=30x,1d", "dead-man=99999999d,1d",
		"quorum=2/3:a,b", "quorum=4/3:a,b,c", "quorum=0/1:a", "quorum=1/2:a,a", "quorum=1/1:Alice",
		"on=2027-01-01+on=2028-01-01"} {
		t.Run("the policy "+in+" is refused", func(t *testing.T) {
			if _, err := Parse(in); err == nil {
				t.Fatalf("Parse(%q) accepted", in)
			}
		})
	}
}

func TestDueFiresExactlyAtItsCondition(t *testing.T) {
	sealed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must := func(s string) Policy {
		p, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		policy string
		facts  Facts
		want   string
	}{
		{"immediate fires at once", "immediate", Facts{Now: sealed}, Immediate},
		{"a date does not fire a nanosecond before", "on=2027-01-01", Facts{Now: time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)}, ""},
		{"a date fires at its instant", "on=2027-01-01", Facts{Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, On},
		{"dead-man does not fire before period plus grace", "dead-man=30d,7d", Facts{SealedAt: sealed, Now: sealed.Add(37*24*time.Hour - 1)}, ""},
		{"dead-man fires at period plus grace after sealing", "dead-man=30d,7d", Facts{SealedAt: sealed, Now: sealed.Add(37 * 24 * time.Hour)}, DeadMan},
		{"a check-in postpones dead-man", "dead-man=30d,7d", Facts{SealedAt: sealed, LastCheckin: sealed.Add(10 * 24 * time.Hour), Now: sealed.Add(37 * 24 * time.Hour)}, ""},
		{"dead-man counts from the last check-in", "dead-man=30d,7d", Facts{SealedAt: sealed, LastCheckin: sealed.Add(10 * 24 * time.Hour), Now: sealed.Add(47 * 24 * time.Hour)}, DeadMan},
		{"a quorum short of K does not fire", "quorum=2/3:a,b,c", Facts{Approvals: []string{"a"}}, ""},
		{"approvals of strangers do not count", "quorum=2/3:a,b,c", Facts{Approvals: []string{"a", "z"}}, ""},
		{"the K-th approval fires", "quorum=2/3:a,b,c", Facts{Approvals: []string{"a", "c"}}, Quorum},
		{"any condition of a combination fires", "on=2030-01-01+quorum=1/1:a", Facts{Now: sealed, Approvals: []string{"a"}}, Quorum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := must(tt.policy).Due(tt.facts); got != tt.want {
				t.Fatalf("Due = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"immediate", "on=2027-01-01", "dead-man=30d,7d", "quorum=2/3:a,b,c", "a+b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		q, err := Parse(p.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", p.String(), s, err)
		}
		if q.String() != p.String() {
			t.Fatalf("round trip %q → %q", p.String(), q.String())
		}
	})
}

func TestNextDeadlineIsTheEarliestRuleOfTime(t *testing.T) {
	sealed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	checkin := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, policy string
		checkin      time.Time
		want         time.Time
		rule         string
	}{
		{"a date is its own deadline", "on=2027-06-30", time.Time{}, time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC), On},
		{"a dead-man deadline counts from the seal without a check-in", "dead-man=30d,7d", time.Time{}, sealed.Add(37 * 24 * time.Hour), DeadMan},
		{"a dead-man deadline counts from the last check-in", "dead-man=30d,7d", checkin, checkin.Add(37 * 24 * time.Hour), DeadMan},
		{"the earlier of a date and a dead-man deadline wins", "on=2026-02-01+dead-man=30d,7d", time.Time{}, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), On},
		{"a quorum has no deadline", "quorum=1/1:alice", time.Time{}, time.Time{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			at, rule := p.NextDeadline(sealed, tc.checkin)
			if !at.Equal(tc.want) || rule != tc.rule {
				t.Fatalf("NextDeadline = %s %q, want %s %q", at, rule, tc.want, tc.rule)
			}
		})
	}
}
