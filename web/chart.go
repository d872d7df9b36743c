package web

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Chart is a small bar chart the pages draw as SVG on the server: one bar
// per label, its series stacked bottom up. No script draws it; the
// "chart" template renders the geometry chartLayout computes, with a
// <title> and <desc>, a legend in words and the numbers in a table for
// screen readers.
type Chart struct {
	ID     string // unique in the page; prefixes the ids of its title and description
	Title  string // what it shows, short
	Desc   string // one or two sentences: what the bars are and what they say
	Unit   string // of the values, e.g. "installs", "jobs", "minutes"
	Max    float64
	Labels []string // one per bar, short: drawn under the bars
	// Long, when set, names each bar in the table of numbers (default
	// Labels); LabelHead heads that column.
	Long      []string
	LabelHead string
	Series    []ChartSeries
	// Empty is said in place of the bars when there is nothing to draw.
	Empty string
}

// ChartSeries is one kind of value, stacked in every bar. Class picks its
// colour in site.css: ok, bad, warn, accent or muted.
type ChartSeries struct {
	Name   string
	Class  string
	Values []float64 // one per label; missing or negative ones count as 0
}

// The chart's drawing area, in SVG user units; the SVG scales to its
// container's width.
const (
	chartW, chartH        = 400.0, 200.0
	chartLeft, chartRight = 36.0, 6.0
	chartTop, chartBottom = 10.0, 28.0
	chartPlotW            = chartW - chartLeft - chartRight
	chartPlotH            = chartH - chartTop - chartBottom
	chartBaseline         = chartTop + chartPlotH
	chartMaxLabels        = 6   // x labels drawn at most; the table has them all
	chartBarShare         = 0.7 // of a bar's slot; the rest is the gap
	chartMinBarW          = 1.0
	chartMaxBarW          = 40.0 // a few bars stay bars, not blocks
	chartTextSize         = 12.0
	chartNoData           = "No data yet."
)

// chartRect is one drawn bar segment.
type chartRect struct {
	X, Y, W, H float64
	Class      string
	Title      string // its value in words, shown on hover
}

// chartText is a label placed on the chart.
type chartText struct {
	X, Y float64
	Text string
}

// chartView is what the "chart" template draws.
type chartView struct {
	Chart
	W, H, Left, Right, Top, Baseline float64
	Bars                             []chartRect
	XLabels, YLabels                 []chartText
	Grid                             []float64 // y of the horizontal lines
	YMax                             float64
	IsEmpty                          bool
	EmptyX, EmptyY                   float64
	Rows                             []chartRow // the numbers, for the table
}

// chartRow is one bar's numbers.
type chartRow struct {
	Label  string
	Values []string
}

