package fwupd_test

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
	"github.com/afterlife-oss/afterlife/registry/fwupd/jcat"
)

func move(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func TestTheCAKeyLivesOfflineAndRenewsTheSigningCertificateFromThere(t *testing.T) {
	dir, offline, out := t.TempDir(), t.TempDir(), t.TempDir()
	start := time.Now()
	first, err := fwupd.LoadSigner(dir, "test", start, true, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the first start makes the CA beside the signing key, and says the CA key is online", func(t *testing.T) {
		if !first.Online || !first.CA.IsCA || first.Cert.CheckSignatureFrom(first.CA) != nil {
			t.Fatalf("signer = online %v, CA %v", first.Online, first.CA.IsCA)
		}
	})
	t.Run("a later replica, which may not make a CA, makes none and says what is missing", func(t *testing.T) {
		empty := t.TempDir()
		_, err := fwupd.LoadSigner(empty, "test", start, false, testenv.Logger(t))
		if !errs.Is(err, errs.Unavailable) {
			t.Fatalf("err = %v, want Unavailable", err)
		}
		if _, err := os.Stat(filepath.Join(empty, fwupd.CACertFile)); err == nil {
			t.Fatal("it made a CA")
		}
	})
	move(t, filepath.Join(dir, fwupd.CAKeyFile), filepath.Join(offline, fwupd.CAKeyFile))
	b, _ := os.ReadFile(filepath.Join(dir, fwupd.CACertFile))
	os.WriteFile(filepath.Join(offline, fwupd.CACertFile), b, 0o644)

	t.Run("without the CA key a restart keeps the CA and the signing key", func(t *testing.T) {
		s, err := fwupd.LoadSigner(dir, "test", start.Add(time.Hour), true, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if s.Online || !s.CA.Equal(first.CA) || !s.Cert.Equal(first.Cert) {
			t.Fatal("a restart without the CA key changed the CA or the signing certificate")
		}
	})
	later := first.Cert.NotAfter.Add(24 * time.Hour)
	t.Run("an expired signing certificate stops the remote, naming the offline command", func(t *testing.T) {
		_, err := fwupd.LoadSigner(dir, "test", later, true, testenv.Logger(t))
		if !errs.Is(err, errs.Unavailable) || !strings.Contains(err.Error(), "afterlife admin fwupd issue") {
			t.Fatalf("err = %v, want Unavailable naming the command", err)
		}
	})
	t.Run("a certificate issued offline and copied in signs for the same CA", func(t *testing.T) {
		// Signed now: the PKCS#7 signing time is the system clock's.
		renewed := start
		if _, err := fwupd.IssueSigning(offline, out, renewed, fwupd.SigningValidity); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{fwupd.SigningKeyFile, fwupd.SigningCert} {
			move(t, filepath.Join(out, f), filepath.Join(dir, f))
		}
		s, err := fwupd.LoadSigner(dir, "test", renewed, true, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if !s.CA.Equal(first.CA) || s.Cert.Equal(first.Cert) {
			t.Fatal("want the same CA and a new signing certificate")
		}
		data := []byte("metadata")
		sig, err := jcat.Sign(data, s.Cert, s.Key, renewed)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(first.CA)
		if err := jcat.Verify(data, sig, roots); err != nil {
			t.Fatalf("devices trusting the CA refuse the new signature: %v", err)
		}
	})
}

func TestEveryReplicaServesUnderTheCATheDatabaseRecorded(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d) // records its CA
		other, err := fwupd.LoadSigner(t.TempDir(), "other", time.Now(), true, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Run("a replica with the same CA starts", func(t *testing.T) {
			if _, err := fwupd.New(context.Background(), fwupd.Options{DB: d, Blobs: e.blobs, Products: noProducts{}, Releases: e.releases, Signer: e.signer}); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("a replica with a CA of its own is refused, naming the fix", func(t *testing.T) {
			_, err := fwupd.New(context.Background(), fwupd.Options{DB: d, Blobs: e.blobs, Products: noProducts{}, Releases: e.releases, Signer: other})
			if !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "KEYS/fwupd") {
				t.Fatalf("err = %v, want a Conflict naming KEYS/fwupd", err)
			}
		})
	})
}

type noProducts struct{}

func (noProducts) WithFwupdGUIDs(context.Context) ([]catalog.Product, error) { return nil, nil }
