package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestTwoReplicasOnOneDatabaseMakeOneBootstrapAdminToken bootstraps as
// deploy/ does: afterlife admin blobs init makes the bucket (and, run
// again, changes nothing), then two replicas with empty data directories
// start on one PostgreSQL database: only the first writes an admin token,
// the database holds exactly one, and it expires.
func TestTwoReplicasOnOneDatabaseMakeOneBootstrapAdminToken(t *testing.T) {
	dsn := testenv.Postgres(t)
	mc := testenv.MinIO(t)
	bucket := fmt.Sprintf("bootstrap-%d", time.Now().UnixNano())
	env := []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey}

	// The bucket comes from afterlife itself, as in deploy/.
	for _, want := range []string{"bucket " + bucket + " created with object lock", "bucket " + bucket + " exists with object lock"} {
		cmd := exec.Command(testenv.Binary(t), "admin", "blobs", "init", "--blobs", mc.URL(bucket))
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("afterlife admin blobs init: %v\n%s\nwant %q", err, out, want)
		}
	}

	keys := filepath.Join(t.TempDir(), "keys")
	opts := func() testenv.ServeOptions {
		return testenv.ServeOptions{
			Args: []string{"--database", dsn, "--blobs", mc.URL(bucket), "--keys", keys, "--local-builders", "0", "--scrub-every", "0", "--retention", "1h"},
			Env:  env,
		}
	}
	started := time.Now()
	first := testenv.Serve(t, opts())
	second := testenv.Serve(t, opts())

	if first.Token == "" {
		t.Fatal("the replica that initialised the database wrote no admin token")
	}
	if _, err := os.Stat(filepath.Join(second.Data, "admin.token")); !os.IsNotExist(err) {
		t.Fatalf("the second replica wrote an admin token too (stat: %v)", err)
	}
	if log, _ := os.ReadFile(second.Log); !strings.Contains(string(log), "afterlife admin token create") {
		t.Fatalf("the second replica does not say how to get a token:\n%s", second.LogTail())
	}

	var out struct {
		Tokens []struct {
			Name    string    `json:"name"`
			Role    string    `json:"role"`
			Expires time.Time `json:"expires"`
		} `json:"tokens"`
	}
	if code := apiJSON(t, "GET", second.URL+"/v1/admin/tokens", first.Token, nil, &out); code != http.StatusOK {
		t.Fatalf("list tokens through the second replica: %d", code)
	}
	var admins []string
	for _, tok := range out.Tokens {
		if tok.Role != "admin" {
			continue
		}
		admins = append(admins, tok.Name)
		// The default --bootstrap-token-ttl is 24h; the margin only
		// absorbs the time the replicas took to start.
		if tok.Expires.Before(started.Add(23*time.Hour)) || tok.Expires.After(time.Now().Add(25*time.Hour)) {
			t.Errorf("admin token %s expires %v, want about 24h after the start", tok.Name, tok.Expires)
		}
	}
	if len(admins) != 1 || admins[0] != "bootstrap-admin" {
		t.Fatalf("admin tokens in the database: %v, want exactly one bootstrap-admin", admins)
	}
}