// layout computes where everything goes.
func (c Chart) layout() chartView {
	v := chartView{Chart: c, W: chartW, H: chartH, Left: chartLeft, Right: chartW - chartRight, Top: chartTop, Baseline: chartBaseline,
		EmptyX: chartLeft + chartPlotW/2, EmptyY: chartTop + chartPlotH/2}
	if v.Empty == "" {
		v.Empty = chartNoData
	}
	n := len(c.Labels)
	total := make([]float64, n)
	for _, s := range c.Series {
		for i := 0; i < n && i < len(s.Values); i++ {
			total[i] += clean(s.Values[i])
		}
	}
	for i, l := range c.Labels {
		if i < len(c.Long) {
			l = c.Long[i]
		}
		row := chartRow{Label: l}
		for _, s := range c.Series {
			val := 0.0
			if i < len(s.Values) {
				val = clean(s.Values[i])
			}
			row.Values = append(row.Values, number(val))
		}
		v.Rows = append(v.Rows, row)
	}
	top := 0.0
	for _, t := range total {
		top = math.Max(top, t)
	}
	if n == 0 || (top == 0 && c.Max == 0) {
		v.IsEmpty = true
		return v
	}
	v.YMax = c.Max
	if v.YMax <= 0 || v.YMax < top {
		v.YMax = niceCeil(top)
	}
	whole := true // counts: no "0.5 installs" on the axis
	for _, sr := range c.Series {
		for _, x := range sr.Values {
			whole = whole && clean(x) == math.Trunc(clean(x))
		}
	}
	for _, f := range []float64{0, 0.5, 1} {
		y := chartBaseline - f*chartPlotH
		v.Grid = append(v.Grid, y)
		if at := f * v.YMax; !whole || at == math.Trunc(at) {
			v.YLabels = append(v.YLabels, chartText{X: chartLeft - 6, Y: y + chartTextSize/3, Text: number(at)})
		}
	}
	slot := chartPlotW / float64(n)
	bw := math.Min(math.Max(slot*chartBarShare, chartMinBarW), chartMaxBarW)
	step := (n + chartMaxLabels - 1) / chartMaxLabels
	for i := range n {
		x := chartLeft + float64(i)*slot + (slot-bw)/2
		y := chartBaseline
		for _, s := range c.Series {
			if i >= len(s.Values) {
				continue
			}
			val := clean(s.Values[i])
			if val == 0 {
				continue
			}
			h := val / v.YMax * chartPlotH
			y -= h
			v.Bars = append(v.Bars, chartRect{X: x, Y: y, W: bw, H: h, Class: s.Class, Title: c.Labels[i] + ": " + number(val) + " " + s.Name})
		}
		if i%step == 0 {
			v.XLabels = append(v.XLabels, chartText{X: x + bw/2, Y: chartBaseline + 18, Text: c.Labels[i]})
		}
	}
	return v
}

func clean(f float64) float64 {
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// niceCeil is the smallest of 1, 2, 2.5 or 5 times a power of ten that is
// at least f (and at least 1), so the axis reads in round numbers and
// halves.
func niceCeil(f float64) float64 {
	if f <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(f)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= f {
			return m * p
		}
	}
	return 10 * p
}

