// Package keyring records the fingerprints of the keys a database was
// initialised with (the escrow identity, the receipt keys, …) and checks a
// replica's key directory against them, so that a replica with missing or
// different keys refuses to start instead of writing data other replicas
// cannot read. It holds fingerprints only, never a key; it does not know
// where keys come from or how they are made.
package keyring

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Key is one key as a replica holds it.
type Key struct {
	Name string // what the key is, e.g. "escrow identity"
	// File is where the replica expects it, relative to its key directory.
	File string
	// Fingerprint identifies the key without revealing it (see
	// Fingerprint); "" when the file is missing.
	Fingerprint string
}

// Fingerprint is how a key is recorded: "sha256:" and the hex digest of
// its public part, or of the secret itself for a symmetric key (a digest
// of 32 random bytes does not reveal them).
func Fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Ring is the recorded fingerprints of one database.
type Ring struct {
	db  *db.DB
	now func() time.Time
}

// Open migrates the keyring table.
func Open(ctx context.Context, d *db.DB, now func() time.Time) (*Ring, error) {
	sub, _ := fs.Sub(migrations, "migrations")
	if err := d.Migrate(ctx, "keyring", sub); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Ring{db: d, now: now}, nil
}

// Recorded returns the recorded keys by name; empty when the database has
// recorded none yet.
func (r *Ring) Recorded(ctx context.Context) (map[string]Key, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT name, file, fingerprint FROM keyring_keys`)
	if err != nil {
		return nil, fmt.Errorf("keyring: read: %w", db.Classify(err))
	}
	defer rows.Close()
	out := map[string]Key{}
	for rows.Next() {
		var k Key
		if err := rows.Scan(&k.Name, &k.File, &k.Fingerprint); err != nil {
			return nil, fmt.Errorf("keyring: read: %w", err)
		}
		out[k.Name] = k
	}
	return out, rows.Err()
}

// Record stores the fingerprints of keys in one transaction, unless some
// are recorded already (another replica initialised the database first):
// then it records nothing. Either way it returns what is recorded now, for
// Check.
func (r *Ring) Record(ctx context.Context, keys []Key) (map[string]Key, error) {
	for _, k := range keys {
		if k.Fingerprint == "" {
			return nil, errs.E(errs.Invalid, "keyring: %s (%s) has no fingerprint to record", k.Name, k.File)
		}
	}
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM keyring_keys`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		for _, k := range keys {
			// ON CONFLICT: a replica recording at the same moment won.
			if _, err := tx.ExecContext(ctx, r.db.Q(`INSERT INTO keyring_keys (name, file, fingerprint, recorded) VALUES (?, ?, ?, ?)
				ON CONFLICT (name) DO NOTHING`), k.Name, k.File, k.Fingerprint, db.Millis(r.now())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keyring: record: %w", err)
	}
	return r.Recorded(ctx)
}

// Check compares the keys a replica holds with the recorded ones. It names
// every key that is missing (and where it was expected) or is not the one
// the database was initialised with; dir is the replica's key directory,
// for the message. A key the database never recorded (one added by a later
// version) is accepted, and so is a recorded key the replica no longer
// uses.
func Check(recorded map[string]Key, held []Key, dir string) error {
	var problems []string
	for _, k := range held {
		want, ok := recorded[k.Name]
		switch {
		case !ok:
		case k.Fingerprint == "":
			problems = append(problems, fmt.Sprintf("%s is missing: expected %s/%s (fingerprint %s)", k.Name, dir, want.File, want.Fingerprint))
		case k.Fingerprint != want.Fingerprint:
			problems = append(problems, fmt.Sprintf("%s in %s/%s is not the key the database was initialised with (fingerprint %s, want %s)", k.Name, dir, k.File, k.Fingerprint, want.Fingerprint))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return errs.E(errs.Invalid, "the key directory does not hold the keys this database was initialised with: %s; give this replica the same keys as the others (docs/deploy.md, \"Keys\")", strings.Join(problems, "; "))
}
