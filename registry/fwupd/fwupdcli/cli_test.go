package fwupdcli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/registry/fwupd"
	"github.com/afterlife-oss/afterlife/registry/fwupd/fwupdcli"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := fwupdcli.Command(time.Now)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestTheCAKeeperMakesACAAndIssuesSigningCertificatesOffline(t *testing.T) {
	ca, out := filepath.Join(t.TempDir(), "ca"), filepath.Join(t.TempDir(), "signing")
	if msg, err := run(t, "init-ca", "--dir", ca, "--name", "example"); err != nil || !strings.Contains(msg, "keep offline") {
		t.Fatalf("init-ca: %v\n%s", err, msg)
	}
	t.Run("a second init-ca keeps the CA", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(ca, fwupd.CACertFile))
		if _, err := run(t, "init-ca", "--dir", ca); err == nil {
			t.Fatal("init-ca replaced nothing but did not say so")
		}
		if after, _ := os.ReadFile(filepath.Join(ca, fwupd.CACertFile)); !bytes.Equal(before, after) {
			t.Fatal("the CA certificate changed")
		}
	})
	t.Run("issue writes what the server's KEYS/fwupd needs, and no CA key", func(t *testing.T) {
		if msg, err := run(t, "issue", "--ca", ca, "--out", out, "--validity", "720h"); err != nil {
			t.Fatalf("issue: %v\n%s", err, msg)
		}
		for _, f := range []string{fwupd.SigningKeyFile, fwupd.SigningCert, fwupd.CACertFile} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(filepath.Join(out, fwupd.CAKeyFile)); err == nil {
			t.Fatal("issue copied the CA key next to the signing key")
		}
		s, err := fwupd.LoadSigner(out, "example", time.Now(), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Online || s.Cert.NotAfter.After(time.Now().Add(721*time.Hour)) {
			t.Fatalf("signer online %v, valid until %s", s.Online, s.Cert.NotAfter)
		}
	})
}
