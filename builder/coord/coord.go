// Package coord is the build farm's coordinator, the server side of the
// builder protocol: builders and their keys, builds and their jobs in a
// database queue (leases, heartbeats, lease expiry, capability matching,
// one job per builder and operator in a build), the results builders
// return, checked against their registered keys, and the verdict, which is
// the only way a build becomes a release candidate.
//
// Several serve replicas can share one PostgreSQL database: jobs are
// claimed with FOR UPDATE SKIP LOCKED, waiting agents are woken in-process
// and re-check periodically for work created elsewhere, and lease expiry
// uses conditional updates so any replica may run it. It owns the farm_*
// tables and must not import escrow or registry; of recipes it takes only
// the pinned submission (recipes/submit), which buildspec.For turns into a spec.
package coord

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
)

//go:embed migrations/*.sql
var migrations embed.FS

// JobState is where a job is: waiting, leased by a builder, or ended.
type JobState string

// Job states.
const (
	JobQueued JobState = "queued"
	JobLeased JobState = "leased"
	JobDone   JobState = "done"
	JobFailed JobState = "failed"
)

// Defaults for Options.
const (
	DefaultQuorum      = 2
	DefaultLeaseTTL    = 2 * time.Minute
	DefaultMaxAttempts = 3
	DefaultRecheck     = 2 * time.Second
	DefaultMaxWait     = 30 * time.Second
	// DefaultMaxUpload bounds one uploaded blob (an output, a log).
	DefaultMaxUpload = 2 << 30
	// candidates is how many queued jobs one claim looks at.
	candidates = 64
)

// Operators says which operator organisation an admin bound a builder
// token to: "" when it is unbound. internal/auth answers it; cmd/afterlife
// wires it. A builder never names its own operator.
type Operators interface {
	OperatorOf(ctx context.Context, tokenID string) (string, error)
}

// Options configure a Service.
type Options struct {
	DB    *db.DB
	Store blob.Store
	// Operators binds builder tokens to operator organisations (required).
	Operators Operators
	// Quorum is k: how many builders of distinct operators must agree. It
	// is also the number of jobs a build gets. Default 2.
	Quorum int
	// LeaseTTL is how long a claimed job stays leased without a heartbeat.
	LeaseTTL time.Duration
	// MaxAttempts is how many leases a job may lose before it fails.
	MaxAttempts int
	// Recheck is how often a waiting Next looks at the database for jobs
	// created on other replicas.
	Recheck time.Duration
	// MaxWait caps how long Next waits for work.
	MaxWait time.Duration
	// MaxLogBytes bounds the logs stored per job (default
	// builder.DefaultMaxLogBytes): the live log keeps its head, and a final
	// log blob above it is stored as its head and tail with a note.
	MaxLogBytes int64
	// MaxUpload bounds one blob a builder uploads (default
	// DefaultMaxUpload).
	MaxUpload int64
	// Restricted, when set, names the build-only escrow files, which
	// builders get only through the jobs that declare them (inputs.go).
	Restricted RestrictedInputs
	// Holder names this replica for the sweeper's lease (default: a new id).
	Holder string
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics, when set, receives the farm's metrics.
	Metrics prometheus.Registerer
}

// Service is the coordinator.
type Service struct {
	db     *db.DB
	store  blob.Store
	opts   Options
	now    func() time.Time
	log    *slog.Logger
	wake   notifier
	bg     sync.WaitGroup
	closed chan struct{}
	// draining closes when the replica stops: waiting Nexts end at once.
	draining  chan struct{}
	drainOnce sync.Once

	expiries  prometheus.Counter
	verdicts  *prometheus.CounterVec
	startWait prometheus.Histogram
}

