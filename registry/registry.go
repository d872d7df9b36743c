// Package registry publishes reproducible builds as releases of products
// and serves them: the release lifecycle (publish, promote, yank, automatic
// pull-back), TUF signing of every change through registry/tuf, the device
// update API served from an in-memory index, downloads from the blob store,
// install reports, and the owner-facing product overview.
//
// It owns the tables in registry/migrations. It must not read other parts'
// tables: builds, the escrow and the farm reach it through the small
// interfaces declared here (Builds, EscrowState, Farm) that cmd/afterlife
// adapts. It must not query the database per update check: that path is
// served from memory.
package registry

import (
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Catalog is what the registry needs from the product catalog;
// *catalog.Catalog implements it.
type Catalog interface {
	Get(ctx context.Context, id string) (catalog.Product, error)
	// Each reads every product in one query, for rebuilding the index.
	Each(ctx context.Context, fn func(catalog.Product) error) error
	Search(ctx context.Context, q string, limit int) (catalog.Found, error)
	ByDeviceID(ctx context.Context, deviceID string) ([]catalog.Product, error)
	Events(ctx context.Context, id string) ([]catalog.Event, error)
}

// Builds gives the registry a build's verdict and outputs. A verdict is the
// only path to a release: ReproducibleOutputs fails (errs.Conflict or
// errs.NotFound) for a build that is not reproducible.
type Builds interface {
	ReproducibleOutputs(ctx context.Context, buildID string) (Build, error)
}

// Build is a reproducible build as the farm describes it.
type Build struct {
	ID              string
	Products        []string
	Recipe          string
	RecipeVersion   string
	InstallNotes    string
	Outputs         []Output
	Agreeing, Total int // builders whose outputs agreed, of those that built
	VerdictURL      string
	AttestationsURL string
}

// Output is one file a build produced, already in the blob store.
type Output struct {
	Path   string // relative path in the build's output directory
	Kind   string // firmware, sbom, log, other
	Digest string // "sha256:<hex>"
	Size   int64
}

// EscrowState tells the overview where a product's escrow stands.
type EscrowState interface {
	ProductEscrow(ctx context.Context, productID string) (Escrow, error)
}

// Escrow summarises a product's deposits.
type Escrow struct {
	Deposits   int       `json:"deposits"`
	Sealed     int       `json:"sealed"`
	Released   int       `json:"released"`
	Policy     string    `json:"policy,omitempty"`     // e.g. "dead-man 30d", "quorum 2 of 3"
	ReleasesAt time.Time `json:"releases_at,omitzero"` // when a date or dead-man policy fires next
	// Public are the deposits anyone may read (released), newest first.
	Public []PublicDeposit `json:"public,omitempty"`
}

// PublicDeposit is what anyone may know of a released deposit.
type PublicDeposit struct {
	ID         string    `json:"id"`
	Policy     string    `json:"policy"`
	SealedAt   time.Time `json:"sealed_at,omitzero"`
	ReleasedAt time.Time `json:"released_at,omitzero"`
	Fired      string    `json:"fired,omitempty"` // the policy condition that released it
	// Grant is the vendor's grant text: the licence or written permission
	// for the deposit's public and build-only files.
	Grant string `json:"grant,omitempty"`
}

// Farm lists the builds of a product's recipes for the overview.
type Farm interface {
	BuildsForProduct(ctx context.Context, productID string, limit int) ([]BuildSummary, error)
}

// BuildSummary is one build as the overview shows it.
type BuildSummary struct {
	ID            string    `json:"id"`
	Recipe        string    `json:"recipe"`
	RecipeVersion string    `json:"recipe_version,omitempty"`
	Verdict       string    `json:"verdict"` // pending, reproducible, unreproducible
	Agreeing      int       `json:"agreeing"`
	Total         int       `json:"total"`
	Created       time.Time `json:"created,omitzero"`
}

// Options configure a Service.
type Options struct {
	DB      *db.DB
	Blobs   blob.Store
	TUF     *tuf.Repo
	Catalog Catalog
	Builds  Builds
	Escrow  EscrowState // optional
	Farm    Farm        // optional
	Now     func() time.Time
	Logger  *slog.Logger
	// ReplicaID names this replica in leases (default: a random id).
	ReplicaID string
	// MaxUpdateLoad bounds concurrent update checks (default 1024); more
	// are answered 503 with Retry-After. NoUpdateChecks answers every
	// one so.
	MaxUpdateLoad int
	// ReportsPerHour is each source network's install report budget
	// (default 60); a network is a /24 (IPv4) or /48 (IPv6).
	ReportsPerHour int
	// ReportsPerNetwork is how many reports of one outcome one source
	// network counts for per release (default 5): more are stored, not
	// counted.
	ReportsPerNetwork int
	// ReceiptKey is the HMAC key of download receipts (at least 32
	// bytes). Replicas must share it; empty means a random key, which
	// only a single replica that never restarts could use.
	ReceiptKey []byte
	// Metrics, when set, receives the registry's counters.
	Metrics prometheus.Registerer
	// BaseURL is the server's public URL, for the links of feeds.
	BaseURL string
	// PollInterval is how often a replica looks for changes made by
	// others (default 500 ms: a change reaches every replica within a
	// second); TimestampCheck how often the TUF timestamp is
	// checked for expiry (default 1 minute).
	PollInterval, TimestampCheck time.Duration
	// TimestampMargin: the timestamp is re-signed when it expires within
	// this (default 6h).
	TimestampMargin time.Duration
	// Products lists products for the lifecycle catalogue and the
	// ending-soon list (default: Catalog, when it can list).
	Products Products
	// Name names this registry in its lifecycle documents, the third
	// party its own events are attributed to (e.g. its public URL).
	Name string
	// EndingSoonWindow: products reaching the end of security support
	// within it, with no deposit, are listed as ending without a handover
	// plan (default 180 days).
	EndingSoonWindow time.Duration
	// LifecycleLog, when set, is told of each signed change of a
	// product's lifecycle documents.
	LifecycleLog LifecycleLog
	// HandoverPlans tells the ending-soon list which products have a
	// deposit (optional: without it the list is unavailable).
	HandoverPlans HandoverPlans
}

// NoUpdateChecks as Options.MaxUpdateLoad makes a replica answer every
// update check 503 with Retry-After: a replica that serves the API but no
// devices, which sends them to another (and lets a test see shedding
// without racing a check that takes a microsecond).
const NoUpdateChecks = -1

// Service is the registry.
type Service struct {
	o   Options
	db  *db.DB
	log *slog.Logger
	now func() time.Time

	index     atomic.Pointer[index]
	rebuildMu sync.Mutex
	updateSem chan struct{}
	tufMu     sync.Mutex // one mutation per replica; the lease covers replicas
	limiter   *limiter
	m         metrics
}

type metrics struct {
	results  map[string]prometheus.Counter // resolved once: no label lookup per check
	checks   *prometheus.CounterVec
	rebuilds prometheus.Counter
	updates  prometheus.Counter // indexes made by following the event log
	gen      prometheus.Gauge
	seq      prometheus.Gauge
	// downloads counts artifact downloads by route (release artifact or
	// TUF target); a resumed download counts once per request.
	downloads *prometheus.CounterVec
}

func newMetrics() metrics {
	m := metrics{results: map[string]prometheus.Counter{},
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "afterlife_registry_update_checks_total", Help: "Device update checks by result.",
		}, []string{"result"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "afterlife_registry_index_rebuilds_total", Help: "Rebuilds of the in-memory update index.",
		}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "afterlife_registry_index_updates_total", Help: "Changes of the in-memory update index made by following the registry's event log, without a rebuild.",
		}),
		gen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "afterlife_registry_index_generation", Help: "Generation of the update index this replica serves.",
		}),
		seq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "afterlife_registry_index_seq", Help: "The last registry event the update index this replica serves reflects.",
		}),
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "afterlife_registry_downloads_total", Help: "Firmware downloads by route (artifact, tuf_target).",
		}, []string{"route"}),
	}
	for _, r := range []string{"offer", "none", "not_modified", "busy"} {
		m.results[r] = m.checks.WithLabelValues(r)
	}
	return m
}

