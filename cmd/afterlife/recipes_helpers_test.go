package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
)

// submitRecipe commits recipe (an afterlife.yaml) to a fresh local
// repository, submits it with the CLI and the given --server/--token
// arguments, and returns the build's id.
func submitRecipe(t *testing.T, as []string, recipe, message string) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "acme-fw.git")
	if _, err := recipes.CommitTree(context.Background(), repo, fstest.MapFS{"afterlife.yaml": {Data: []byte(recipe)}}, message, time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	out, _ := afterlife(t, true, append([]string{"recipe", "submit", "--repo", "file://" + repo, "--ref", "HEAD"}, as...)...)
	var sub struct {
		BuildID string `json:"build_id"`
	}
	if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.BuildID == "" {
		t.Fatalf("no build id from recipe submit (%v): %s", err, out)
	}
	return sub.BuildID
}

// waitReproducible waits up to within for the build's verdict; any verdict
// but reproducible ends the test with the server's log.
func waitReproducible(t *testing.T, srv *testenv.Server, build string, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		var b struct {
			State string `json:"state"`
		}
		var raw json.RawMessage
		apiJSON(t, "GET", srv.URL+"/v1/builds/"+build, srv.Token, nil, &raw)
		_ = json.Unmarshal(raw, &b)
		switch b.State {
		case "reproducible":
			return nil
		case "", "pending", "running":
			return fmt.Errorf("no verdict on build %s yet", build)
		}
		return testenv.GiveUp(fmt.Errorf("build %s: %s\n%s\n%s", build, b.State, raw, srv.LogTail()))
	})
}
