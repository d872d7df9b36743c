// Package db opens afterlife's database, SQLite (modernc, pure Go) or
// PostgreSQL (pgx), and gives the parts the few things that differ between
// the two: placeholder rebinding, transactions with retry, per-part
// migrations, row claiming and leases for singleton work across replicas.
// Each part owns its own tables and queries; this package owns none of
// theirs and must not import any part.
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Dialect says which database is behind a DB.
type Dialect int

const (
	SQLite Dialect = iota + 1
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is a database handle that knows its dialect.
type DB struct {
	*sql.DB
	Dialect Dialect
}

//go:embed migrations/*.sql
var ownMigrations embed.FS

// Open connects to url: "postgres://…" (or "postgresql://…") selects
// PostgreSQL; "sqlite:PATH" or a plain path selects SQLite in WAL mode with a
// busy timeout and immediate transactions, so concurrent writers queue
// instead of failing, and reads through a memory map of up to 256 MiB
// (the search index's pages without a read call each). Open applies this package's own migrations (leases).
func Open(ctx context.Context, url string) (*DB, error) {
	d, err := open(url)
	if err != nil {
		return nil, err
	}
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		return nil, errs.Wrap(errs.Unavailable, err, "database %s unreachable", redact(url))
	}
	sub, _ := fs.Sub(ownMigrations, "migrations")
	if err := d.Migrate(ctx, "db", sub); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func open(url string) (*DB, error) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		sdb, err := sql.Open("pgx", url)
		if err != nil {
			return nil, fmt.Errorf("db: open postgres: %w", err)
		}
		sdb.SetMaxOpenConns(32)
		sdb.SetMaxIdleConns(8)
		sdb.SetConnMaxIdleTime(5 * time.Minute)
		return &DB{DB: sdb, Dialect: Postgres}, nil
	}
	path := strings.TrimPrefix(url, "sqlite:")
	if path == "" {
		return nil, errs.E(errs.Invalid, "database url %q: want postgres://… or sqlite:PATH", url)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=mmap_size(268435456)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("db: open sqlite %s: %w", path, err)
	}
	// One writer at a time is SQLite's rule; a small pool keeps readers
	// concurrent under WAL without piling up writers on the busy timeout.
	sdb.SetMaxOpenConns(8)
	return &DB{DB: sdb, Dialect: SQLite}, nil
}

func redact(url string) string {
	if i := strings.Index(url, "@"); i > 0 && strings.Contains(url, "://") {
		return url[:strings.Index(url, "://")+3] + "…" + url[i:]
	}
	return url
}

// Q rebinds the ? placeholders of query to $1, $2… for PostgreSQL. Queries
// are written once, with ?, and passed through Q.
func (d *DB) Q(query string) string {
	if d.Dialect != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	inString := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inString = !inString
			b.WriteByte(c)
		case c == '?' && !inString:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// SkipLocked is the suffix for a SELECT that claims rows: other
// transactions skip the rows this one locked. SQLite needs none, since its
// immediate transactions already run one writer at a time.
func (d *DB) SkipLocked() string {
	if d.Dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// Tx runs fn in a transaction and commits it, or rolls back when fn fails.
// Serialization failures, deadlocks and busy errors are retried with a short
// backoff, so fn may run more than once and must not have side effects
// outside the transaction.
func (d *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	backoff := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := d.tx(ctx, fn)
		if err == nil || !retryable(err) || attempt >= 8 {
			return Classify(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (d *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	return false
}

// IsUniqueViolation reports whether err is a unique or primary key clash.
func IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Classify gives database errors that mean "the database is not there right
// now" the Unavailable kind, so callers answer 503 and clients retry; other
// errors pass through unchanged.
func Classify(err error) error {
	if err == nil || errs.KindOf(err) != errs.Internal {
		return err
	}
	var ne net.Error
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.As(err, &ne):
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	case errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")):
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	}
	return err
}

// Migrate applies the goose migrations at the root of fsys for one part.
// Each part has its own version table (goose_db_version_<part>), so parts
// evolve their schemas independently. On PostgreSQL a session advisory lock
// keeps replicas that start together from migrating at once.
//
// A migration only one database understands (a full-text index: SQLite's
// FTS5, PostgreSQL's pg_trgm) lives in the folder named after the dialect,
// fsys's sqlite/ or postgres/, once in each under the same version number;
// Migrate reads the root and its dialect's folder as one set.
func (d *DB) Migrate(ctx context.Context, part string, fsys fs.FS) error {
	fsys = dialectFS{root: fsys, dir: d.Dialect.String()}
	opts := []goose.ProviderOption{
		goose.WithTableName("goose_db_version_" + part),
		goose.WithDisableGlobalRegistry(true),
	}
	dialect := goose.DialectSQLite3
	if d.Dialect == Postgres {
		dialect = goose.DialectPostgres
		h := fnv.New64a()
		h.Write([]byte("afterlife-migrate-" + part))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
		if err != nil {
			return fmt.Errorf("db: migrate %s: %w", part, err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, d.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("db: migrate %s: %w", part, err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("db: migrate %s: %w", part, Classify(err))
	}
	for _, r := range res {
		slog.Debug("migration applied", "part", part, "version", r.Source.Version, "took", r.Duration)
	}
	return nil
}

// dialectFS is a part's migrations as goose reads them: the files at the
// root and those in the dialect's folder, side by side.
type dialectFS struct {
	root fs.FS
	dir  string
}

func (f dialectFS) Open(name string) (fs.File, error) {
	if name != "." && !strings.Contains(name, "/") {
		if file, err := f.root.Open(f.dir + "/" + name); err == nil {
			return file, nil
		}
	}
	return f.root.Open(name)
}

// Glob matches pattern at the root and in the dialect's folder; a name
// in both is a mistake in the part's migrations.
func (f dialectFS) Glob(pattern string) ([]string, error) {
	top, err := fs.Glob(f.root, pattern)
	if err != nil {
		return nil, err
	}
	sub, err := fs.Glob(f.root, f.dir+"/"+pattern)
	if err != nil {
		return nil, err
	}
	for _, name := range sub {
		base := strings.TrimPrefix(name, f.dir+"/")
		if slices.Contains(top, base) {
			return nil, fmt.Errorf("db: migration %s is both shared and %s only", base, f.dir)
		}
		top = append(top, base)
	}
	slices.Sort(top)
	return top, nil
}

// TryLease makes holder the holder of the lease called name until now+ttl,
// if nobody else holds it unexpired. It reports whether holder holds it now.
// Periodic work that must run on one replica at a time takes a lease first.
func (d *DB) TryLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	res, err := d.ExecContext(ctx, d.Q(`INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.holder = excluded.holder OR leases.expires < ?`),
		name, holder, Millis(now.Add(ttl)), Millis(now))
	if err != nil {
		return false, fmt.Errorf("db: lease %s: %w", name, Classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("db: lease %s: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives the lease up, if holder holds it.
func (d *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := d.ExecContext(ctx, d.Q(`DELETE FROM leases WHERE name = ? AND holder = ?`), name, holder)
	if err != nil {
		return fmt.Errorf("db: release lease %s: %w", name, Classify(err))
	}
	return nil
}

// Millis is how times are stored: unix milliseconds in a BIGINT column.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMillis is the inverse of Millis; 0 is the zero time.
func FromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// NotFound turns sql.ErrNoRows into an errs.NotFound error with the given
// message and leaves other errors classified.
func NotFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errs.Wrap(errs.NotFound, err, format, args...)
	}
	return Classify(err)
}
