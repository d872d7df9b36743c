// Package tufdb keeps the registry's TUF metadata in the database, so every
// replica signs on top of, and serves, the same files. It implements
// registry/tuf's Store and nothing else: it does not sign, decide what is
// published, or serialise writers (the registry holds a database lease
// around every mutation of the repository).
package tufdb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

//go:embed migrations/*.sql
var migrations embed.FS

// maxMeta bounds one metadata file; hashed bins with many targets are the
// largest and stay far below it.
const maxMeta = 32 << 20

// Store is a tuf.Store on the database (table tuf_meta).
type Store struct {
	db  *db.DB
	now func() time.Time

	// Versioned files ("7.bins-2a.json") never change once written, so a
	// replica keeps the ones it has read; root.json and timestamp.json
	// change in place and are always read from the database.
	mu        sync.RWMutex
	immutable map[string][]byte
	cached    int
}

// cacheLimit bounds the bytes of immutable files kept in memory.
const cacheLimit = 64 << 20

// New migrates the tuf_meta table and returns the store.
func New(ctx context.Context, d *db.DB, now func() time.Time) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("tufdb: migrations: %w", err)
	}
	if err := d.Migrate(ctx, "tufdb", sub); err != nil {
		return nil, fmt.Errorf("tufdb: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Store{db: d, now: now, immutable: map[string][]byte{}}, nil
}

// versioned reports whether name is a consistent-snapshot file
// ("<n>.<role>.json"), which is written once and never replaced.
func versioned(name string) bool {
	v, rest, ok := strings.Cut(name, ".")
	if !ok || strings.Contains(name, "/") || rest == "" {
		return false
	}
	_, err := strconv.ParseUint(v, 10, 64)
	return err == nil
}

// GetMeta implements tuf.Store.
func (s *Store) GetMeta(ctx context.Context, name string) ([]byte, error) {
	imm := versioned(name)
	if imm {
		s.mu.RLock()
		b, ok := s.immutable[name]
		s.mu.RUnlock()
		if ok {
			return b, nil
		}
	}
	var data string
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT data FROM tuf_meta WHERE name = ?`), name).Scan(&data)
	if err != nil {
		return nil, db.NotFound(err, "tuf metadata %s not found", name)
	}
	b := []byte(data)
	if imm {
		s.mu.Lock()
		if s.cached+len(b) > cacheLimit {
			clear(s.immutable)
			s.cached = 0
		}
		s.immutable[name] = b
		s.cached += len(b)
		s.mu.Unlock()
	}
	return b, nil
}

// PutMeta implements tuf.Store.
func (s *Store) PutMeta(ctx context.Context, name string, data []byte) error {
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "\\\x00") {
		return errs.E(errs.Invalid, "tuf metadata name %q is not valid", name)
	}
	if len(data) > maxMeta {
		return errs.E(errs.TooLarge, "tuf metadata %s is larger than %d bytes", name, maxMeta)
	}
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO tuf_meta (name, data, created) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET data = excluded.data, created = excluded.created`),
		name, string(data), db.Millis(s.now()))
	if err != nil {
		return fmt.Errorf("tufdb: put %s: %w", name, db.Classify(err))
	}
	if versioned(name) {
		s.mu.Lock()
		if old, ok := s.immutable[name]; ok {
			s.cached -= len(old)
			delete(s.immutable, name)
		}
		s.mu.Unlock()
	}
	return nil
}
