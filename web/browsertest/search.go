package browsertest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// SearchCase is one query an owner types and what the search page must
// answer: the count sentence's start ("2 products match"), and the text
// of the first card's title (the vendor's display name and the model).
// An empty Count means nothing matches: the page says so calmly.
type SearchCase struct {
	Query, Count, First string
}

// OwnerSearches is the device owner finding a device: the search page's
// own suggestion typed into the box finds something as they type; then
// each case's query, submitted, answers its count and first card. Every
// page is checked for accessibility, and screenshots show the results and
// the empty state.
func OwnerSearches(t testing.TB, b *Browser, base string, cases []SearchCase) {
	t.Helper()
	b.Navigate(t, base+"/search")
	b.CheckA11y(t)
	example := strings.TrimPrefix(Eval[string](t, b, `document.getElementById("q").placeholder`), "e.g. ")
	b.Do(t, "type the suggested search", chromedp.SendKeys(chromedp.ID("q"), example))
	b.WaitFor(t, "live results for the suggestion "+example, `!!document.querySelector("#results #results-count") && document.querySelectorAll("#results a.title").length > 0`)
	if first := b.Text(t, "#results a.title"); !strings.EqualFold(strings.Join(strings.Fields(first), " "), example) {
		t.Errorf("the suggestion %q finds %q first", example, first)
	}
	for _, c := range cases {
		b.Navigate(t, base+"/search?q="+url.QueryEscape(c.Query))
		b.CheckA11y(t)
		if c.Count == "" {
			if got := b.Text(t, "#results-list"); !strings.Contains(got, "Nothing listed here matches") {
				t.Errorf("search %q: %q, want the empty state", c.Query, got)
			}
			b.Screenshot(t, "search-empty")
			continue
		}
		if got := b.Text(t, "#results-count"); !strings.HasPrefix(got, c.Count) {
			t.Errorf("search %q: count %q, want %q…", c.Query, got, c.Count)
		}
		if got := strings.Join(strings.Fields(b.Text(t, "#results a.title")), " "); got != c.First {
			t.Errorf("search %q: first card %q, want %q", c.Query, got, c.First)
		}
		b.Screenshot(t, "search-results")
	}
}
