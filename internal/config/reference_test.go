package config

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/settings.md and docs/builder-settings.md from the settings")

func TestTheSettingsPagesAreGeneratedFromTheSettings(t *testing.T) {
	for _, page := range []struct {
		path  string
		write func(io.Writer) error
	}{
		{"../../docs/settings.md", WriteServeReference},
		{"../../docs/builder-settings.md", WriteBuilderReference},
	} {
		t.Run(filepath.Base(page.path), func(t *testing.T) {
			var want bytes.Buffer
			if err := page.write(&want); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(page.path, want.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(page.path)
			if err != nil {
				t.Fatalf("%v (run `go test ./internal/config -update` to write it)", err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%s is out of date with internal/config; run `go test ./internal/config -update`", filepath.Base(page.path))
			}
		})
	}
}

// Other pages may mention a setting's default, but only the true one:
// "(`max-update-load`, default 512)" or "`--reports-per-hour` (default 120)".
func TestDocsQuoteTheDefaultsTheCodeHas(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	pages = append(pages, "../../README.md")
	checked := 0
	for _, page := range pages {
		if base := filepath.Base(page); base == "settings.md" || base == "builder-settings.md" {
			continue
		}
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range append(ServeSettings(), BuilderSettings()...) {
			name := strings.TrimPrefix(s.Flag, "--")
			re := regexp.MustCompile("`(?:--)?" + regexp.QuoteMeta(name) + "`[^.\\n]{0,40}?default:? `?([^`),;\\s]+)")
			for _, m := range re.FindAllStringSubmatch(string(text), -1) {
				checked++
				if m[1] != s.Default {
					t.Errorf("%s says %s defaults to %s; the code says %s", filepath.Base(page), s.Flag, m[1], s.Default)
				}
			}
		}
	}
	t.Logf("checked %d quoted defaults", checked)
}
