package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestAReplicaWhoseKeysDoNotMatchTheDatabaseRefusesToStart starts a first
// replica on PostgreSQL and MinIO, seals a deposit through it, then tries
// second replicas with key directories that are empty or hold other keys:
// each must exit naming the key and where it expected it, generate
// nothing, and leave every blob as it was.
func TestAReplicaWhoseKeysDoNotMatchTheDatabaseRefusesToStart(t *testing.T) {
	dsn := testenv.Postgres(t)
	mc := testenv.MinIO(t)
	bucket := mc.NewBucket(t, true)
	env := []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey}
	args := func(keyDir string) []string {
		return []string{"--database", dsn, "--blobs", mc.URL(bucket), "--keys", keyDir, "--local-builders", "0", "--scrub-every", "0"}
	}
	good := filepath.Join(t.TempDir(), "keys")
	first := testenv.Serve(t, testenv.ServeOptions{Args: args(good), Env: env})

	afterlife(t, true, "admin", "org", "create", "acme", "--server", first.URL, "--token", first.Token)
	vendor, _ := afterlife(t, true, "admin", "token", "create", "--name", "acme", "--role", "vendor", "--org", "acme", "--server", first.URL, "--token", first.Token)
	vendor = strings.TrimSpace(vendor)
	afterlife(t, true, "vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "C1", "--device-ids", "dt:acme,c1", "--server", first.URL, "--token", vendor)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cam-spec.pdf"), []byte("%PDF sealed camera spec"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := afterlife(t, true, "vendor", "deposit", "--rights", "**=public", "--product", "acme-cam", "--policy", "on=2099-01-01",
		"--state", filepath.Join(dir, "state"), "--receipt", filepath.Join(dir, "r.json"), "--server", first.URL, "--token", vendor, dir+"/cam-spec.pdf")
	id := strings.Fields(strings.TrimPrefix(out, "deposit "))[0]

	// copyKeys makes a replica's key directory from the first one's, then
	// lets change alter it.
	copyKeys := func(t *testing.T, change func(dir string)) string {
		dst := filepath.Join(t.TempDir(), "keys")
		if err := os.CopyFS(dst, os.DirFS(good)); err != nil {
			t.Fatal(err)
		}
		// Key files are private, as the first replica wrote them.
		filepath.WalkDir(dst, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				err = os.Chmod(path, 0o600)
			}
			return err
		})
		change(dst)
		return dst
	}
	otherEscrowKey := func(dir string) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "escrow.age"), []byte(id.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	otherReceiptKey := func(dir string) {
		os.Remove(filepath.Join(dir, "receipt.key"))
		if _, err := keys.Generate(filepath.Join(dir, "receipt.key")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		keys   func(t *testing.T) string
		saying []string // what the refusal must name
	}{
		{"a replica with an empty key directory refuses, naming the escrow key and where it expected it",
			func(t *testing.T) string { return filepath.Join(t.TempDir(), "keys") },
			[]string{"escrow identity is missing", "escrow.age"}},
		{"a replica with another escrow key refuses, naming it",
			func(t *testing.T) string { return copyKeys(t, otherEscrowKey) },
			[]string{"escrow identity in", "escrow.age is not the key the database was initialised with"}},
		{"a replica with another receipt key refuses, naming it",
			func(t *testing.T) string { return copyKeys(t, otherReceiptKey) },
			[]string{"receipt key in", "receipt.key is not the key the database was initialised with"}},
		{"a replica missing only its session key refuses, naming it",
			func(t *testing.T) string {
				return copyKeys(t, func(dir string) { os.Remove(filepath.Join(dir, "session.key")) })
			},
			[]string{"session key is missing", "session.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, args(tc.keys(t)), env, tc.saying...)
		})
	}

	t.Run("a database from before the fingerprints refuses a replica missing a key and records a complete one's", func(t *testing.T) {
		d, err := db.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.ExecContext(context.Background(), `DELETE FROM keyring_keys`); err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, args(filepath.Join(t.TempDir(), "keys")), env, "escrow identity is missing", "no new key is made")
		testenv.Serve(t, testenv.ServeOptions{Args: args(copyKeys(t, func(string) {})), Env: env})
		var n int
		if err := d.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM keyring_keys`).Scan(&n); err != nil || n != 4 {
			t.Fatalf("%d keys recorded (%v), want 4", n, err)
		}
		wantRefusal(t, args(copyKeys(t, otherEscrowKey)), env, "escrow identity in", "is not the key the database was initialised with")
	})

	t.Run("nothing is marked corrupt and the first replica still reads the sealed file", func(t *testing.T) {
		var st struct {
			Problems []any `json:"problems"`
		}
		if code := apiJSON(t, "GET", first.URL+"/v1/admin/scrub", first.Token, nil, &st); code != http.StatusOK || len(st.Problems) != 0 {
			t.Fatalf("scrub status %d, problems %v", code, st.Problems)
		}
		req, _ := http.NewRequest("GET", first.URL+"/v1/deposits/"+id+"/files/cam-spec.pdf", nil)
		req.Header.Set("Authorization", "Bearer "+vendor)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reading the sealed file: %s", resp.Status)
		}
	})
}

// wantRefusal runs serve with args and wants it to exit saying each of
// saying and the key directory, without touching the key directory.
func wantRefusal(t *testing.T, args, env []string, saying ...string) {
	t.Helper()
	keyDir := ""
	for i, a := range args {
		if a == "--keys" {
			keyDir = args[i+1]
		}
	}
	before := listFiles(t, keyDir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), append([]string{"serve",
		"--addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--data", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve did not refuse to start (err %v):\n%s", err, out)
	}
	for _, want := range append(saying, keyDir) {
		if !strings.Contains(string(out), want) {
			t.Fatalf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if after := listFiles(t, keyDir); after != before {
		t.Fatalf("the refused replica changed its key directory: before %q, after %q", before, after)
	}
}

// listFiles names the files under dir with their sizes, to tell whether
// anything was written there.
func listFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(path, dir), info.Size())
		}
		return nil
	})
	return b.String()
}
