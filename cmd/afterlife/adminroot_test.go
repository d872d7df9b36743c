package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

const singleKeyWarning = "TUF ROOT HELD BY ONE KEY ON THIS SERVER"

// TestARootHeldByCustodiansIsSignedOnTwoMachinesAndPublished moves the
// embedded default's single root key to 2 of 3 custodians on the real
// server, on both backends: each custodian makes a key in a directory of
// its own, the proposal is signed by the server's old root key (the
// migration) and, in separate processes, on two custodians' machines; a
// proposal with one custodian's signature is refused with a clear error;
// then an online key rotates through a proposal, a device initialised on
// the old root walks to the new ones, and a restarted server no longer
// warns.
func TestARootHeldByCustodiansIsSignedOnTwoMachinesAndPublished(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			srv := testenv.Serve(t, opts)
			admin := []string{"--server", srv.URL, "--token", srv.Token}
			logText := func() string {
				b, _ := os.ReadFile(srv.Log)
				return string(b)
			}
			if !strings.Contains(logText(), singleKeyWarning) {
				t.Fatalf("the embedded default's single root key starts without the warning:\n%s", srv.LogTail())
			}
			base := t.TempDir()
			state := filepath.Join(base, "device", "state")
			afterlife(t, true, "device", "init", "--registry", srv.URL, "--state", state, "--id", "usb:acme:cam", "--product", "acme-cam", "--trust-on-first-use")

			// Three custodians, each on a machine (a directory) of its own.
			machine := map[string]string{}
			var pubs []string
			for _, c := range []string{"alice", "bob", "carol"} {
				machine[c] = filepath.Join(base, c)
				if err := os.MkdirAll(machine[c], 0o700); err != nil {
					t.Fatal(err)
				}
				out, _ := afterlife(t, true, "admin", "root", "keygen", "--out", filepath.Join(machine[c], "root.key"))
				if !strings.Contains(out, "keep it offline") {
					t.Fatalf("keygen said %q", out)
				}
				pubs = append(pubs, "--key-pub", filepath.Join(machine[c], "root.key.pub"))
			}
			proposal := filepath.Join(base, "proposal.json")
			out, _ := afterlife(t, true, append(append([]string{"admin", "root", "propose", "--threshold", "2", "--out", proposal}, pubs...), admin...)...)
			if !strings.Contains(out, "root version 2") || !strings.Contains(out, "needs 2 of these 3") {
				t.Fatalf("propose said %q", out)
			}
			// The migration: the server's single root key signs the move.
			afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(srv.Data, "keys", "tuf", "root.key"), proposal)
			copies := map[string]string{}
			for _, c := range []string{"alice", "bob"} {
				b, err := os.ReadFile(proposal)
				if err != nil {
					t.Fatal(err)
				}
				copies[c] = filepath.Join(machine[c], "proposal.json")
				if err := os.WriteFile(copies[c], b, 0o644); err != nil {
					t.Fatal(err)
				}
				out, _ := afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(machine[c], "root.key"), copies[c])
				if !strings.Contains(out, "signatures: 2") {
					t.Fatalf("%s's signature: %q", c, out)
				}
			}

			t.Run("a proposal with one signature of the two the new root needs is refused", func(t *testing.T) {
				_, stderr := afterlife(t, false, append([]string{"admin", "root", "publish", copies["alice"]}, admin...)...)
				if !strings.Contains(stderr, "root version 2 is not signed by 2 of its own 3 root keys") || !strings.Contains(stderr, "it has 1 valid signatures of them") {
					t.Fatalf("the refusal does not say why:\n%s", stderr)
				}
			})
			out, _ = afterlife(t, true, append([]string{"admin", "root", "publish", copies["alice"], copies["bob"]}, admin...)...)
			if !strings.Contains(out, "root version 2 published") {
				t.Fatalf("publish said %q", out)
			}
			if out, _ := afterlife(t, true, append([]string{"admin", "root", "show"}, admin...)...); !strings.Contains(out, "root version 2") || !strings.Contains(out, "needs 2 of these 3") {
				t.Fatalf("show said %q", out)
			}

			t.Run("an online key rotates through a proposal the custodians sign", func(t *testing.T) {
				rotation := filepath.Join(base, "rotation.json")
				out, _ := afterlife(t, true, append([]string{"admin", "keys", "rotate", "timestamp", "--proposal-out", rotation}, admin...)...)
				if !strings.Contains(out, "held by custodians") {
					t.Fatalf("rotate said %q", out)
				}
				afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(machine["bob"], "root.key"), rotation)
				afterlife(t, true, "admin", "root", "sign", "--key", filepath.Join(machine["carol"], "root.key"), rotation)
				if out, _ := afterlife(t, true, append([]string{"admin", "root", "publish", rotation}, admin...)...); !strings.Contains(out, "root version 3 published") {
					t.Fatalf("publish said %q", out)
				}
			})

			t.Run("a device initialised on the single-key root walks to the custodians' root", func(t *testing.T) {
				// The product has no release, so the update ends at the
				// missing release list, after the metadata refresh verified
				// every root version on the way.
				_, stderr := afterlife(t, false, "device", "update", "--registry", srv.URL, "--state", state,
					"--install-to", filepath.Join(base, "device", "install"), "--from-metadata")
				if !strings.Contains(stderr, "no release list for product acme-cam") {
					t.Fatalf("the update did not get past the metadata refresh:\n%s", stderr)
				}
				trusted, err := os.ReadFile(filepath.Join(state, "tuf", "root.json"))
				if err != nil {
					t.Fatal(err)
				}
				if sum, err := tuf.DescribeRoot(trusted); err != nil || sum.Version != 3 || sum.Threshold != 2 || len(sum.RootKeys) != 3 {
					t.Fatalf("the device trusts %+v (%v), want root version 3 held by 2 of 3", sum, err)
				}
			})

			t.Run("a restarted server loads the rotated key and no longer warns", func(t *testing.T) {
				if err := srv.Stop(syscall.SIGTERM); err != nil {
					t.Fatalf("stop: %v", err)
				}
				srv.Restart()
				if n := strings.Count(logText(), singleKeyWarning); n != 1 {
					t.Fatalf("the single-key warning appears %d times; want once, before the move", n)
				}
				if out, _ := afterlife(t, true, append([]string{"admin", "root", "show"}, admin...)...); !strings.Contains(out, "root version 3") {
					t.Fatalf("show after restart said %q", out)
				}
			})
		})
	}
}
