package registry

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// Install report outcomes and limits.
const (
	maxReason     = 500 // characters kept of a failure reason
	maxReportBody = 4 << 10
)

// Pull-back defaults: a release with at least 5 failed installs making up
// at least 20% of its reports goes back to testing.
const (
	DefaultMinFailures    = 5
	DefaultFailurePercent = 20
)

// Report records how an install went, and pulls the release back when its
// failures pass the product's threshold. Reports are anonymous; a reason
// longer than 500 characters is cut.
func (s *Service) Report(ctx context.Context, r device.Report) error {
	if r.Outcome != device.OutcomeSuccess && r.Outcome != device.OutcomeFailure {
		return errs.E(errs.Invalid, "outcome %q: want success or failure", r.Outcome)
	}
	devID, err := catalog.ParseDeviceID(r.DeviceID)
	if err != nil {
		return err
	}
	if err := parseVersion("version", r.Version); err != nil {
		return err
	}
	if r.ReleaseID == "" || len(r.ReleaseID) > 64 {
		return errs.E(errs.Invalid, "release_id is required")
	}
	reason := strings.ToValidUTF8(strings.TrimSpace(r.Reason), "?")
	if utf8.RuneCountInString(reason) > maxReason {
		reason = string([]rune(reason)[:maxReason])
	}
	rel, err := s.Get(ctx, r.ReleaseID)
	if err != nil {
		return err
	}
	if rel.Version != r.Version {
		return errs.E(errs.Invalid, "release %s is version %s, the report says %s", rel.ID, rel.Version, r.Version)
	}
	_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO install_reports (id, release_id, device_id, version, outcome, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		ids.At("rep", s.now()), rel.ID, devID, r.Version, r.Outcome, reason, db.Millis(s.now()))
	if err != nil {
		return fmt.Errorf("registry: store report: %w", db.Classify(err))
	}
	if r.Outcome != device.OutcomeFailure || rel.Yanked || rel.PulledBack {
		return nil
	}
	return s.checkPullBack(ctx, rel)
}

// ReportStats aggregates a release's install reports.
type ReportStats struct {
	ReleaseID   string         `json:"release_id"`
	Success     int            `json:"success"`
	Failure     int            `json:"failure"`
	TopFailures []FailureCount `json:"top_failures"`
}

// FailureCount is how many failed installs gave one reason.
type FailureCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// Stats returns a release's report counts and its five commonest failure
// reasons.
func (s *Service) Stats(ctx context.Context, releaseID string) (ReportStats, error) {
	st := ReportStats{ReleaseID: releaseID, TopFailures: []FailureCount{}}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT outcome, COUNT(*) FROM install_reports WHERE release_id = ? GROUP BY outcome`), releaseID)
	if err != nil {
		return st, fmt.Errorf("registry: report stats: %w", db.Classify(err))
	}
	for rows.Next() {
		var outcome string
		var n int
		if err := rows.Scan(&outcome, &n); err != nil {
			rows.Close()
			return st, err
		}
		if outcome == device.OutcomeSuccess {
			st.Success = n
		} else {
			st.Failure = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, db.Classify(err)
	}
	if st.Failure == 0 {
		return st, nil
	}
	rows, err = s.db.QueryContext(ctx, s.db.Q(`SELECT reason, COUNT(*) AS n FROM install_reports WHERE release_id = ? AND outcome = ?
		GROUP BY reason ORDER BY n DESC, reason LIMIT 5`), releaseID, device.OutcomeFailure)
	if err != nil {
		return st, fmt.Errorf("registry: report stats: %w", db.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var fc FailureCount
		if err := rows.Scan(&fc.Reason, &fc.Count); err != nil {
			return st, err
		}
		st.TopFailures = append(st.TopFailures, fc)
	}
	return st, db.Classify(rows.Err())
}

// PullBackPolicy is when a product's releases are pulled back: at least
// MinFailures failed installs that are at least FailurePercent of all
// reports.
type PullBackPolicy struct {
	Product        string    `json:"product"`
	MinFailures    int       `json:"min_failures"`
	FailurePercent int       `json:"failure_percent"`
	UpdatedAt      time.Time `json:"updated_at,omitzero"`
	UpdatedBy      string    `json:"updated_by,omitempty"`
}

// Policy returns a product's pull-back policy, the defaults if none was set.
func (s *Service) Policy(ctx context.Context, product string) (PullBackPolicy, error) {
	p := PullBackPolicy{Product: product, MinFailures: DefaultMinFailures, FailurePercent: DefaultFailurePercent}
	var at int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT min_failures, failure_percent, updated_at, updated_by FROM pullback_policies WHERE product = ?`), product).
		Scan(&p.MinFailures, &p.FailurePercent, &at, &p.UpdatedBy)
	if err == sql.ErrNoRows {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("registry: pull-back policy: %w", db.Classify(err))
	}
	p.UpdatedAt = db.FromMillis(at)
	return p, nil
}

