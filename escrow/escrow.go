// Package escrow owns vendors' sunset deposits: the upload protocol
// (create, stream files, commit), encryption at rest with age to the escrow
// key, signed receipts, release policies and the scheduler that fires them
// exactly once across replicas, the append-only event log, the outbox that
// tells other parts of every release until they have heard it, the Atom feed
// of releases, and the integrity scrub of every blob it stored.
//
// It must not import other parts (products come through the Products
// interface), must not keep the escrow key in the blob store, and must never
// serve bytes whose digest it has not checked.
package escrow

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Products is what escrow needs to know about products; the registry's
// catalog provides it through an adapter. (The catalog hears of releases
// as an AfterRelease consumer, through the outbox.)
type Products interface {
	// Vendor returns the vendor org that owns productID, or a NotFound error.
	Vendor(ctx context.Context, productID string) (org string, err error)
}

// Counter is the slice of a prometheus.Counter that escrow uses.
type Counter interface{ Add(float64) }

// Metrics are optional counters; nil ones are not counted.
type Metrics struct {
	BlobsChecked Counter // blobs re-hashed by scrubs
	BlobsCorrupt Counter // blobs found corrupt or missing (by scrubs or reads)
	Releases     Counter // deposits released
}

// Options configure a Service.
type Options struct {
	DB       *db.DB
	Blobs    blob.Store
	Products Products
	// Identity is the escrow key; sealed content is encrypted to its
	// recipient. Load it with LoadOrCreateIdentity.
	Identity *age.X25519Identity
	// ReceiptKey signs receipts.
	ReceiptKey ed25519.PrivateKey
	Logger     *slog.Logger
	Now        func() time.Time
	Limits     manifest.Limits // zero fields take manifest.DefaultLimits
	// Retention, when > 0 and the store is a blob.Retainer, locks sealed
	// ciphertext blobs for that long after sealing (S3 object lock).
	Retention time.Duration
	// UploadPiece is the size of the pieces a file arriving is stored as,
	// so that a crash loses at most two (default DefaultUploadPiece).
	UploadPiece int64
	// UploadTTL is how long an uncommitted upload may stay idle before the
	// scheduler removes it (default 7 days).
	UploadTTL time.Duration
	// BaseURL is the public URL of the server, for feed links.
	BaseURL string
	Metrics Metrics
	// Artifacts, when set, lists the release artifacts in the same blob
	// store, which the scrub then checks as well.
	Artifacts ReleaseArtifacts
	// Handover checks the handover statements deposits carry (the file
	// wire.HandoverFile); without it such a deposit is refused.
	Handover HandoverChecks
	// AfterRelease are the parts told of every release, by a name that is
	// stored with each pending delivery (keep it stable). Each notice is
	// delivered at release and, until it succeeds, by the Outbox worker.
	AfterRelease map[string]AfterRelease
	// OutboxBackoff is the wait before retrying a delivery that failed
	// attempts times (default DefaultBackoff).
	OutboxBackoff func(attempts int) time.Duration
	// OutboxClaim is how long one delivery attempt may take before another
	// deliverer may start it again (default 1 minute).
	OutboxClaim time.Duration
	// Rebuilder, when set, runs completeness checks on the operator's own
	// machine (CheckCompleteness); without it they are refused.
	Rebuilder Rebuilder
}

// ReleaseArtifacts lists the digests of the blobs published as release
// artifacts (the registry's), sorted, each once.
type ReleaseArtifacts interface {
	ArtifactDigests(ctx context.Context) ([]string, error)
}

// Service is the escrow.
type Service struct {
	db          *db.DB
	blobs       blob.Store
	products    Products
	identity    *age.X25519Identity
	recipient   *age.X25519Recipient
	key         ed25519.PrivateKey
	log         *slog.Logger
	now         func() time.Time
	limits      manifest.Limits
	retention   time.Duration
	uploadTTL   time.Duration
	uploadPiece int64
	baseURL     string
	metrics     Metrics
	artifacts   ReleaseArtifacts
	handover    HandoverChecks

	afterRelease map[string]AfterRelease
	consumers    []string // afterRelease's names, sorted
	backoff      func(attempts int) time.Duration
	claimTTL     time.Duration
	rebuilder    Rebuilder
	checkSlot    chan struct{} // one completeness check at a time
}

//go:embed migrations/*.sql
var migrations embed.FS

