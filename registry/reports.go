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

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// Install report outcomes and limits.
const (
	maxReason     = 500 // characters kept of a failure reason
	maxReportBody = 4 << 10
)

// Review defaults: a release is held for review when failed installs
// from at least 3 source networks number at least 5 and make up at least
// 20% of its counted reports.
const (
	DefaultMinFailures    = 5
	DefaultFailurePercent = 20
	DefaultMinNetworks    = 3
)

// Report records how an install went, from source network from, and holds
// the release for review when its counted failures pass the product's
// policy. A report counts only with a valid download receipt for the
// release: anything else is refused (Forbidden) and changes nothing. A
// device reporting again replaces its report. A reason longer than 500
// characters is cut.
func (s *Service) Report(ctx context.Context, r device.Report, from string) error {
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
	if !s.validReceipt(r.ReleaseID, r.InstallID, r.Receipt) {
		return errs.E(errs.Forbidden, "the report carries no valid download receipt for release %s: reports count only from installs that downloaded it", r.ReleaseID)
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
	rolledBack := 0
	if r.RolledBack && r.Outcome == device.OutcomeFailure {
		rolledBack = 1
	}
	_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO install_reports (id, release_id, device_id, version, outcome, reason, at, install_id, network, rolled_back)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (release_id, install_id) WHERE install_id <> '' DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason,
		at = excluded.at, network = excluded.network, device_id = excluded.device_id, rolled_back = excluded.rolled_back`),
		ids.At("rep", s.now()), rel.ID, devID, r.Version, r.Outcome, reason, db.Millis(s.now()), r.InstallID, from, rolledBack)
	if err != nil {
		return fmt.Errorf("registry: store report: %w", db.Classify(err))
	}
	if r.Outcome != device.OutcomeFailure || rel.Yanked || rel.PulledBack || rel.Held {
		return nil
	}
	return s.checkHold(ctx, rel)
}

// ReportStats aggregates a release's counted install reports: those with a
// receipt, each source network counting at most Options.ReportsPerNetwork
// times per outcome.
type ReportStats struct {
	ReleaseID       string         `json:"release_id"`
	Success         int            `json:"success"`
	Failure         int            `json:"failure"`
	FailingNetworks int            `json:"failing_networks"` // source networks that reported a failure
	TopFailures     []FailureCount `json:"top_failures"`
}

// FailureCount is how many failed installs gave one reason.
type FailureCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// Stats returns a release's counted reports and its five commonest failure
// reasons.
func (s *Service) Stats(ctx context.Context, releaseID string) (ReportStats, error) {
	st := ReportStats{ReleaseID: releaseID, TopFailures: []FailureCount{}}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT network, outcome, COUNT(*) FROM install_reports WHERE release_id = ? AND install_id <> ''
		GROUP BY network, outcome`), releaseID)
	if err != nil {
		return st, fmt.Errorf("registry: report stats: %w", db.Classify(err))
	}
	for rows.Next() {
		var network, outcome string
		var n int
		if err := rows.Scan(&network, &outcome, &n); err != nil {
			rows.Close()
			return st, err
		}
		n = min(n, s.o.ReportsPerNetwork)
		if outcome == device.OutcomeSuccess {
			st.Success += n
		} else {
			st.Failure += n
			st.FailingNetworks++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, db.Classify(err)
	}
	if st.Failure == 0 {
		return st, nil
	}
	rows, err = s.db.QueryContext(ctx, s.db.Q(`SELECT reason, COUNT(*) AS n FROM install_reports WHERE release_id = ? AND outcome = ? AND install_id <> ''
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

// ReportDay is one day (UTC) of a release's counted install reports:
// installs that worked, failed installs, and failed installs the device
// undid by going back to the firmware it ran before (RolledBack, not
// counted in Failure).
type ReportDay struct {
	Day        time.Time `json:"day"`
	Success    int       `json:"success"`
	Failure    int       `json:"failure"`
	RolledBack int       `json:"rolled_back"`
}

// maxReportDays bounds a release's report timeline to its newest days.
const maxReportDays = 90

// ReportTimeline is a release's counted install reports per day, oldest
// first, only days with reports, at most the newest 90. It counts what
// Stats counts: reports with a receipt, each source network at most
// Options.ReportsPerNetwork times per outcome (its earliest reports), so
// the days add up to Stats' totals while the timeline is whole.
func (s *Service) ReportTimeline(ctx context.Context, releaseID string) ([]ReportDay, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT at / 86400000 AS day, network, outcome, rolled_back, COUNT(*) FROM install_reports
		WHERE release_id = ? AND install_id <> '' GROUP BY at / 86400000, network, outcome, rolled_back ORDER BY day, network, outcome, rolled_back`), releaseID)
	if err != nil {
		return nil, fmt.Errorf("registry: report timeline of %s: %w", releaseID, db.Classify(err))
	}
	defer rows.Close()
	type key struct{ network, outcome string }
	used := map[key]int{}
	out := []ReportDay{}
	for rows.Next() {
		var day int64
		var network, outcome string
		var rolledBack, n int
		if err := rows.Scan(&day, &network, &outcome, &rolledBack, &n); err != nil {
			return nil, fmt.Errorf("registry: report timeline of %s: %w", releaseID, err)
		}
		k := key{network, outcome}
		n = min(n, s.o.ReportsPerNetwork-used[k])
		if n <= 0 {
			continue
		}
		used[k] += n
		at := time.UnixMilli(day * 86400000).UTC()
		if len(out) == 0 || !out[len(out)-1].Day.Equal(at) {
			out = append(out, ReportDay{Day: at})
		}
		d := &out[len(out)-1]
		switch {
		case outcome == device.OutcomeSuccess:
			d.Success += n
		case rolledBack != 0:
			d.RolledBack += n
		default:
			d.Failure += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	if len(out) > maxReportDays {
		out = out[len(out)-maxReportDays:]
	}
	return out, nil
}

// PullBackPolicy is when a product's releases are held for review: at
// least MinFailures counted failed installs, from at least MinNetworks
// source networks, that are at least FailurePercent of all counted
// reports.
type PullBackPolicy struct {
	Product        string    `json:"product"`
	MinFailures    int       `json:"min_failures"`
	FailurePercent int       `json:"failure_percent"`
	MinNetworks    int       `json:"min_networks"`
	UpdatedAt      time.Time `json:"updated_at,omitzero"`
	UpdatedBy      string    `json:"updated_by,omitempty"`
}

// Policy returns a product's review policy, the defaults if none was set.
func (s *Service) Policy(ctx context.Context, product string) (PullBackPolicy, error) {
	p := PullBackPolicy{Product: product, MinFailures: DefaultMinFailures, FailurePercent: DefaultFailurePercent, MinNetworks: DefaultMinNetworks}
	var at int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT min_failures, failure_percent, min_networks, updated_at, updated_by FROM pullback_policies WHERE product = ?`), product).
		Scan(&p.MinFailures, &p.FailurePercent, &p.MinNetworks, &at, &p.UpdatedBy)
	if err == sql.ErrNoRows {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("registry: pull-back policy: %w", db.Classify(err))
	}
	p.UpdatedAt = db.FromMillis(at)
	return p, nil
}

// SetPolicy changes a product's review policy: admins, or the vendor that
// owns the product. MinNetworks 0 means the default.
func (s *Service) SetPolicy(ctx context.Context, who principal.Principal, p PullBackPolicy) (PullBackPolicy, error) {
	prod, err := s.o.Catalog.Get(ctx, p.Product)
	if err != nil {
		return p, err
	}
	if who.Role != principal.Admin && (who.Role != principal.Vendor || who.Org != prod.Vendor) {
		return p, errs.E(errs.Forbidden, "%s may not set the pull-back policy of %s", who.Actor(), p.Product)
	}
	if p.MinNetworks == 0 {
		p.MinNetworks = DefaultMinNetworks
	}
	if p.MinFailures < 1 || p.MinFailures > 1_000_000 || p.FailurePercent < 1 || p.FailurePercent > 100 || p.MinNetworks < 1 || p.MinNetworks > 1_000_000 {
		return p, errs.E(errs.Invalid, "min_failures and min_networks must be at least 1 and failure_percent between 1 and 100")
	}
	p.UpdatedAt, p.UpdatedBy = s.now().UTC().Truncate(time.Millisecond), who.Actor()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO pullback_policies (product, min_failures, failure_percent, min_networks, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (product) DO UPDATE SET min_failures = excluded.min_failures, failure_percent = excluded.failure_percent,
			min_networks = excluded.min_networks, updated_at = excluded.updated_at, updated_by = excluded.updated_by`),
			p.Product, p.MinFailures, p.FailurePercent, p.MinNetworks, db.Millis(p.UpdatedAt), p.UpdatedBy)
		if err != nil {
			return err
		}
		return s.event(ctx, tx, p.Product, "", who.Actor(), "pullback_policy",
			fmt.Sprintf("hold for review after %d failures from %d networks making up %d%% of reports", p.MinFailures, p.MinNetworks, p.FailurePercent))
	})
	if err != nil {
		return p, fmt.Errorf("registry: set pull-back policy of %s: %w", p.Product, err)
	}
	return p, nil
}

