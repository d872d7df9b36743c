package db

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"regexp"
)

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// NextSeq returns the next number of the append-only log kept in table,
// whose rows carry a gap-free `seq` column (1, 2, 3…), for a row that tx is
// about to insert. Call it in the transaction that appends the row.
//
// Logs are read in seq order, and readers that tail a log (everything after
// the last seq they saw) must never skip a row that commits later with a
// smaller number. So appends to one log are serialized until they commit:
// on PostgreSQL by a transaction-scoped advisory lock named after the log
// (a plain sequence would hand out numbers that commit out of order), on
// SQLite by its immediate transactions, which already admit one writer at a
// time. The unique index each log keeps on seq turns any slip into an error
// instead of a silent reordering.
func (d *DB) NextSeq(ctx context.Context, tx *sql.Tx, table string) (int64, error) {
	if !tableName.MatchString(table) {
		return 0, fmt.Errorf("db: next seq: bad table name %q", table)
	}
	if d.Dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, seqLockID(table)); err != nil {
			return 0, fmt.Errorf("db: next seq of %s: lock: %w", table, err)
		}
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM `+table).Scan(&seq); err != nil {
		return 0, fmt.Errorf("db: next seq of %s: %w", table, err)
	}
	return seq, nil
}

func seqLockID(table string) int64 {
	h := fnv.New64a()
	h.Write([]byte("afterlife-seq-" + table))
	return int64(h.Sum64() >> 1)
}