// New migrates the escrow tables and returns the service.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.DB == nil || o.Blobs == nil || o.Products == nil || o.Identity == nil || len(o.ReceiptKey) != ed25519.PrivateKeySize {
		return nil, errs.E(errs.Internal, "escrow: DB, Blobs, Products, Identity and an ed25519 ReceiptKey are required")
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("escrow: migrations: %w", err)
	}
	if err := o.DB.Migrate(ctx, "escrow", sub); err != nil {
		return nil, fmt.Errorf("escrow: %w", err)
	}
	s := &Service{
		db: o.DB, blobs: o.Blobs, products: o.Products, identity: o.Identity,
		recipient: o.Identity.Recipient(), key: o.ReceiptKey, log: o.Logger, now: o.Now,
		limits: o.Limits, retention: o.Retention, uploadTTL: o.UploadTTL, uploadPiece: o.UploadPiece,
		baseURL: strings.TrimSuffix(o.BaseURL, "/"), metrics: o.Metrics, artifacts: o.Artifacts, handover: o.Handover,
		afterRelease: o.AfterRelease, consumers: consumerNames(o.AfterRelease),
		backoff: o.OutboxBackoff, claimTTL: o.OutboxClaim, rebuilder: o.Rebuilder,
		checkSlot: make(chan struct{}, 1),
	}
	if s.backoff == nil {
		s.backoff = DefaultBackoff
	}
	if s.claimTTL <= 0 {
		s.claimTTL = time.Minute
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.limits.MaxFileSize <= 0 {
		s.limits.MaxFileSize = manifest.DefaultLimits.MaxFileSize
	}
	if s.limits.MaxDepositSize <= 0 {
		s.limits.MaxDepositSize = manifest.DefaultLimits.MaxDepositSize
	}
	if s.limits.MaxFiles <= 0 {
		s.limits.MaxFiles = manifest.DefaultLimits.MaxFiles
	}
	if s.uploadPiece <= 0 {
		s.uploadPiece = DefaultUploadPiece
	}
	if s.uploadTTL <= 0 {
		s.uploadTTL = 7 * 24 * time.Hour
	}
	return s, nil
}

// ReceiptPublicKey is the key receipts verify with.
func (s *Service) ReceiptPublicKey() ed25519.PublicKey {
	return s.key.Public().(ed25519.PublicKey)
}

// Limits are the size limits in force.
func (s *Service) Limits() manifest.Limits { return s.limits }

func count(c Counter, n int) {
	if c != nil && n > 0 {
		c.Add(float64(n))
	}
}

// IdentityFile is the escrow key's file name inside the key directory.
const IdentityFile = "escrow.age"

// LoadOrCreateIdentity reads the escrow key from dir/escrow.age, creating
// it (mode 0600) when missing. It refuses a key file that others may read.
// The key lives beside the server's other keys, never in the blob store:
// whoever holds the blob store alone cannot read sealed content.
func LoadOrCreateIdentity(dir string) (*age.X25519Identity, error) {
	id, err := LoadIdentity(dir)
	if errs.Is(err, errs.NotFound) {
		return createIdentity(dir, filepath.Join(dir, IdentityFile))
	}
	return id, err
}

// LoadIdentity reads the escrow key from dir/escrow.age; a missing file is
// errs.NotFound. A replica of an initialised database loads its key this
// way: it must never make a new one.
func LoadIdentity(dir string) (*age.X25519Identity, error) {
	path := filepath.Join(dir, IdentityFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.Wrap(errs.NotFound, err, "escrow: key file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("escrow: open key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("escrow: stat key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, errs.E(errs.Invalid, "escrow: key file %s has mode %v; want 0600 (chmod 600 it)", path, st.Mode().Perm())
	}
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "escrow: key file %s", path)
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x, nil
		}
	}
	return nil, errs.E(errs.Invalid, "escrow: key file %s holds no X25519 identity", path)
}

func createIdentity(dir, path string) (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("escrow: generate key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("escrow: key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			return LoadOrCreateIdentity(dir)
		}
		return nil, fmt.Errorf("escrow: create key: %w", err)
	}
	text := fmt.Sprintf("# afterlife escrow key: sealed deposits are encrypted to it. Back it up apart from the blob store.\n# public key: %s\n%s\n", id.Recipient(), id)
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("escrow: write key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("escrow: write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("escrow: write key: %w", err)
	}
	return id, nil
}
