// Package translog is afterlife's transparency log: one append-only entry
// per handover event (products, deposits, releases, …), a Merkle tree over
// them (RFC 6962 hashing, golang.org/x/mod/sumdb/tlog), signed checkpoints
// (C2SP tlog-checkpoint, golang.org/x/mod/sumdb/note), the C2SP tlog-tiles
// layout served over HTTP and witnesses' cosignatures (C2SP
// tlog-cosignature). Entries, tree hashes and checkpoints live in the
// database, one implementation for SQLite and PostgreSQL.
//
// The log pulls events from the parts' own append-only event logs (their
// gap-free seq makes each one an outbox): a Source is a part's log as the
// log consumes it, wired in cmd/afterlife. One writer at a time appends,
// under a lease; each source's cursor moves in the transaction that
// appends its events, so an event is logged once and none is lost.
//
// It must not import another part, and it never deletes or rewrites an
// entry: a correction is a new entry.
package translog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/logevent"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Event is one event of a part, as the log records it; Commitment is what
// a sealed entry commits to. Parts make them (internal/logevent).
type (
	Event      = logevent.Event
	Commitment = logevent.Commitment
)

// Source is one part's append-only event log, read by the log.
type Source interface {
	// After returns up to limit events with a seq above seq, in order.
	After(ctx context.Context, seq int64, limit int) ([]Event, error)
}

// WriterLease is the lease the one appending replica holds.
const WriterLease = "translog-writer"

// KeyFile is the log's signing key in the key directory (a note signer
// key, "PRIVATE+KEY+<origin>+<hash>+<key>").
const KeyFile = "translog.key"

// Options configure a Log.
type Options struct {
	DB      *db.DB
	KeyDir  string // holds KeyFile
	Origin  string // the log's origin line, used when the log is created
	Sources map[string]Source
	// Quorum is the witness policy: a checkpoint is served once
	// witnesses of at least Quorum distinct operators cosigned it (0: the
	// log's own signature suffices).
	Quorum int
	// Outside are the outside witnesses the writer pushes checkpoints to.
	Outside []Outside
	Now     func() time.Time
	Logger  *slog.Logger
	Replica string
	// Batch bounds the events one append transaction takes (default 256).
	Batch int
}

// Log is the transparency log.
type Log struct {
	o      Options
	client *http.Client
	db     *db.DB
	origin string
	signer note.Signer
	vkey   string
	names  []string
}