func (s *Service) checkHold(ctx context.Context, rel Release) error {
	st, err := s.Stats(ctx, rel.ID)
	if err != nil {
		return err
	}
	pol, err := s.Policy(ctx, rel.Product)
	if err != nil {
		return err
	}
	total := st.Success + st.Failure
	if st.Failure < pol.MinFailures || st.FailingNetworks < pol.MinNetworks || st.Failure*100 < pol.FailurePercent*total {
		return nil
	}
	why := fmt.Sprintf("%d of %d counted installs failed, from %d networks (policy: %d failures, %d networks, %d%%)",
		st.Failure, total, st.FailingNetworks, pol.MinFailures, pol.MinNetworks, pol.FailurePercent)
	if ro := rel.Rollout; ro != nil && ro.State != device.RolloutAborted {
		// A rollout halts instead: it reaches no more devices until a
		// maintainer of the product or an admin resumes or aborts it.
		if ro.State == device.RolloutHalted {
			return nil
		}
		err := s.haltRollout(ctx, rel, why)
		if errs.Is(err, errs.Conflict) {
			return nil // another report halted it first
		}
		return err
	}
	return s.hold(ctx, rel, why)
}

// hold stops offering a release until a maintainer of the product or an
// admin reviews it; the TUF metadata says so too. Its channel is left
// alone: pulling a stable release back needs a person's confirmation.
func (s *Service) hold(ctx context.Context, rel Release, why string) error {
	before := rel.targets()
	after := rel.targets()
	for i := range after {
		after[i].Custom["held"] = true
	}
	at := s.now().UTC().Truncate(time.Millisecond)
	err := s.change(ctx, nil, after, nil, before, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET held = 1, held_reason = ?, held_at = ? WHERE id = ? AND yanked = 0 AND pulled_back = 0 AND held = 0`),
			why, db.Millis(at), rel.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errAlreadyPulled
		}
		return s.event(ctx, tx, rel.Product, rel.ID, "registry:review", "held", rel.Version+" held for review: "+why)
	})
	if err == errAlreadyPulled {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: hold %s: %w", rel.ID, err)
	}
	s.log.Warn("release held for review", "release", rel.ID, "product", rel.Product, "version", rel.Version, "why", why)
	s.refreshRollbacks(ctx, rel.Product)
	return nil
}

// ConfirmPullBack pulls a release back: a maintainer of its product or an
// admin confirms what the reports (or anything else) suggest. It goes back
// to testing, is offered to nobody and cannot be promoted again.
func (s *Service) ConfirmPullBack(ctx context.Context, who principal.Principal, id, reason string) (Release, error) {
	rel, err := s.reviewable(ctx, who, id, reason)
	if err != nil {
		return Release{}, err
	}
	why := strings.TrimSpace(reason)
	if rel.Held {
		why += " (held: " + rel.HeldReason + ")"
	}
	if err := s.pullBack(ctx, rel, who.Actor(), why); err != nil {
		return Release{}, err
	}
	return s.Get(ctx, id)
}

// Resume lifts a review hold: the release is offered again on its channel.
func (s *Service) Resume(ctx context.Context, who principal.Principal, id, reason string) (Release, error) {
	rel, err := s.reviewable(ctx, who, id, reason)
	if err != nil {
		return Release{}, err
	}
	if !rel.Held {
		return Release{}, errs.E(errs.Conflict, "release %s is not held", id)
	}
	before := rel.targets()
	for i := range before {
		before[i].Custom["held"] = true
	}
	err = s.change(ctx, nil, rel.targets(), nil, before, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET held = 0, held_reason = '', held_at = 0 WHERE id = ? AND held = 1 AND yanked = 0 AND pulled_back = 0`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.Conflict, "release %s changed concurrently", id)
		}
		return s.event(ctx, tx, rel.Product, rel.ID, who.Actor(), "resumed", rel.Version+" offered again after review: "+strings.TrimSpace(reason))
	})
	if err != nil {
		return Release{}, fmt.Errorf("registry: resume %s: %w", id, err)
	}
	s.refreshRollbacks(ctx, rel.Product)
	return s.Get(ctx, id)
}