// New applies the farm migrations and returns the coordinator.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.DB == nil || o.Store == nil || o.Operators == nil {
		return nil, errs.E(errs.Internal, "coord: DB, Store and Operators are required")
	}
	if o.MaxLogBytes <= 0 {
		o.MaxLogBytes = builder.DefaultMaxLogBytes
	}
	if o.Quorum < 1 {
		o.Quorum = DefaultQuorum
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.MaxAttempts < 1 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Recheck <= 0 {
		o.Recheck = DefaultRecheck
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxUpload <= 0 {
		o.MaxUpload = DefaultMaxUpload
	}
	if o.Holder == "" {
		o.Holder = ids.New("replica")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("coord: migrations: %w", err)
	}
	if err := o.DB.Migrate(ctx, "farm", sub); err != nil {
		return nil, err
	}
	s := &Service{db: o.DB, store: o.Store, opts: o, now: o.Now, log: o.Logger, closed: make(chan struct{}), draining: make(chan struct{})}
	s.wake.ch = make(chan struct{})
	s.expiries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "afterlife_farm_lease_expiries_total", Help: "Job leases that expired and went back to the queue (or failed).",
	})
	s.verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "afterlife_farm_verdicts_total", Help: "Builds decided, by verdict.",
	}, []string{"verdict"})
	s.startWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "afterlife_farm_queue_to_start_seconds", Help: "Time from job creation to a builder leasing it.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
	})
	if o.Metrics != nil {
		depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "afterlife_farm_queue_depth", Help: "Jobs waiting for a builder.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := s.QueueDepth(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		})
		for _, c := range []prometheus.Collector{s.expiries, s.verdicts, s.startWait, depth} {
			if err := o.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("coord: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Quorum is k, the number of agreeing operators a build needs.
func (s *Service) Quorum() int { return s.opts.Quorum }

// LeaseTTL is how long a lease lasts without a heartbeat.
func (s *Service) LeaseTTL() time.Duration { return s.opts.LeaseTTL }

// MaxWait is the longest Next waits.
func (s *Service) MaxWait() time.Duration { return s.opts.MaxWait }

// Drain ends every waiting Next at once with no job, and makes later
// Nexts answer at once after one claim attempt: a stopping replica must
// not hold builders' long polls until its grace period runs out, so they
// poll again through the load balancer and reach a replica that stays.
func (s *Service) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// Close waits for background work (diffoscope reports) to end.
func (s *Service) Close() {
	s.Drain()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.bg.Wait()
}

// notifier wakes every waiting Next when jobs may have become available.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}

// --- builders ---

// Register records the builder bound to tokenID, or updates its name and
// capabilities. A builder's key cannot change through its own token: a new
// key needs an admin to remove the builder first, so a leaked token cannot
// swap the key results are checked with. Its operator is the one an admin
// bound the token to; reg.Operator is ignored.
func (s *Service) Register(ctx context.Context, tokenID string, reg builder.Registration) (builder.Builder, error) {
	if tokenID == "" {
		return builder.Builder{}, errs.E(errs.Unauthenticated, "registering a builder needs a builder token")
	}
	if err := builder.CheckProtocol(reg.Protocol); err != nil {
		return builder.Builder{}, fmt.Errorf("coord: register builder %q: %w", reg.Name, err)
	}
	pub, err := keys.ParsePublicKey(reg.PublicKey)
	if err != nil {
		return builder.Builder{}, err
	}
	if err := checkText("name", reg.Name, 1, 100); err != nil {
		return builder.Builder{}, err
	}
	operator, err := s.opts.Operators.OperatorOf(ctx, tokenID)
	if err != nil {
		return builder.Builder{}, fmt.Errorf("coord: register builder %q: operator of its token: %w", reg.Name, err)
	}
	if err := checkText("arch", reg.Arch, 1, 32); err != nil {
		return builder.Builder{}, err
	}
	if len(reg.Toolchains) > 32 {
		return builder.Builder{}, errs.E(errs.Invalid, "at most 32 toolchains")
	}
	for _, t := range reg.Toolchains {
		if err := checkText("toolchain name", t.Name, 1, 64); err != nil {
			return builder.Builder{}, err
		}
		if err := checkText("toolchain version", t.Version, 1, 64); err != nil {
			return builder.Builder{}, err
		}
	}
	tcs, _ := json.Marshal(reg.Toolchains)
	now := db.Millis(s.now())
	pubText := keys.PublicKeyString(pub)
	var id string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var oldKey string
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT id, public_key FROM farm_builders WHERE token_id = ?`), tokenID).Scan(&id, &oldKey)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			id = ids.At("bdr", s.now())
			_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_builders (id, token_id, name, operator, public_key, key_id, arch, toolchains, agent_version, registered, last_seen)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				id, tokenID, reg.Name, operator, pubText, keys.KeyID(pub), reg.Arch, string(tcs), reg.AgentVersion, now, now)
			return err
		case err != nil:
			return err
		case oldKey != pubText:
			return errs.E(errs.Conflict, "builder %s is registered with another key; an admin must remove it before it registers a new key", id)
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE farm_builders SET name = ?, operator = ?, arch = ?, toolchains = ?, agent_version = ?, last_seen = ? WHERE id = ?`),
			reg.Name, operator, reg.Arch, string(tcs), reg.AgentVersion, now, id)
		return err
	})
	if err != nil {
		return builder.Builder{}, fmt.Errorf("coord: register builder %q: %w", reg.Name, err)
	}
	s.wake.notify() // new capabilities may match waiting jobs
	return s.Builder(ctx, id)
}