// Open migrates the log's tables and loads its key. A new log makes its
// key and records its origin and public key; an existing one refuses a key
// that is not the one it recorded, and never makes a new one.
func Open(ctx context.Context, o Options) (*Log, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("translog: migrations: %w", err)
	}
	if err := o.DB.Migrate(ctx, "translog", sub); err != nil {
		return nil, err
	}
	l := &Log{o: o, db: o.DB, client: newWitnessClient()}
	for name := range o.Sources {
		l.names = append(l.names, name)
	}
	slices.Sort(l.names)
	if err := l.loadKey(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) loadKey(ctx context.Context) error {
	path := filepath.Join(l.o.KeyDir, KeyFile)
	var origin, vkey string
	err := l.db.QueryRowContext(ctx, `SELECT origin, vkey FROM translog_state WHERE id = 1`).Scan(&origin, &vkey)
	switch {
	case err == sql.ErrNoRows:
		origin = l.o.Origin
		if !validOrigin(origin) {
			return errs.E(errs.Invalid, "translog: origin %q: want a schemeless URL such as example.org/log", origin)
		}
		skey, err := loadOrCreateSigner(path, origin)
		if err != nil {
			return err
		}
		// A key made beforehand (afterlife log keygen) names the log.
		if parts := strings.SplitN(skey, "+", 4); len(parts) == 4 && validOrigin(parts[2]) {
			origin = parts[2]
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			return fmt.Errorf("translog: key %s: %w", path, err)
		}
		vk, err := verifierKey(skey)
		if err != nil {
			return err
		}
		if _, err := l.db.ExecContext(ctx, l.db.Q(`INSERT INTO translog_state (id, origin, vkey, created_at) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
			origin, vk, db.Millis(l.o.Now())); err != nil {
			return fmt.Errorf("translog: record the log's key: %w", db.Classify(err))
		}
		if err := l.db.QueryRowContext(ctx, `SELECT origin, vkey FROM translog_state WHERE id = 1`).Scan(&origin, &vkey); err != nil {
			return fmt.Errorf("translog: state: %w", db.Classify(err))
		}
		if vkey != vk {
			return errs.E(errs.Conflict, "translog: another replica created the log with key %s; give this replica its %s", vkey, path)
		}
		l.origin, l.signer, l.vkey = origin, s, vkey
		return nil
	case err != nil:
		return fmt.Errorf("translog: state: %w", db.Classify(err))
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return errs.E(errs.NotFound, "translog: %s is missing: the log exists (key %s), so no new key is made; give this replica the same keys as the others", path, vkey)
	}
	if err != nil {
		return fmt.Errorf("translog: key %s: %w", path, err)
	}
	skey := strings.TrimSpace(string(b))
	s, err := note.NewSigner(skey)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "translog: key %s", path)
	}
	vk, err := verifierKey(skey)
	if err != nil {
		return err
	}
	if vk != vkey {
		return errs.E(errs.Conflict, "translog: %s holds key %s, but the log was created with %s", path, vk, vkey)
	}
	l.origin, l.signer, l.vkey = origin, s, vkey
	return nil
}

// PrepareKey makes the log's key in keyDir (or reads the one there)
// before the log's first start, as Open would make it for origin, and
// returns the log's origin (a key made beforehand names it) and its
// verifier key. A registry carried on from a mirror names its new log in
// the root its custodians sign before the new server first starts.
func PrepareKey(keyDir, origin string) (string, string, error) {
	if !validOrigin(origin) {
		return "", "", errs.E(errs.Invalid, "translog: origin %q: want a schemeless URL such as example.org/log", origin)
	}
	skey, err := loadOrCreateSigner(filepath.Join(keyDir, KeyFile), origin)
	if err != nil {
		return "", "", err
	}
	if parts := strings.SplitN(skey, "+", 4); len(parts) == 4 && validOrigin(parts[2]) {
		origin = parts[2]
	}
	vk, err := verifierKey(skey)
	if err != nil {
		return "", "", err
	}
	return origin, vk, nil
}

func loadOrCreateSigner(path, origin string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !os.IsNotExist(err) {
		return "", fmt.Errorf("translog: key %s: %w", path, err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", fmt.Errorf("translog: generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("translog: key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("translog: write key %s: %w", path, err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("translog: write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("translog: write key %s: %w", path, err)
	}
	return skey, nil
}

// verifierKey derives the note verifier key of a signer key.
func verifierKey(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64(alg||seed)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errs.E(errs.Invalid, "translog: malformed signer key")
	}
	name := parts[2]
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errs.E(errs.Invalid, "translog: signer key is not an Ed25519 note key")
	}
	pub := append([]byte{1}, ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)...)
	h := sha256.Sum256(append([]byte(name+"\n"), pub...))
	return fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(pub)), nil
}

func validOrigin(o string) bool {
	return o != "" && !strings.Contains(o, "://") && !strings.ContainsAny(o, " \n+")
}

// Origin is the log's origin line.
func (l *Log) Origin() string { return l.origin }

// VerifierKey is the log's public key as a note verifier key.
func (l *Log) VerifierKey() string { return l.vkey }

// Commit is the commitment of a sealed entry: SHA-256 over a fixed
// label, the salt (hex), the product and the manifest digest, one per
// line. docs/transparency.md specifies it so anyone can recompute it.
func Commit(salt, product, manifest string) string {
	return verify.Commitment(salt, product, manifest)
}

func newSalt() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("translog: salt: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// OriginFor names a new log after the server's public URL, without its
// scheme (C2SP tlog-checkpoint origins are schemeless URLs).
func OriginFor(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return "afterlife.invalid/log"
	}
	return u.Host + strings.TrimRight(u.Path, "/") + Prefix
}
