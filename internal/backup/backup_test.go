package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// dataDir makes an embedded data directory: a database with one row, a
// blob, a half-written upload in the store's temporary files, and a key.
func dataDir(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(data, "afterlife.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ExecContext(ctx, `CREATE TABLE notes (text TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `INSERT INTO notes (text) VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	blobs, err := fsstore.New(filepath.Join(data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := blobs.Put(ctx, strings.NewReader("firmware"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "blobs", "tmp", "put-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "keys", "receipt.key"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return data, info.Digest.Hex()
}

func TestABackupRestoresTheDatabaseBlobsAndKeysWithoutUploadsInProgress(t *testing.T) {
	ctx := context.Background()
	data, hex := dataDir(t)
	dest := filepath.Join(t.TempDir(), "backup")
	m, err := Backup(ctx, data, dest, "test")
	if err != nil {
		t.Fatal(err)
	}
	blobPath := "blobs/sha256/" + hex[:2] + "/" + hex
	for _, want := range []string{"afterlife.db", blobPath, "keys/receipt.key"} {
		if m.Files[want] == "" {
			t.Fatalf("manifest lacks %s: %v", want, m.Files)
		}
	}
	for path := range m.Files {
		if strings.Contains(path, "tmp/") {
			t.Fatalf("the backup holds an upload in progress: %s", path)
		}
	}
	t.Run("a second backup into the same place is refused", func(t *testing.T) {
		if _, err := Backup(ctx, data, dest, "test"); !errs.Is(err, errs.Conflict) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a restore into an empty directory gets every file back", func(t *testing.T) {
		into := filepath.Join(t.TempDir(), "restored")
		n, err := Restore(dest, into)
		if err != nil || n != len(m.Files) {
			t.Fatalf("Restore = %d, %v; want %d files", n, err, len(m.Files))
		}
		if b, err := os.ReadFile(filepath.Join(into, filepath.FromSlash(blobPath))); err != nil || string(b) != "firmware" {
			t.Fatalf("restored blob = %q, %v", b, err)
		}
		d, err := db.Open(ctx, "sqlite:"+filepath.Join(into, "afterlife.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var text string
		if err := d.QueryRowContext(ctx, `SELECT text FROM notes`).Scan(&text); err != nil || text != "kept" {
			t.Fatalf("restored row = %q, %v", text, err)
		}
	})
	t.Run("a damaged backup restores nothing", func(t *testing.T) {
		if err := os.Chmod(filepath.Join(dest, "keys", "receipt.key"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dest, "keys", "receipt.key"), []byte("changed"), 0o600); err != nil {
			t.Fatal(err)
		}
		into := filepath.Join(t.TempDir(), "restored")
		if _, err := Restore(dest, into); !errs.Is(err, errs.Invalid) {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(into); !os.IsNotExist(err) {
			t.Fatalf("a failed restore left %s behind", into)
		}
	})
}
