package escrow

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestADepositReleasedBeforeRightsClassesStaysPublic migrates an escrow
// that holds a deposit released before rights classes existed: its files
// stay public, as its vendor's version 1 receipt promised.
func TestADepositReleasedBeforeRightsClassesStaysPublic(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite+disk":    func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "afterlife.db") },
		"postgres+minio": func(t *testing.T) string { return testenv.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			d := openDB(t, url(t))
			before := fstest.MapFS{}
			err := fs.WalkDir(migrations, "migrations", func(p string, de fs.DirEntry, err error) error {
				if err != nil || de.IsDir() || strings.Compare(filepath.Base(p), "00006") >= 0 {
					return err
				}
				b, err := migrations.ReadFile(p)
				before[filepath.Base(p)] = &fstest.MapFile{Data: b}
				return err
			})
			if err != nil || len(before) != 5 {
				t.Fatalf("migrations before rights: %d, %v", len(before), err)
			}
			if err := d.Migrate(ctx, "escrow", before); err != nil {
				t.Fatal(err)
			}
			content := "int main(void) { return 0; }\n"
			sum := hexSum([]byte(content))
			for _, q := range []string{
				`INSERT INTO escrow_deposits (id, product, org, policy, state, manifest_digest, files, total_size, created_by, created_at, sealed_at, released_at, fired)
				 VALUES ('dep_old', 'demo-cam', 'acme', 'immediate', 'released', 'sha256:00', 1, 29, 'acme-ci', 1, 1, 1, 'immediate')`,
				`INSERT INTO escrow_files (deposit, path, kind, size, sha256, link, cipher_digest, uploaded)
				 VALUES ('dep_old', 'src/main.c', 'source', 29, '` + sum + `', '', '', 1)`,
			} {
				if _, err := d.ExecContext(ctx, d.Q(q)); err != nil {
					t.Fatal(err)
				}
			}
			store := mustDisk(t)
			if _, err := store.Put(ctx, strings.NewReader(content), blob.Digest("sha256:"+sum)); err != nil {
				t.Fatal(err)
			}
			id, _ := age.GenerateX25519Identity()
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			e := &env{blobs: store, clock: &clock{t: t0}, identity: id, key: key, products: &products{owners: map[string]string{"demo-cam": "acme"}}}
			e.db = d
			e.svc = e.service(t, d, Options{})

			f, err := e.svc.Open(ctx, nobody, "dep_old", "src/main.c")
			if err != nil {
				t.Fatalf("an anonymous reader lost a file released before rights classes: %v", err)
			}
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) != content || f.Rights != manifest.Public {
				t.Fatalf("read %q as %s", b, f.Rights)
			}
			if ok, err := e.svc.MayBePublic(ctx, blob.Digest("sha256:"+sum)); !ok || err != nil {
				t.Fatalf("MayBePublic = %v, %v", ok, err)
			}
			dep, err := e.svc.Get(ctx, nobody, "dep_old")
			if err != nil || len(dep.Rights) != 1 || dep.Rights[0].Pattern != "**" || dep.Rights[0].Rights != manifest.Public {
				t.Fatalf("Get = %+v, %v", dep.Rights, err)
			}
		})
	}
}
