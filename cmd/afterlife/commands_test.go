package main

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
		out, _ := run(t, true, append([]string{"vendor", "checkin"}, vendor...)...)
		contains(t, out, "checked in for acme at")
		_, stderr := run(t, false, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "CAM-200",
			"--device-ids", "usb:1d6b:0104,dt:acme,cam200"}, vendor...)...)
		contains(t, stderr, "only dt: ids contain commas")
		out, _ = run(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "CAM-200",
			"--device-id", "usb:1d6b:0104", "--device-id", "dt:acme,cam200"}, vendor...)...)
		contains(t, out, "product acme-cam registered (acme CAM-200, status supported)")
		resp, err := http.Get(srv.URL + "/v1/products/acme-cam")
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			DeviceIDs []string `json:"device_ids"`
		}
		json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if strings.Join(p.DeviceIDs, " ") != "dt:acme,cam200 usb:1d6b:0104" && strings.Join(p.DeviceIDs, " ") != "usb:1d6b:0104 dt:acme,cam200" {
			t.Errorf("the product's device ids are %q", p.DeviceIDs)
		}
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

		// The key exactly as served at /v1/escrow/receipt-key, saved by curl.
		resp, err = http.Get(srv.URL + "/v1/escrow/receipt-key")
		if err != nil {
			t.Fatal(err)
		}
		served, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		servedFile := filepath.Join(dir, "receipt-key.json")
		if err := os.WriteFile(servedFile, served, 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ = run(t, true, "vendor", "verify-receipt", receipt, "--key", servedFile)
		contains(t, out, "receipt valid: deposit dep_")

		out, _ = run(t, true, append([]string{"vendor", "deposits", "--output", "table"}, vendor...)...)
		contains(t, out, "acme-cam  sealed  on=2099-01-01")
		contains(t, out, "2099-01-01")
		contains(t, out, "(on)")
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
		contains(t, out, `"releases"`)
	})
	t.Run("list and show commands print a table when asked and JSON when piped", func(t *testing.T) {
		for _, args := range [][]string{
			{"release", "list"}, {"build", "list"}, {"admin", "org", "list"}, {"admin", "token", "list"}, {"admin", "whoami"},
		} {
			piped, _ := run(t, true, append(args, admin...)...)
			var v map[string]any
			if err := json.Unmarshal([]byte(piped), &v); err != nil {
				t.Errorf("afterlife %s piped printed %q, not JSON: %v", strings.Join(args, " "), piped, err)
			}
			table, _ := run(t, true, append(append(args, "--output", "table"), admin...)...)
			if json.Valid([]byte(table)) || !strings.Contains(table, "  ") {
				t.Errorf("afterlife %s --output table printed %q", strings.Join(args, " "), table)
			}
		}
		out, _ := run(t, true, append([]string{"release", "list", "--output", "table"}, admin...)...)
		contains(t, out, "ID  PRODUCT  VERSION")
		out, _ = run(t, true, append([]string{"admin", "org", "list", "--output", "table"}, admin...)...)
		contains(t, out, "acme  acme  vendor")
		_, stderr := run(t, false, append([]string{"release", "list", "--output", "yaml"}, admin...)...)
		contains(t, stderr, "want table or json")
	})
	t.Run("completion scripts exist for bash, zsh and fish", func(t *testing.T) {
		for _, shell := range []string{"bash", "zsh", "fish"} {
			out, _ := run(t, true, "completion", shell)
			contains(t, out, "afterlife")
		}
		out, _ := run(t, true, "__complete", "release", "list", "--output", "")
		contains(t, out, "table\njson")
	})
	t.Run("an unknown build or release is an error naming it", func(t *testing.T) {
		_, stderr := run(t, false, append([]string{"build", "show", "bld_none"}, admin...)...)
		contains(t, stderr, "bld_none")
		_, stderr = run(t, false, append([]string{"release", "promote", "rel_none"}, admin...)...)
		contains(t, stderr, "rel_none")
	})
}

// The pages name commands for people to type: each must be one this
// binary has.
func TestEveryCommandThePagesNameExists(t *testing.T) {
	named := regexp.MustCompile(`<code>(afterlife(?:-device)? [^<]*)</code>`)
	files, err := filepath.Glob(filepath.Join("..", "..", "web", "templates", "*", "*.tmpl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("templates: %v %v", files, err)
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllStringSubmatch(string(b), -1) {
			words := strings.Fields(html.UnescapeString(m[1]))
			if words[0] != "afterlife" {
				continue
			}
			seen++
			var args []string
			for _, w := range words[1:] {
				if strings.HasPrefix(w, "-") || strings.ContainsAny(w, "{}") {
					break
				}
				args = append(args, w)
			}
			cmd, rest, err := newRootCmd().Find(args)
			if err != nil || len(rest) > 0 || cmd.Name() != args[len(args)-1] {
				t.Errorf("%s names %q, which is no command (found %q, left %q, %v)", filepath.Base(f), m[1], cmd.CommandPath(), rest, err)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no page names an afterlife command: the pattern is stale")
	}
}

func TestListAndShowCommandsOfferTableAndJSON(t *testing.T) {
	for _, path := range [][]string{
		{"build", "list"}, {"build", "show"}, {"release", "list"},
		{"admin", "token", "list"}, {"admin", "org", "list"}, {"admin", "whoami"},
		{"admin", "maintainer", "list"}, {"recipe", "list"}, {"vendor", "deposits"},
	} {
		cmd, _, err := newRootCmd().Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Flags().Lookup("output") == nil {
			t.Errorf("%s has no --output", cmd.CommandPath())
		}
	}
}

// make build stamps the version it passes (git describe by default): a
// binary built with the Makefile's own command says it.
func TestMakeBuildStampsTheVersion(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dry := exec.Command("make", "-s", "-n", "build", "VERSION=v9.8.7-journey")
	dry.Dir = root
	plan, err := dry.Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	var line string
	for _, l := range strings.Split(string(plan), "\n") {
		if strings.Contains(l, "-o bin/afterlife ./cmd/afterlife") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("make build has no go build of ./cmd/afterlife:\n%s", plan)
	}
	bin := filepath.Join(t.TempDir(), "afterlife")
	build := exec.Command("bash", "-c", strings.Replace(line, "-o bin/afterlife ", "-o '"+bin+"' ", 1))
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "afterlife version v9.8.7-journey" {
		t.Fatalf("--version printed %q (%v), want afterlife version v9.8.7-journey", out, err)
	}
}
