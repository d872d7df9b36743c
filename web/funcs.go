package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

func (s *Site) funcs() template.FuncMap {
	md := newMarkdown()
	return template.FuncMap{
		"markdown": md.render,
		"date": func(t time.Time) string {
			if t.IsZero() {
				return "not announced"
			}
			return t.UTC().Format("2 Jan 2006")
		},
		"supportdate": supportDate,
		"formdate":    formDate,
		"supportfields": func(id string, s SupportDates) supportFields {
			return supportFields{ID: id, S: s}
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"datetime": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2 Jan 2006 15:04 UTC")
		},
		"ago":    func(t time.Time) string { return ago(s.opts.Now(), t) },
		"size":   humanSize,
		"short":  func(h string) string { return shorten(h, 12) },
		"join":   strings.Join,
		"add":    func(a, b int) int { return a + b },
		"past":   func(t time.Time) bool { return !t.IsZero() && t.Before(s.opts.Now()) },
		"chart":  func(c Chart) chartView { return c.layout() },
		"svgnum": svgNum,
	}
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// humanSize prints bytes in binary units, e.g. "1.5 MiB".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago says how long ago (or how far ahead) t is, in the largest whole unit.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	suffix := "ago"
	if d < 0 {
		d, suffix = -d, "from now"
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " " + suffix
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " " + suffix
	default:
		return plural(int(d/(24*time.Hour)), "day") + " " + suffix
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