func checkText(field, v string, minLen, maxLen int) error {
	if len(v) < minLen || len(v) > maxLen {
		return errs.E(errs.Invalid, "%s must be %d to %d characters", field, minLen, maxLen)
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return errs.E(errs.Invalid, "%s contains control characters", field)
		}
	}
	return nil
}

const builderCols = `id, name, operator, public_key, key_id, arch, toolchains, agent_version, registered, last_seen`

func scanBuilder(sc interface{ Scan(...any) error }) (builder.Builder, error) {
	var b builder.Builder
	var tcs string
	var reg, seen int64
	if err := sc.Scan(&b.ID, &b.Name, &b.Operator, &b.PublicKey, &b.KeyID, &b.Arch, &tcs, &b.AgentVersion, &reg, &seen); err != nil {
		return b, err
	}
	if err := json.Unmarshal([]byte(tcs), &b.Toolchains); err != nil {
		return b, fmt.Errorf("coord: builder %s toolchains: %w", b.ID, err)
	}
	b.Registered, b.LastSeen = db.FromMillis(reg), db.FromMillis(seen)
	return b, nil
}

// Builder returns one builder.
func (s *Service) Builder(ctx context.Context, id string) (builder.Builder, error) {
	b, err := scanBuilder(s.db.QueryRowContext(ctx, s.db.Q(`SELECT `+builderCols+` FROM farm_builders WHERE id = ?`), id))
	if err != nil {
		return b, db.NotFound(err, "builder %s not found", id)
	}
	return b, nil
}

// BuilderByToken returns the builder registered with tokenID.
func (s *Service) BuilderByToken(ctx context.Context, tokenID string) (builder.Builder, error) {
	b, err := scanBuilder(s.db.QueryRowContext(ctx, s.db.Q(`SELECT `+builderCols+` FROM farm_builders WHERE token_id = ?`), tokenID))
	if err != nil {
		return b, db.NotFound(err, "this token has no registered builder; register first (POST /v1/builders)")
	}
	return b, nil
}

// Builders lists every builder, most recently seen first.
func (s *Service) Builders(ctx context.Context) ([]builder.Builder, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+builderCols+` FROM farm_builders ORDER BY last_seen DESC, id`))
	if err != nil {
		return nil, fmt.Errorf("coord: list builders: %w", db.Classify(err))
	}
	defer rows.Close()
	var out []builder.Builder
	for rows.Next() {
		b, err := scanBuilder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// RemoveBuilder deletes a builder; the jobs it holds go back to the queue.
// Its past results stay.
func (s *Service) RemoveBuilder(ctx context.Context, id string) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM farm_builders WHERE id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "builder %s not found", id)
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, builder_id = '', operator = '', lease_until = 0
			WHERE builder_id = ? AND state = ?`), JobQueued, id, JobLeased)
		return err
	})
	if err != nil {
		return fmt.Errorf("coord: remove builder %s: %w", id, err)
	}
	s.wake.notify()
	return nil
}

// boundOperator returns the operator builderID's token is bound to now,
// recording it with the builder when an admin bound or moved the token
// since the builder registered.
func (s *Service) boundOperator(ctx context.Context, b builder.Builder) (string, error) {
	var tokenID string
	if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT token_id FROM farm_builders WHERE id = ?`), b.ID).Scan(&tokenID); err != nil {
		return "", db.NotFound(err, "builder %s not found", b.ID)
	}
	op, err := s.opts.Operators.OperatorOf(ctx, tokenID)
	if err != nil {
		return "", fmt.Errorf("coord: operator of builder %s: %w", b.ID, err)
	}
	if op != b.Operator {
		if _, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE farm_builders SET operator = ? WHERE id = ?`), op, b.ID); err != nil {
			return "", fmt.Errorf("coord: record operator of builder %s: %w", b.ID, db.Classify(err))
		}
	}
	return op, nil
}

func (s *Service) touch(ctx context.Context, builderID string) {
	_, _ = s.db.ExecContext(ctx, s.db.Q(`UPDATE farm_builders SET last_seen = ? WHERE id = ?`), db.Millis(s.now()), builderID)
}

func (s *Service) publicKey(ctx context.Context, builderID string) (ed25519.PublicKey, error) {
	b, err := s.Builder(ctx, builderID)
	if err != nil {
		return nil, err
	}
	return keys.ParsePublicKey(b.PublicKey)
}
