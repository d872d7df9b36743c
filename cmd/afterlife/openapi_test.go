package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
)

// TestEveryAPIRouteIsInTheOpenAPIDocument wires the whole server in
// process and checks that each API route it registers is documented.
// A route mounted on gin directly, past httpapi.Router, fails here.
func TestEveryAPIRouteIsInTheOpenAPIDocument(t *testing.T) {
	sys := wiredSystem(t)
	paths := sys.api.OpenAPI()["paths"].(map[string]any)
	checked := 0
	for _, r := range sys.api.Engine().Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") && !strings.HasPrefix(r.Path, "/tuf/") && !strings.HasPrefix(r.Path, "/feeds/") {
			continue // web pages and static assets are not API
		}
		checked++
		item, ok := paths[httpapi.OpenAPIPath(r.Path)].(map[string]any)
		if !ok || item[strings.ToLower(r.Method)] == nil {
			t.Errorf("%s %s is served but missing from /v1/openapi.json", r.Method, r.Path)
		}
	}
	if checked < 40 {
		t.Fatalf("only %d API routes found; the wiring looks incomplete", checked)
	}
}

// wiredSystem wires the whole server in process, as serve does (SQLite
// under a temporary data dir, no local builders), without listening.
func wiredSystem(t *testing.T) *system {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.AddServeFlags(fs)
	if err := fs.Parse([]string{"--data", t.TempDir(), "--local-builders", "0"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadServe(fs, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sys, err := openSystem(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.close)
	if err := sys.wire(ctx); err != nil {
		t.Fatal(err)
	}
	return sys
}
