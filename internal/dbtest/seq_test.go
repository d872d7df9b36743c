package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/afterlife-oss/afterlife/internal/db"
)

var logMigrations = fstest.MapFS{
	"00001_log.sql": {Data: []byte(`-- +goose Up
CREATE TABLE test_log (id TEXT PRIMARY KEY, seq BIGINT NOT NULL, writer INTEGER NOT NULL);
CREATE UNIQUE INDEX test_log_seq ON test_log (seq);
-- +goose Down
DROP TABLE test_log;
`)},
}

// A log tailed by seq must never show a reader a later number before an
// earlier one has committed: the reader would move past the earlier row and
// never see it. Concurrent writers hold their transaction open for a while
// after taking a number, which is when out-of-order commits would happen.
func TestLogSequencesAreGapFreeForATailingReader(t *testing.T) {
	t.Parallel()
	Each(t, func(t *testing.T, d *db.DB) {
		t.Parallel()
		ctx := context.Background()
		if err := d.Migrate(ctx, "testlog", logMigrations); err != nil {
			t.Fatal(err)
		}
		const writers, appends = 6, 20
		var wg sync.WaitGroup
		errc := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range appends {
					err := d.Tx(ctx, func(tx *sql.Tx) error {
						seq, err := d.NextSeq(ctx, tx, "test_log")
						if err != nil {
							return err
						}
						if _, err := tx.ExecContext(ctx, d.Q(`INSERT INTO test_log (id, seq, writer) VALUES (?, ?, ?)`),
							fmt.Sprintf("w%d-%d", w, i), seq, w); err != nil {
							return err
						}
						// Work after the number was taken and before commit.
						var n int
						return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM test_log`).Scan(&n)
					})
					if err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()

		var last int64
		tail := func() {
			rows, err := d.QueryContext(ctx, d.Q(`SELECT seq FROM test_log WHERE seq > ? ORDER BY seq`), last)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var seq int64
				if err := rows.Scan(&seq); err != nil {
					t.Fatal(err)
				}
				if seq != last+1 {
					t.Fatalf("the tailing reader saw seq %d right after %d: a row would be skipped", seq, last)
				}
				last = seq
			}
		}
		for running := true; running; {
			select {
			case <-done:
				running = false
			default:
			}
			tail()
		}
		tail()
		close(errc)
		for err := range errc {
			t.Fatalf("append: %v", err)
		}
		if last != writers*appends {
			t.Fatalf("the reader reached seq %d, want %d", last, writers*appends)
		}
	})
}

func TestNextSeqRefusesABadTableName(t *testing.T) {
	t.Parallel()
	d := SQLite(t)
	err := d.Tx(context.Background(), func(tx *sql.Tx) error {
		_, err := d.NextSeq(context.Background(), tx, "t; DROP TABLE x")
		return err
	})
	if err == nil {
		t.Fatal("NextSeq accepted a table name with SQL in it")
	}
}
