package jcat_test

import (
	"crypto/x509"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
	"github.com/afterlife-oss/afterlife/registry/fwupd/jcat"
)

func signer(t *testing.T, dir string) *fwupd.Signer {
	t.Helper()
	s, err := fwupd.LoadSigner(dir, "test", time.Now(), true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jcatTool runs Debian's jcat-tool verify on a Jcat file, trusting only
// the CA certificate in caDir; it reads each item's data from the file of
// that name beside the Jcat file.
func jcatTool(t *testing.T, caDir, file string) (string, error) {
	t.Helper()
	cmd := exec.Command("jcat-tool", "verify", "--public-keys", caDir, filepath.Base(file))
	cmd.Dir = filepath.Dir(file)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestJcatToolVerifiesOurChecksumAndSignatureWithTheCA(t *testing.T) {
	dir := t.TempDir()
	s := signer(t, filepath.Join(dir, "keys"))
	caDir := filepath.Join(dir, "ca")
	os.MkdirAll(caDir, 0o755)
	os.WriteFile(filepath.Join(caDir, "afterlife.pem"), s.CAPEM, 0o644)

	data := []byte("<components/>\n")
	now := time.Now()
	sig, err := jcat.Sign(data, s.Cert, s.Key, now)
	if err != nil {
		t.Fatal(err)
	}
	f := jcat.New()
	f.Items = append(f.Items, jcat.Item{ID: "firmware.xml.zst", Blobs: []jcat.Blob{jcat.Checksum(data, now), sig}})
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "firmware.xml.zst.jcat")
	dataFile := filepath.Join(dir, "firmware.xml.zst")
	os.WriteFile(file, b, 0o644)
	os.WriteFile(dataFile, data, 0o644)

	t.Run("jcat-tool passes the checksum and the signature", func(t *testing.T) {
		out, err := jcatTool(t, caDir, file)
		if err != nil {
			t.Fatalf("jcat-tool verify: %v\n%s", err, out)
		}
		t.Logf("jcat-tool verify:\n%s", out)
		if strings.Count(out, "PASS") != 2 || strings.Contains(out, "FAIL") {
			t.Fatalf("jcat-tool verify:\n%s", out)
		}
	})
	t.Run("jcat-tool fails a changed byte", func(t *testing.T) {
		os.WriteFile(dataFile, []byte("<components/>!"), 0o644)
		defer os.WriteFile(dataFile, data, 0o644)
		if out, err := jcatTool(t, caDir, file); err == nil && !strings.Contains(out, "FAIL") {
			t.Fatalf("jcat-tool accepted changed data:\n%s", out)
		}
	})
	t.Run("jcat-tool fails a signature by a CA it does not trust", func(t *testing.T) {
		other := signer(t, filepath.Join(dir, "other"))
		osig, err := jcat.Sign(data, other.Cert, other.Key, now)
		if err != nil {
			t.Fatal(err)
		}
		g := jcat.New()
		g.Items = append(g.Items, jcat.Item{ID: "firmware.xml.zst", Blobs: []jcat.Blob{osig}})
		gb, _ := g.Marshal()
		gf := filepath.Join(dir, "other.jcat")
		os.WriteFile(gf, gb, 0o644)
		if out, err := jcatTool(t, caDir, gf); err == nil && !strings.Contains(out, "FAIL") {
			t.Fatalf("jcat-tool accepted an untrusted signer:\n%s", out)
		}
	})
	t.Run("Parse and Verify read back what Marshal wrote", func(t *testing.T) {
		g, err := jcat.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(s.CA)
		for _, bl := range g.Items[0].Blobs {
			if err := jcat.Verify(data, bl, roots); err != nil {
				t.Fatalf("kind %d: %v", bl.Kind, err)
			}
			if err := jcat.Verify([]byte("other"), bl, roots); !errs.Is(err, errs.Invalid) {
				t.Fatalf("kind %d verified other data: %v", bl.Kind, err)
			}
		}
	})
}