// New migrates the registry's tables, builds the update index and returns
// the service.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.DB == nil || o.Blobs == nil || o.TUF == nil || o.Catalog == nil || o.Builds == nil {
		return nil, errs.E(errs.Invalid, "registry: DB, Blobs, TUF, Catalog and Builds are required")
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("registry: migrations: %w", err)
	}
	if err := o.DB.Migrate(ctx, "registry", sub); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReplicaID == "" {
		o.ReplicaID = ids.New("replica")
	}
	if o.MaxUpdateLoad == 0 {
		o.MaxUpdateLoad = 1024
	}
	if o.ReportsPerHour <= 0 {
		o.ReportsPerHour = 60
	}
	if o.ReportsPerNetwork <= 0 {
		o.ReportsPerNetwork = 5
	}
	if len(o.ReceiptKey) == 0 {
		o.ReceiptKey = make([]byte, 32)
		if _, err := rand.Read(o.ReceiptKey); err != nil {
			return nil, fmt.Errorf("registry: receipt key: %w", err)
		}
	}
	if len(o.ReceiptKey) < 32 {
		return nil, errs.E(errs.Invalid, "registry: the receipt key must be at least 32 bytes")
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.TimestampCheck <= 0 {
		o.TimestampCheck = time.Minute
	}
	if o.TimestampMargin <= 0 {
		o.TimestampMargin = 6 * time.Hour
	}
	if o.Products == nil {
		o.Products, _ = o.Catalog.(Products)
	}
	if o.Name == "" {
		o.Name = "afterlife registry"
	}
	if o.EndingSoonWindow <= 0 {
		o.EndingSoonWindow = 180 * 24 * time.Hour
	}
	s := &Service{
		o: o, db: o.DB, log: o.Logger, now: o.Now,
		updateSem: make(chan struct{}, max(o.MaxUpdateLoad, 0)), // NoUpdateChecks: unbuffered, no check finds room
		limiter:   newLimiter(o.ReportsPerHour, time.Hour),
	}
	s.m = newMetrics()
	if o.Metrics != nil {
		for _, c := range []prometheus.Collector{s.m.checks, s.m.rebuilds, s.m.updates, s.m.gen, s.m.seq, s.m.downloads} {
			if err := o.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("registry: metrics: %w", err)
			}
		}
	}
	if err := s.Rebuild(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Run keeps the replica current until ctx ends: it follows the registry's
// event log into its index (Poll: one query per PollInterval, however many
// update checks arrive) and, on the replica that holds the lease, re-signs the TUF
// timestamp before it expires.
func (s *Service) Run(ctx context.Context) error {
	poll := time.NewTicker(s.o.PollInterval)
	defer poll.Stop()
	ts := time.NewTicker(s.o.TimestampCheck)
	defer ts.Stop()
	if err := s.SignUnsigned(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("registry: could not sign the fields of older targets; devices refuse them until it succeeds", "err", err)
	}
	if err := s.signAllLifecycles(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("registry: could not sign the lifecycle documents of every product; each is signed at its next change", "err", err)
	}
	s.refreshTimestamp(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			if err := s.Poll(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("registry: index poll failed", "err", err)
			}
		case <-ts.C:
			s.refreshTimestamp(ctx)
		}
	}
}

