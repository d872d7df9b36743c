package policy

import (
	"testing"
	"time"
)

func TestPeriodsReadInWords(t *testing.T) {
	for _, c := range []struct {
		name string
		d    time.Duration
		want string
	}{
		{"whole days say days", 30 * 24 * time.Hour, "30 days"},
		{"one day is singular", 24 * time.Hour, "1 day"},
		{"less than a day says hours", 12 * time.Hour, "12 hours"},
		{"a day and hours say both", 36 * time.Hour, "1 day 12 hours"},
		{"minutes are kept", 90 * time.Minute, "1 hour 30 minutes"},
		{"none is zero days", 0, "0 days"},
		{"under a minute says seconds", 45 * time.Second, "45s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Span(c.d); got != c.want {
				t.Errorf("Span(%s) = %q, want %q", c.d, got, c.want)
			}
		})
	}
}
