// Package dbtest runs database code against both databases afterlife
// supports: a fresh SQLite file and a fresh database on a real PostgreSQL
// server (started by internal/testenv). Every store test in every part uses
// Each, so no query works on one database only. The package also holds the
// conformance suite for internal/db itself.
package dbtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// Each runs fn once on SQLite and once on PostgreSQL, as subtests.
func Each(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite opens a fresh SQLite database under t.TempDir.
func SQLite(t testing.TB) *db.DB {
	t.Helper()
	return open(t, "sqlite:"+filepath.Join(t.TempDir(), "afterlife.db"))
}

// Postgres opens a fresh database on the test PostgreSQL server.
func Postgres(t testing.TB) *db.DB {
	t.Helper()
	return open(t, testenv.Postgres(t))
}

func open(t testing.TB, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
