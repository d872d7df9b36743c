package web

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// inPlot reports whether r lies inside the drawing area.
func inPlot(r chartRect) bool {
	const eps = 1e-9
	return r.X >= chartLeft-eps && r.X+r.W <= chartW-chartRight+eps && r.Y >= chartTop-eps && r.Y+r.H <= chartBaseline+eps && r.W > 0 && r.H > 0
}

func TestChartGeometry(t *testing.T) {
	t.Run("an empty chart draws no bars and says so", func(t *testing.T) {
		for _, c := range []Chart{
			{Empty: "No install reports yet."},
			{Labels: []string{"a", "b"}, Series: []ChartSeries{{Values: []float64{0, 0}}}, Empty: "No install reports yet."},
			{Labels: []string{"a"}, Series: []ChartSeries{{Values: []float64{-3}}}, Empty: "No install reports yet."},
		} {
			v := c.layout()
			if !v.IsEmpty || len(v.Bars) != 0 || len(v.XLabels) != 0 || v.Empty != "No install reports yet." {
				t.Errorf("%+v: laid out %+v", c, v)
			}
		}
		if v := (Chart{}).layout(); v.Empty != chartNoData {
			t.Errorf("an empty chart without its own words says %q", v.Empty)
		}
	})
	t.Run("one point is one bar, centred in the plot, reaching its value on a round axis", func(t *testing.T) {
		v := Chart{Labels: []string{"1 Dec"}, Series: []ChartSeries{{Name: "worked", Class: "ok", Values: []float64{7}}}}.layout()
		if v.IsEmpty || len(v.Bars) != 1 || v.YMax != 10 {
			t.Fatalf("laid out %+v", v)
		}
		b := v.Bars[0]
		if !inPlot(b) || math.Abs(b.X+b.W/2-(chartLeft+chartPlotW/2)) > 1e-9 || math.Abs(b.H-0.7*chartPlotH) > 1e-9 || b.Y+b.H != chartBaseline {
			t.Errorf("bar %+v: want centred, 70%% of the plot high, standing on the baseline", b)
		}
		if len(v.XLabels) != 1 || v.XLabels[0].Text != "1 Dec" || len(v.YLabels) != 3 || v.YLabels[2].Text != "10" || v.YLabels[1].Text != "5" {
			t.Errorf("labels: x %+v, y %+v", v.XLabels, v.YLabels)
		}
		if !strings.Contains(b.Title, "7 worked") {
			t.Errorf("bar title %q", b.Title)
		}
	})
	t.Run("many points are bars side by side that never overlap, stacked without gaps, with a few labels", func(t *testing.T) {
		n := 120
		c := Chart{Series: []ChartSeries{{Name: "a", Class: "ok"}, {Name: "b", Class: "bad"}}}
		for i := range n {
			c.Labels = append(c.Labels, fmt.Sprint(i))
			c.Series[0].Values = append(c.Series[0].Values, float64(i%7))
			c.Series[1].Values = append(c.Series[1].Values, float64(i%3))
		}
		v := c.layout()
		if v.YMax < 8 {
			t.Fatalf("axis max %v below the tallest stack (8)", v.YMax)
		}
		byX := map[float64][]chartRect{}
		var xs []float64
		for _, b := range v.Bars {
			if !inPlot(b) {
				t.Fatalf("bar %+v leaves the plot", b)
			}
			if _, ok := byX[b.X]; !ok {
				xs = append(xs, b.X)
			}
			byX[b.X] = append(byX[b.X], b)
		}
		for i := 1; i < len(xs); i++ {
			if xs[i-1]+byX[xs[i-1]][0].W > xs[i]+1e-9 {
				t.Fatalf("bars at %v and %v overlap", xs[i-1], xs[i])
			}
		}
		for x, stack := range byX {
			y := chartBaseline
			for _, b := range stack {
				if math.Abs(b.Y+b.H-y) > 1e-9 {
					t.Fatalf("the stack at %v has a gap: %+v", x, stack)
				}
				y = b.Y
			}
		}
		if len(v.XLabels) > chartMaxLabels || len(v.XLabels) < 2 || len(v.Rows) != n {
			t.Errorf("%d x labels (at most %d), %d table rows (want %d)", len(v.XLabels), chartMaxLabels, len(v.Rows), n)
		}
	})
	t.Run("a fixed axis maximum is kept unless a value passes it", func(t *testing.T) {
		c := Chart{Max: 100, Labels: []string{"1", "2"}, Series: []ChartSeries{{Values: []float64{10, 50}}}}
		if v := c.layout(); v.YMax != 100 || math.Abs(v.Bars[1].H-chartPlotH/2) > 1e-9 {
			t.Errorf("laid out %+v", v)
		}
		c.Series[0].Values[1] = 130
		if v := c.layout(); v.YMax != 200 {
			t.Errorf("axis max %v for 130 over a fixed 100", v.YMax)
		}
	})
	t.Run("counts are never labelled with halves", func(t *testing.T) {
		v := Chart{Labels: []string{"1 Dec"}, Series: []ChartSeries{{Values: []float64{1}}}}.layout()
		if len(v.YLabels) != 2 || v.YLabels[0].Text != "0" || v.YLabels[1].Text != "1" || len(v.Grid) != 3 {
			t.Errorf("y labels %+v, grid %v: want 0 and 1 on three lines", v.YLabels, v.Grid)
		}
		v = Chart{Labels: []string{"a"}, Series: []ChartSeries{{Values: []float64{0.8}}}}.layout()
		if len(v.YLabels) != 3 || v.YLabels[1].Text != "0.5" {
			t.Errorf("fractional values: y labels %+v", v.YLabels)
		}
	})
	t.Run("numbers print without needless decimals", func(t *testing.T) {
		for in, want := range map[float64]string{0: "0", 1.25: "1.25", 12.5: "12.5", 7: "7", 2.0000001: "2", 0.333: "0.33"} {
			if got := number(in); got != want {
				t.Errorf("number(%v) = %q, want %q", in, got, want)
			}
		}
	})
	t.Run("axis maxima are round", func(t *testing.T) {
		for in, want := range map[float64]float64{0.2: 1, 1: 1, 3: 5, 10: 10, 11: 20, 21: 25, 26: 50, 51: 100, 999: 1000} {
			if got := niceCeil(in); got != want {
				t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
			}
		}
	})
}

