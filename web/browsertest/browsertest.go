// Package browsertest drives a real headless Chromium against afterlife's
// pages: it starts the browser with a fresh profile, takes full-page
// screenshots at desktop and phone widths, and checks pages for
// accessibility with axe-core run inside the page. It is used by web's own
// tests (against fakes) and by end-to-end tests against a real
// `afterlife serve`. It must not know about any part's internals: it only
// speaks HTTP through the browser.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium, installed by scripts/test-deps.sh.
const ChromiumPath = "/usr/bin/chromium"

// Browser is one headless Chromium with one tab.
type Browser struct {
	// Ctx is the chromedp context of the tab; run actions with
	// chromedp.Run(b.Ctx, …) or the methods below.
	Ctx context.Context
	// Timeout bounds each method call (default 30 s).
	Timeout time.Duration
}

// Start launches Chromium with a fresh user-data-dir under t.TempDir and
// stops it when the test ends. It fails the test when Chromium is missing.
func Start(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("browsertest: %s not found (%v): run scripts/test-deps.sh, which installs Debian's chromium package (see the set-up log if it is still running)", ChromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: start chromium: %v", err)
	}
	return &Browser{Ctx: ctx, Timeout: 30 * time.Second}
}

// Do runs steps in the tab with the browser's timeout and fails the test
// on error, saying what step was running.
func (b *Browser) Do(t testing.TB, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression (awaiting a returned promise)
// and decodes its value into T.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: evaluate %q: %v", shorten(expr, 80), err)
	}
	return v
}

// WaitFor polls a JavaScript condition until it is true or the timeout.
// It keeps polling across page loads (a form submission navigates while
// the condition is checked), so errors from a page going away are retried.
func (b *Browser) WaitFor(t testing.TB, what, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("browser: waiting for %s (%s): %v (last error: %v)", what, cond, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// ArtifactDir is where screenshots go: $AFTERLIFE_ARTIFACTS, or
// ./test-artifacts (relative to the test's package directory).
func ArtifactDir() string {
	if d := os.Getenv("AFTERLIFE_ARTIFACTS"); d != "" {
		return d
	}
	return "test-artifacts"
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Screenshot saves full-page PNGs of the current page, one per viewport
// width (default 1280 and 390), as <dir>/<name>-<width>.png. Phone widths
// (under 600 px) are emulated as a mobile device. The viewport is set back
// to 1280 afterwards.
func (b *Browser) Screenshot(t testing.TB, name string, widths ...int) []string {
	t.Helper()
	if len(widths) == 0 {
		widths = []int{1280, 390}
	}
	dir := ArtifactDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: artifacts dir: %v", err)
	}
	var files []string
	for _, w := range widths {
		vp := chromedp.EmulateViewport(int64(w), 900)
		if w < 600 {
			vp = chromedp.EmulateViewport(int64(w), 844, chromedp.EmulateMobile, chromedp.EmulateScale(1))
		}
		ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
		err := chromedp.Do(ctx, vp)
		var png []byte
		if err == nil {
			// Let layout settle at the new width before capturing.
			_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise))
		}
		if err == nil {
			png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		}
		cancel()
		if err != nil {
			t.Fatalf("browsertest: screenshot %s at %d px: %v", name, w, err)
		}
		f := filepath.Join(dir, fmt.Sprintf("%s-%d.png", unsafeName.ReplaceAllString(name, "_"), w))
		if err := os.WriteFile(f, png, 0o644); err != nil {
			t.Fatalf("browsertest: save screenshot: %v", err)
		}
		files = append(files, f)
	}
	b.Do(t, "reset viewport", chromedp.EmulateViewport(1280, 900))
	return files
}

// AxePath is the axe-core script: $AFTERLIFE_AXE, or the copy that
// scripts/test-deps.sh installs with
// `npm install --prefix ${AFTERLIFE_CACHE:-~/.cache/afterlife}/npm axe-core@4`.
func AxePath() string {
	if p := os.Getenv("AFTERLIFE_AXE"); p != "" {
		return p
	}
	cache := os.Getenv("AFTERLIFE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "afterlife")
	}
	return filepath.Join(cache, "npm", "node_modules", "axe-core", "axe.min.js")
}

// A11yRules are the axe-core tags checked: WCAG 2 A and AA, which include
// form labels, names of buttons and links, and colour contrast.
var A11yRules = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}

type axeResult struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// CheckA11y injects axe-core into the page of the chromedp context ctx and
// fails the test on any WCAG 2 A/AA violation (labels, contrast, names).
func CheckA11y(t testing.TB, ctx context.Context) {
	t.Helper()
	src, err := os.ReadFile(AxePath())
	if err != nil {
		t.Fatalf("browsertest: axe-core not found at %s (%v): run scripts/test-deps.sh, or `npm install --prefix ~/.cache/afterlife/npm axe-core@4`", AxePath(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// Runtime.evaluate is not subject to the page's content security
	// policy, so the pages keep script-src 'self' while being checked.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](string(src)+"\n;true")); err != nil {
		t.Fatalf("browsertest: inject axe-core: %v", err)
	}
	tags, _ := json.Marshal(A11yRules)
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](
		`axe.run(document, {runOnly: {type: "tag", values: `+string(tags)+`}, resultTypes: ["violations"]}).then(r => r.violations)`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browsertest: run axe-core: %v", err)
	}
	var vs []axeResult
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatalf("browsertest: decode axe-core result: %v", err)
	}
	url, _ := chromedp.Run(ctx, chromedp.Location())
	var msgs []string
	for _, v := range vs {
		for _, n := range v.Nodes {
			msgs = append(msgs, fmt.Sprintf("  %s (%s): %s at %v\n    %s", v.ID, v.Impact, v.Help, n.Target, strings.ReplaceAll(n.Summary, "\n", "\n    ")))
		}
	}
	if len(msgs) > 0 {
		t.Errorf("accessibility violations on %s:\n%s", url, strings.Join(msgs, "\n"))
	}
}

// CheckA11y runs CheckA11y on the browser's current page.
func (b *Browser) CheckA11y(t testing.TB) {
	t.Helper()
	CheckA11y(t, b.Ctx)
}

// Navigate opens url and waits for the page's body.
func (b *Browser) Navigate(t testing.TB, url string) {
	t.Helper()
	b.Do(t, "open "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
}

// Text returns the text of the first element matching the CSS selector.
func (b *Browser) Text(t testing.TB, css string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("browser: text of %s: %v", css, err)
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