func (s *Service) reviewable(ctx context.Context, who principal.Principal, id, reason string) (Release, error) {
	if r := strings.TrimSpace(reason); r == "" || len(r) > 2000 {
		return Release{}, errs.E(errs.Invalid, "a review needs a reason of 1 to 2000 bytes")
	}
	rel, err := s.changeable(ctx, who, id)
	if err != nil {
		return Release{}, err
	}
	if rel.PulledBack {
		return Release{}, errs.E(errs.Conflict, "release %s is already pulled back", id)
	}
	return rel, nil
}

// changeable loads release id for a change by who: who may change the
// product's releases, and a yanked release changes no more.
func (s *Service) changeable(ctx context.Context, who principal.Principal, id string) (Release, error) {
	rel, err := s.Get(ctx, id)
	if err != nil {
		return Release{}, err
	}
	if err := s.mayRelease(ctx, who, rel.Product); err != nil {
		return Release{}, err
	}
	if rel.Yanked {
		return Release{}, errs.E(errs.Conflict, "release %s was yanked", id)
	}
	return rel, nil
}

// pullBack stops offering a release: it goes back to testing, marked
// pulled back, and the TUF metadata says so too.
func (s *Service) pullBack(ctx context.Context, rel Release, actor, why string) error {
	before := rel.targets()
	if rel.Held {
		for i := range before {
			before[i].Custom["held"] = true
		}
	}
	rel.Channel = Testing
	after := rel.targets()
	for i := range after {
		after[i].Custom["pulled_back"] = true
	}
	err := s.change(ctx, nil, after, nil, before, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET channel = ?, pulled_back = 1, held = 0 WHERE id = ? AND yanked = 0 AND pulled_back = 0`), Testing, rel.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errAlreadyPulled
		}
		return s.event(ctx, tx, rel.Product, rel.ID, actor, "pulled_back", rel.Version+" pulled back to testing: "+why)
	})
	if err == errAlreadyPulled {
		return errs.E(errs.Conflict, "release %s was pulled back or yanked concurrently", rel.ID)
	}
	if err != nil {
		return fmt.Errorf("registry: pull back %s: %w", rel.ID, err)
	}
	s.log.Warn("release pulled back", "release", rel.ID, "product", rel.Product, "version", rel.Version, "by", actor, "why", why)
	s.refreshRollbacks(ctx, rel.Product)
	return nil
}

var errAlreadyPulled = errs.E(errs.Conflict, "release already held, pulled back or yanked")

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