func TestChartsRenderWithTheirTextAlternative(t *testing.T) {
	s, err := New(Deps{Catalog: noCatalog{}, Farm: noFarm{}, Auth: noAuth{}}, Options{CSRFSecret: bytes.Repeat([]byte("k"), 32)})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rel := Release{Version: "1.2.0", ReportDays: []ReportDay{{Day: day, Success: 3, Failure: 1}, {Day: day.AddDate(0, 0, 1), Success: 5, RolledBack: 2}}}
	var buf bytes.Buffer
	tmpl := s.pages["product/show"]
	if err := tmpl.ExecuteTemplate(&buf, "chart", rel.ReportsChart()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`role="img" aria-labelledby="reports-1.2.0-title reports-1.2.0-desc"`, `<title id="reports-1.2.0-title">Install reports for version 1.2.0, per day</title>`,
		"8 installs worked, 1 install failed, 2 installs failed and went back", `<div class="sr-only"><table>`, `<th scope="row">2 Dec</th><td>5</td><td>0</td><td>2</td>`,
		`class="bar ok"`, `class="bar warn"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the chart lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	hostile := Release{Version: `"><script>x</script>`, ReportDays: rel.ReportDays}
	if err := tmpl.ExecuteTemplate(&buf, "chart", hostile.ReportsChart()); err != nil || strings.Contains(buf.String(), "<script>") {
		t.Errorf("a hostile version is not escaped (%v):\n%s", err, buf.String())
	}
}

// The site needs its parts to start; rendering a chart reads none.
type (
	noCatalog struct{ Catalog }
	noFarm    struct{ Farm }
	noAuth    struct{ Authenticator }
)