func (s *Service) refreshTimestamp(ctx context.Context) {
	ok, err := s.withTUFLease(ctx, false, func() error {
		_, err := s.o.TUF.RefreshTimestamp(ctx, s.o.TimestampMargin)
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("registry: timestamp refresh failed", "err", err)
	} else if !ok {
		s.log.Debug("registry: another replica holds the TUF lease; not refreshing the timestamp")
	}
}

// RefreshTimestamp re-signs the TUF timestamp now if it expires within
// the configured margin (what Run does periodically).
func (s *Service) RefreshTimestamp(ctx context.Context) error {
	_, err := s.withTUFLease(ctx, true, func() error {
		_, err := s.o.TUF.RefreshTimestamp(ctx, s.o.TimestampMargin)
		return err
	})
	return err
}

const tufLease = "registry.tuf"

// withTUFLease runs fn while holding the database lease that serialises TUF
// mutations across replicas. With wait it retries for a while; without, it
// gives up at once when another replica holds it.
func (s *Service) withTUFLease(ctx context.Context, wait bool, fn func() error) (bool, error) {
	s.tufMu.Lock()
	defer s.tufMu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	backoff := 5 * time.Millisecond
	for {
		ok, err := s.db.TryLease(ctx, tufLease, s.o.ReplicaID, time.Minute, s.now())
		if err != nil {
			return false, err
		}
		if ok {
			break
		}
		if !wait {
			return false, nil
		}
		if time.Now().After(deadline) {
			return false, errs.E(errs.Unavailable, "registry: another replica holds the signing lease; try again")
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
	defer func() {
		if err := s.db.ReleaseLease(context.WithoutCancel(ctx), tufLease, s.o.ReplicaID); err != nil {
			s.log.Warn("registry: release TUF lease", "err", err)
		}
	}()
	return true, fn()
}
