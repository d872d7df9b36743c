package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var counterMigrations = fstest.MapFS{
	"00001_counters.sql": {Data: []byte(`-- +goose Up
CREATE TABLE counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL, at BIGINT NOT NULL DEFAULT 0);
CREATE TABLE jobs (id TEXT PRIMARY KEY, claimed_by TEXT NOT NULL DEFAULT '');
-- +goose Down
DROP TABLE jobs;
DROP TABLE counters;
`)},
}

// The conformance checks run in parallel: on both databases at once, and
// within each, every check on rows of its own, so they also show that the
// database takes concurrent work.
func TestConformance(t *testing.T) {
	t.Parallel()
	Each(t, func(t *testing.T, d *db.DB) {
		t.Parallel()
		ctx := context.Background()
		if err := d.Migrate(ctx, "test", counterMigrations); err != nil {
			t.Fatal(err)
		}

		t.Run("migrations are idempotent", func(t *testing.T) {
			t.Parallel()
			if err := d.Migrate(ctx, "test", counterMigrations); err != nil {
				t.Fatalf("second migrate: %v", err)
			}
		})

		t.Run("placeholders and times round trip", func(t *testing.T) {
			t.Parallel()
			at := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
			if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO counters (name, n, at) VALUES (?, ?, ?)`), "rt", 7, db.Millis(at)); err != nil {
				t.Fatal(err)
			}
			var n, ms int64
			if err := d.QueryRowContext(ctx, d.Q(`SELECT n, at FROM counters WHERE name = ? AND n = ?`), "rt", 7).Scan(&n, &ms); err != nil {
				t.Fatal(err)
			}
			if got := db.FromMillis(ms); !got.Equal(at) || n != 7 {
				t.Fatalf("got n=%d at=%v, want 7 at %v", n, got, at)
			}
		})

		t.Run("a failed transaction leaves nothing", func(t *testing.T) {
			t.Parallel()
			boom := errors.New("boom")
			err := d.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, d.Q(`INSERT INTO counters (name, n) VALUES (?, 1)`), "rolled-back"); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("Tx returned %v, want boom", err)
			}
			var n int
			d.QueryRowContext(ctx, d.Q(`SELECT COUNT(*) FROM counters WHERE name = ?`), "rolled-back").Scan(&n)
			if n != 0 {
				t.Fatal("rolled back row is visible")
			}
		})

		t.Run("unique violations are recognised", func(t *testing.T) {
			t.Parallel()
			q := d.Q(`INSERT INTO counters (name, n) VALUES (?, 0)`)
			if _, err := d.ExecContext(ctx, q, "dup"); err != nil {
				t.Fatal(err)
			}
			_, err := d.ExecContext(ctx, q, "dup")
			if !db.IsUniqueViolation(err) {
				t.Fatalf("second insert: %v, want a unique violation", err)
			}
		})

		t.Run("concurrent read-modify-write transactions lose no update", func(t *testing.T) {
			t.Parallel()
			if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO counters (name, n) VALUES (?, 0)`), "race"); err != nil {
				t.Fatal(err)
			}
			const workers, each = 8, 25
			var wg sync.WaitGroup
			errc := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						err := d.Tx(ctx, func(tx *sql.Tx) error {
							var n int64
							q := `SELECT n FROM counters WHERE name = ?`
							if d.Dialect == db.Postgres {
								q += " FOR UPDATE"
							}
							if err := tx.QueryRowContext(ctx, d.Q(q), "race").Scan(&n); err != nil {
								return err
							}
							_, err := tx.ExecContext(ctx, d.Q(`UPDATE counters SET n = ? WHERE name = ?`), n+1, "race")
							return err
						})
						if err != nil {
							errc <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			var n int
			d.QueryRowContext(ctx, d.Q(`SELECT n FROM counters WHERE name = ?`), "race").Scan(&n)
			if n != workers*each {
				t.Fatalf("counter = %d, want %d", n, workers*each)
			}
		})

		t.Run("claiming rows hands each row to one worker", func(t *testing.T) {
			t.Parallel()
			for i := 0; i < 40; i++ {
				d.ExecContext(ctx, d.Q(`INSERT INTO jobs (id) VALUES (?)`), string(rune('A'+i)))
			}
			var claimed atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for {
						got := false
						err := d.Tx(ctx, func(tx *sql.Tx) error {
							got = false
							var id string
							err := tx.QueryRowContext(ctx, d.Q(`SELECT id FROM jobs WHERE claimed_by = '' ORDER BY id LIMIT 1`+d.SkipLocked())).Scan(&id)
							if errors.Is(err, sql.ErrNoRows) {
								return nil
							}
							if err != nil {
								return err
							}
							res, err := tx.ExecContext(ctx, d.Q(`UPDATE jobs SET claimed_by = ? WHERE id = ? AND claimed_by = ''`), string(rune('0'+w)), id)
							if err != nil {
								return err
							}
							n, _ := res.RowsAffected()
							got = n == 1
							return nil
						})
						if err != nil {
							t.Error(err)
							return
						}
						if !got {
							var left int
							d.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs WHERE claimed_by = ''`).Scan(&left)
							if left == 0 {
								return
							}
							continue
						}
						claimed.Add(1)
					}
				}(w)
			}
			wg.Wait()
			if claimed.Load() != 40 {
				t.Fatalf("claimed %d rows, want 40 (each exactly once)", claimed.Load())
			}
		})

		t.Run("a lease has one holder until it expires", func(t *testing.T) {
			t.Parallel()
			now := time.Unix(1_800_000_000, 0)
			ok, err := d.TryLease(ctx, "sched", "replica-a", time.Minute, now)
			if err != nil || !ok {
				t.Fatalf("a: %v %v", ok, err)
			}
			if ok, _ := d.TryLease(ctx, "sched", "replica-b", time.Minute, now.Add(30*time.Second)); ok {
				t.Fatal("b took a lease a still holds")
			}
			if ok, _ := d.TryLease(ctx, "sched", "replica-a", time.Minute, now.Add(30*time.Second)); !ok {
				t.Fatal("a could not renew its own lease")
			}
			if ok, _ := d.TryLease(ctx, "sched", "replica-b", time.Minute, now.Add(2*time.Minute)); !ok {
				t.Fatal("b could not take an expired lease")
			}
			if err := d.ReleaseLease(ctx, "sched", "replica-b"); err != nil {
				t.Fatal(err)
			}
			if ok, _ := d.TryLease(ctx, "sched", "replica-a", time.Minute, now.Add(2*time.Minute)); !ok {
				t.Fatal("a could not take a released lease")
			}
		})

		t.Run("missing rows become NotFound", func(t *testing.T) {
			t.Parallel()
			var n int
			err := d.QueryRowContext(ctx, d.Q(`SELECT n FROM counters WHERE name = ?`), "nope").Scan(&n)
			if !errs.Is(db.NotFound(err, "counter %s", "nope"), errs.NotFound) {
				t.Fatalf("got %v", err)
			}
		})
	})
}

func TestQRebindsPlaceholdersOutsideStrings(t *testing.T) {
	t.Parallel()
	pg := &db.DB{Dialect: db.Postgres}
	for _, tc := range []struct{ in, want string }{
		{"SELECT ? , ?", "SELECT $1 , $2"},
		{"SELECT '?' , ?", "SELECT '?' , $1"},
		{"no params", "no params"},
	} {
		if got := pg.Q(tc.in); got != tc.want {
			t.Errorf("Q(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	sq := &db.DB{Dialect: db.SQLite}
	if got := sq.Q("SELECT ?"); got != "SELECT ?" {
		t.Errorf("sqlite Q changed the query: %q", got)
	}
}