// number prints a value to at most two decimals, without needless ones
// (an axis of 2.5 is halved at 1.25).
func number(f float64) string {
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// svgNum prints a coordinate for an SVG attribute.
func svgNum(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// --- the pages' charts ---

// ReportsChart draws a release's install reports per day.
func (r Release) ReportsChart() Chart {
	c := Chart{ID: "reports-" + r.Version, Title: "Install reports for version " + r.Version + ", per day",
		Unit: "installs", Empty: "No install reports yet.", LabelHead: "Day (UTC)"}
	ok := ChartSeries{Name: "worked", Class: "ok"}
	failed := ChartSeries{Name: "failed", Class: "bad"}
	back := ChartSeries{Name: "failed, device went back to its previous firmware", Class: "warn"}
	var sums [3]int
	for _, d := range r.ReportDays {
		c.Labels = append(c.Labels, d.Day.UTC().Format("2 Jan"))
		ok.Values = append(ok.Values, float64(d.Success))
		failed.Values = append(failed.Values, float64(d.Failure))
		back.Values = append(back.Values, float64(d.RolledBack))
		sums[0], sums[1], sums[2] = sums[0]+d.Success, sums[1]+d.Failure, sums[2]+d.RolledBack
	}
	c.Series = []ChartSeries{ok, failed, back}
	c.Desc = fmt.Sprintf("Devices that installed version %s and said how it went, per day (UTC): %s worked, %s failed, %s failed and went back to the firmware they ran before.",
		r.Version, plural(sums[0], "install"), plural(sums[1], "install"), plural(sums[2], "install"))
	return c
}

// RolloutChart draws how far a phased rollout went through its stages.
func (r Release) RolloutChart() Chart {
	c := Chart{ID: "rollout-" + r.Version, Title: "Rollout of version " + r.Version + " in stages", Unit: "% of devices", Max: 100, LabelHead: "Stage"}
	reached := ChartSeries{Name: "% of devices, stage reached", Class: "ok"}
	coming := ChartSeries{Name: "% of devices, stage still to come", Class: "muted"}
	last := 0
	for i, s := range r.Stages {
		c.Labels = append(c.Labels, fmt.Sprintf("Stage %d", i+1))
		c.Long = append(c.Long, fmt.Sprintf("Stage %d, from %s UTC", i+1, s.StartsAt.UTC().Format("2 Jan 2006 15:04")))
		if s.Reached {
			reached.Values, coming.Values = append(reached.Values, float64(s.Percent)), append(coming.Values, 0)
			last = i + 1
		} else {
			reached.Values, coming.Values = append(reached.Values, 0), append(coming.Values, float64(s.Percent))
		}
	}
	c.Series = []ChartSeries{reached, coming}
	c.Desc = fmt.Sprintf("The release is offered to a growing share of devices, stage by stage. It has reached stage %d of %d.", last, len(r.Stages))
	return c
}

// QueueChart draws how many build jobs waited for a builder through the
// last day.
func (a FarmActivity) QueueChart() Chart {
	c := Chart{ID: "farm-queue", Title: "Jobs waiting for a builder, last 24 hours", Unit: "jobs", Empty: "No job waited in the last 24 hours.", LabelHead: "Time (UTC)"}
	s := ChartSeries{Name: "jobs waiting", Class: "accent"}
	most := 0
	for _, q := range a.Queue {
		c.Labels = append(c.Labels, q.At.UTC().Format("15:04"))
		s.Values = append(s.Values, float64(q.Waiting))
		most = max(most, q.Waiting)
	}
	c.Series = []ChartSeries{s}
	c.Desc = fmt.Sprintf("The most build jobs that waited at once for a builder to start them, in each hour (labelled with the hour's end, UTC). At most %d waited at once.", most)
	return c
}

// DurationsChart draws how long the newest decided builds took.
func (a FarmActivity) DurationsChart() Chart {
	c := Chart{ID: "farm-durations", Title: "How long the newest builds took", Unit: "minutes", Empty: "No build has finished yet.", LabelHead: "Build"}
	div := 60.0
	longest := 0.0
	for _, b := range a.Builds {
		longest = math.Max(longest, b.Seconds)
	}
	if longest < 120 {
		c.Unit, div = "seconds", 1
	}
	ok := ChartSeries{Name: c.Unit + ", reproducible", Class: "ok"}
	bad := ChartSeries{Name: c.Unit + ", not reproducible or failed", Class: "bad"}
	for _, b := range a.Builds {
		c.Labels = append(c.Labels, b.Decided.UTC().Format("15:04"))
		c.Long = append(c.Long, b.Name+", decided "+b.Decided.UTC().Format("2 Jan 2006 15:04")+" UTC")
		val := math.Round(b.Seconds/div*10) / 10
		if b.State == "reproducible" {
			ok.Values, bad.Values = append(ok.Values, val), append(bad.Values, 0)
		} else {
			ok.Values, bad.Values = append(ok.Values, 0), append(bad.Values, val)
		}
	}
	c.Series = []ChartSeries{ok, bad}
	c.Desc = fmt.Sprintf("Time from submission to verdict of the %s decided last, oldest first, labelled with when each was decided (UTC). The longest took %s %s.",
		plural(len(a.Builds), "build"), number(math.Round(longest/div*10)/10), c.Unit)
	return c
}

// FarmActivity is the farm's recent work, for the admin page's charts.
type FarmActivity struct {
	Queue  []QueueSample
	Builds []BuildTime
}

// QueueSample is how many jobs waited for a builder at one moment.
type QueueSample struct {
	At      time.Time
	Waiting int
}

// BuildTime is how long a decided build took.
type BuildTime struct {
	ID, Name, State string
	Decided         time.Time
	Seconds         float64
}