// SetPolicy changes a product's pull-back policy: admins, or the vendor
// that owns the product.
func (s *Service) SetPolicy(ctx context.Context, who auth.Principal, p PullBackPolicy) (PullBackPolicy, error) {
	prod, err := s.o.Catalog.Get(ctx, p.Product)
	if err != nil {
		return p, err
	}
	if who.Role != auth.Admin && (who.Role != auth.Vendor || who.Org != prod.Vendor) {
		return p, errs.E(errs.Forbidden, "%s may not set the pull-back policy of %s", who.Actor(), p.Product)
	}
	if p.MinFailures < 1 || p.MinFailures > 1_000_000 || p.FailurePercent < 1 || p.FailurePercent > 100 {
		return p, errs.E(errs.Invalid, "min_failures must be at least 1 and failure_percent between 1 and 100")
	}
	p.UpdatedAt, p.UpdatedBy = s.now().UTC().Truncate(time.Millisecond), who.Actor()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO pullback_policies (product, min_failures, failure_percent, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (product) DO UPDATE SET min_failures = excluded.min_failures, failure_percent = excluded.failure_percent,
			updated_at = excluded.updated_at, updated_by = excluded.updated_by`),
			p.Product, p.MinFailures, p.FailurePercent, db.Millis(p.UpdatedAt), p.UpdatedBy)
		if err != nil {
			return err
		}
		return s.event(ctx, tx, p.Product, "", who.Actor(), "pullback_policy",
			fmt.Sprintf("pull back after %d failures making up %d%% of reports", p.MinFailures, p.FailurePercent))
	})
	if err != nil {
		return p, fmt.Errorf("registry: set pull-back policy of %s: %w", p.Product, err)
	}
	return p, nil
}

func (s *Service) checkPullBack(ctx context.Context, rel Release) error {
	st, err := s.Stats(ctx, rel.ID)
	if err != nil {
		return err
	}
	pol, err := s.Policy(ctx, rel.Product)
	if err != nil {
		return err
	}
	total := st.Success + st.Failure
	if st.Failure < pol.MinFailures || st.Failure*100 < pol.FailurePercent*total {
		return nil
	}
	return s.pullBack(ctx, rel, fmt.Sprintf("%d of %d installs failed (policy: %d failures, %d%%)", st.Failure, total, pol.MinFailures, pol.FailurePercent))
}

// pullBack stops offering a release: it goes back to testing, marked
// pulled back, and the TUF metadata says so too.
func (s *Service) pullBack(ctx context.Context, rel Release, why string) error {
	before := rel.targets()
	rel.Channel = Testing
	after := rel.targets()
	for i := range after {
		after[i].Custom["pulled_back"] = true
	}
	err := s.change(ctx, nil, after, nil, before, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET channel = ?, pulled_back = 1 WHERE id = ? AND yanked = 0 AND pulled_back = 0`), Testing, rel.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errAlreadyPulled
		}
		return s.event(ctx, tx, rel.Product, rel.ID, "registry:pull-back", "pulled_back", rel.Version+" pulled back to testing: "+why)
	})
	if err == errAlreadyPulled {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: pull back %s: %w", rel.ID, err)
	}
	s.log.Warn("release pulled back", "release", rel.ID, "product", rel.Product, "version", rel.Version, "why", why)
	return nil
}

var errAlreadyPulled = errs.E(errs.Conflict, "release already pulled back or yanked")

// limiter is a token bucket per key (client IP): burst tokens, refilled
// evenly over period. Its memory is bounded: when it tracks too many keys
// it forgets those whose buckets are full again.
type limiter struct {
	mu      sync.Mutex
	burst   float64
	perSec  float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const maxBuckets = 100_000

func newLimiter(n int, period time.Duration) *limiter {
	return &limiter{burst: float64(n), perSec: float64(n) / period.Seconds(), buckets: map[string]*bucket{}}
}

// allow takes a token for key; when none is left it says how long until
// one is.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.perSec)
	}
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.perSec * float64(time.Second))
	return false, wait
}

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.perSec >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets) // under a flood, forgetting is better than growing
	}
}
