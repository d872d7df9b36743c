package policy

import (
	"fmt"
	"strings"
	"time"
)

// Span says a period in words, as pages and the command line show
// dead-man periods: "30 days", "12 hours", "1 day 12 hours", "1 hour 30
// minutes"; "0 days" for none. Seconds are left out unless the period is
// shorter than a minute.
func Span(d time.Duration) string {
	if d <= 0 {
		return "0 days"
	}
	var parts []string
	for _, u := range []struct {
		one, many string
		d         time.Duration
	}{{"day", "days", 24 * time.Hour}, {"hour", "hours", time.Hour}, {"minute", "minutes", time.Minute}} {
		if n := d / u.d; n > 0 {
			name := u.many
			if n == 1 {
				name = u.one
			}
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
			d -= n * u.d
		}
	}
	if len(parts) == 0 {
		return d.String()
	}
	return strings.Join(parts, " ")
}
