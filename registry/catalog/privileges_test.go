package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestTheSearchIndexNeedsNoSuperuser migrates the catalog on PostgreSQL as
// roles that are not superusers, as a hosted database gives them: the
// database's owner creates pg_trgm itself (a trusted extension), and a
// role that may not create extensions migrates once an administrator has
// created it.
func TestTheSearchIndexNeedsNoSuperuser(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(role, dbname string) []string // run as the superuser
		fails bool
	}{
		{"the database's owner creates the extension itself", func(role, dbname string) []string {
			return []string{`ALTER DATABASE ` + dbname + ` OWNER TO ` + role}
		}, false},
		{"a role without the right to create it migrates once an administrator has", func(role, dbname string) []string {
			return []string{`GRANT CREATE ON SCHEMA public TO ` + role, `CREATE EXTENSION pg_trgm`}
		}, false},
		{"a role without the right to create it is told pg_trgm is missing", func(role, dbname string) []string {
			return []string{`GRANT CREATE ON SCHEMA public TO ` + role}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := testenv.Postgres(t)
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			dbname := strings.TrimPrefix(u.Path, "/")
			role := "r_" + dbname
			su, err := sql.Open("pgx", dsn) // not db.Open: it would migrate as the superuser
			if err != nil {
				t.Fatal(err)
			}
			defer su.Close()
			for _, stmt := range append([]string{fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB`, role)}, tc.setup(role, dbname)...) {
				if _, err := su.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			u.User = url.User(role)
			d, err := db.Open(ctx, u.String())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if tc.fails {
				if _, err := New(ctx, d, nil); err == nil || !strings.Contains(err.Error(), "pg_trgm") {
					t.Fatalf("New = %v, want an error naming pg_trgm", err)
				}
				return
			}
			c := newCatalog(t, d)
			if err := c.SetVendorName(ctx, "lumatek", "Lumatek Home"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Register(ctx, admin, Registration{ID: "lumatek-glow", Vendor: "lumatek", Model: "Glow"}); err != nil {
				t.Fatal(err)
			}
			if found, err := c.Search(ctx, "lumatec home glow", 10); err != nil || found.Total != 1 {
				t.Fatalf("Search = %+v, %v", found, err)
			}
		})
	}
}
