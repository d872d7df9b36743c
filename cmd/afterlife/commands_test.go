package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// The client commands live with their parts (escrow/cli, registry/cli,
// recipes/cli, builder/cli, internal/auth/authcli) and share the flags of
// internal/cli. This journey runs the ones other tests leave to the demo
// against a real server: each reaches it with the flags its parent
// command declares and prints what it printed when it lived here.
func TestTheClientCommandsOfEveryPartReachTheServer(t *testing.T) {
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--local-builders", "0"}})
	dir := t.TempDir()
	admin := []string{"--server", srv.URL, "--token", srv.Token}
	run := func(t *testing.T, wantOK bool, args ...string) (string, string) {
		t.Helper()
		return afterlife(t, wantOK, args...)
	}
	contains := func(t *testing.T, out, want string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Fatalf("output %q, want it to contain %q", out, want)
		}
	}

	run(t, true, append([]string{"admin", "org", "create", "acme", "--kind", "vendor"}, admin...)...)
	out, _ := run(t, true, append([]string{"admin", "token", "create", "--name", "acme-ci", "--role", "vendor", "--org", "acme"}, admin...)...)
	vendor := []string{"--server", srv.URL, "--token", strings.TrimSpace(out)}

	t.Run("admin whoami, org list and token list read the token store", func(t *testing.T) {
		out, _ := run(t, true, append([]string{"admin", "whoami"}, admin...)...)
		contains(t, out, `"role": "admin"`)
		out, _ = run(t, true, append([]string{"admin", "org", "list"}, admin...)...)
		contains(t, out, "acme")
		out, _ = run(t, true, append([]string{"admin", "token", "list", "--org", "acme"}, admin...)...)
		contains(t, out, "acme-ci")
	})
	t.Run("a vendor checks in, registers a product, deposits and verifies the receipt offline", func(t *testing.T) {
		out, _ := run(t, true, append([]string{"vendor", "checkin", "--org", "acme"}, vendor...)...)
		contains(t, out, "checked in for acme at")
		out, _ = run(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "CAM-200"}, vendor...)...)
		contains(t, out, "product acme-cam registered (acme CAM-200, status supported)")
		key, _ := run(t, true, append([]string{"vendor", "receipt-key"}, vendor...)...)
		keyFile := filepath.Join(dir, "receipt.pub")
		if err := os.WriteFile(keyFile, []byte(key), 0o644); err != nil {
			t.Fatal(err)
		}
		spec := filepath.Join(dir, "datasheet.pdf")
		if err := os.WriteFile(spec, []byte("%PDF datasheet"), 0o644); err != nil {
			t.Fatal(err)
		}
		receipt := filepath.Join(dir, "receipt.json")
		out, _ = run(t, true, append([]string{"vendor", "deposit", "--product", "acme-cam", "--policy", "on=2099-01-01",
			"--state", filepath.Join(dir, "state"), "--receipt", receipt, spec}, vendor...)...)
		contains(t, out, "committed: 1 file(s)")
		out, _ = run(t, true, "vendor", "verify-receipt", receipt, "--key", keyFile)
		contains(t, out, "receipt valid: deposit dep_")
	})
	t.Run("a trustee makes a key and an admin registers it", func(t *testing.T) {
		pub, _ := run(t, true, "trustee", "keygen", filepath.Join(dir, "alice.key"))
		out, _ := run(t, true, append([]string{"trustee", "add", "alice", "--public-key", strings.TrimSpace(pub)}, admin...)...)
		contains(t, out, "trustee alice registered")
	})
	t.Run("recipe schema, build list and release list answer", func(t *testing.T) {
		out, _ := run(t, true, "recipe", "schema")
		contains(t, out, `"$schema"`)
		out, _ = run(t, true, append([]string{"build", "list"}, admin...)...)
		contains(t, out, `"builds"`)
		out, _ = run(t, true, append([]string{"release", "list"}, admin...)...)
		contains(t, out, "ID  PRODUCT  VERSION")
	})
	t.Run("an unknown build or release is an error naming it", func(t *testing.T) {
		_, stderr := run(t, false, append([]string{"build", "show", "bld_none"}, admin...)...)
		contains(t, stderr, "bld_none")
		_, stderr = run(t, false, append([]string{"release", "promote", "rel_none"}, admin...)...)
		contains(t, stderr, "rel_none")
	})
}
