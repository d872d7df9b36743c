package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/examples"
)

func TestARecipeAboveTheMaximaIsRefusedAtLintAndAtSubmitNamingTheLimit(t *testing.T) {
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--allow-local-repos", "--local-builders", "0", "--max-build-memory", "1GiB"}})
	admin, err := os.ReadFile(filepath.Join(srv.Data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	// The unreproducible example, asking for 2 GiB: within the defaults,
	// above this server's maximum.
	src := t.TempDir()
	ex, err := examples.Dir("unreproducible")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(src, ex); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(src, "afterlife.yaml")
	y, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	greedy := strings.Replace(string(y), "memory: 256MiB", "memory: 2GiB", 1)
	if greedy == string(y) {
		t.Fatal("the example's limits moved; update this test")
	}
	if err := os.WriteFile(file, []byte(greedy), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "greedy.git")
	if _, err := recipes.CommitTree(context.Background(), repo, os.DirFS(src), "greedy", time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}

	afterlife(t, true, "recipe", "lint", file)
	out, _ := afterlife(t, false, "recipe", "lint", "--max-memory", "1GiB", file)
	if !strings.Contains(out, "limits.memory: 2GiB is more than this build farm allows: at most 1GiB (max-build-memory)") {
		t.Errorf("lint against a 1 GiB farm says:\n%s", out)
	}
	_, stderr := afterlife(t, false, "recipe", "submit", "--repo", "file://"+repo, "--ref", "HEAD", "--server", srv.URL, "--token", strings.TrimSpace(string(admin)))
	if !strings.Contains(stderr, "at most 1GiB (max-build-memory)") {
		t.Errorf("submission to a 1 GiB server says:\n%s", stderr)
	}
}

// recipe lint checks against recipes.DefaultMaxima; a server with default
// settings must refuse exactly what lint refuses.
func TestLintChecksAgainstTheServersDefaultMaxima(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.AddServeFlags(fs)
	cfg, err := config.LoadServe(fs, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s := &system{cfg: cfg}
	if got := s.recipeMaxima(); got != recipes.DefaultMaxima {
		t.Fatalf("serve's default maxima %+v, lint's %+v", got, recipes.DefaultMaxima)
	}
}
