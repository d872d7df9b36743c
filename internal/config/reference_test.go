package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/settings.md from the settings")

const settingsPage = "../../docs/settings.md"

func TestTheSettingsPageIsGeneratedFromTheSettings(t *testing.T) {
	var want bytes.Buffer
	if err := WriteServeReference(&want); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(settingsPage, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(settingsPage)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/config -update` to write it)", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("docs/settings.md is out of date with internal/config; run `go test ./internal/config -update`")
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
		if filepath.Base(page) == "settings.md" {
			continue
		}
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ServeSettings() {
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
