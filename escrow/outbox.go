package escrow

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/ids"
)

// Notice tells a consumer that a deposit was released. Its ID is the same
// on every delivery of it, so a consumer that must count each release once
// can key on it.
type Notice struct {
	ID      string
	Deposit string
	Product string
	Org     string    // the vendor org that deposited it
	Fired   string    // the policy that fired: immediate, on, dead-man, quorum
	Actor   string    // who released it (a trustee, the scheduler)
	At      time.Time // when it was released
}

// AfterRelease is a part that must hear of every release (the catalog moves
// the product to handed-over; the transparency log will log it). Parts
// cannot share a transaction, so escrow keeps each notice in its outbox and
// delivers it until Notify returns nil. Notify may see one notice more than
// once (a crash between its effect and escrow's record of it, a claim that
// ran out), so it must be idempotent: a notice delivered again changes
// nothing.
type AfterRelease interface {
	Notify(ctx context.Context, n Notice) error
}

// OutboxLease is the lease a replica holds while it delivers notices.
const OutboxLease = "escrow-outbox"

// outboxBatch bounds the deliveries one tick attempts.
const outboxBatch = 100

// DefaultBackoff is the wait before the next attempt of a delivery that
// failed attempts times: 10s, doubling, at most an hour.
func DefaultBackoff(attempts int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempts && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// addNotice records, in the release's transaction, the notice of a release
// and one pending delivery per consumer. Consumers are those the service
// has now; one added later hears of releases from then on.
func (s *Service) addNotice(ctx context.Context, tx *sql.Tx, d Deposit, now time.Time, actor, fired string) (string, error) {
	if len(s.consumers) == 0 {
		return "", nil
	}
	id := ids.At("rel", now)
	_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_outbox (id, deposit, product, org, fired, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		id, d.ID, d.Product, d.Org, fired, actor, db.Millis(now))
	if err != nil {
		return "", err
	}
	for _, name := range s.consumers {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_outbox_deliveries (notice, consumer, due_at) VALUES (?, ?, ?)`),
			id, name, db.Millis(now))
		if err != nil {
			return "", err
		}
	}
	return id, nil
}

// deliverNow delivers a fresh notice to every consumer at once, as release
// did before there was an outbox; what fails stays for the worker.
func (s *Service) deliverNow(ctx context.Context, notice string, now time.Time) {
	if notice == "" {
		return
	}
	for _, name := range s.consumers {
		_, _ = s.deliver(ctx, notice, name, now)
	}
}

// deliver claims one pending delivery, hands its notice to the consumer
// and records the outcome: done, or failed and due again after the
// backoff. It reports whether this call delivered it; a delivery that is
// done or claimed by someone else is left alone.
func (s *Service) deliver(ctx context.Context, notice, consumer string, now time.Time) (bool, error) {
	c, ok := s.afterRelease[consumer]
	if !ok {
		return false, nil
	}
	holder := ids.At("claim", now)
	res, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_outbox_deliveries SET claimed_by = ?, claimed_until = ?
		WHERE notice = ? AND consumer = ? AND done_at = 0 AND claimed_until <= ?`),
		holder, db.Millis(now.Add(s.claimTTL)), notice, consumer, db.Millis(now))
	if err != nil {
		return false, fmt.Errorf("escrow: claim delivery of %s to %s: %w", notice, consumer, db.Classify(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	n, err := s.notice(ctx, notice)
	if err == nil {
		callCtx, cancel := context.WithTimeout(ctx, s.claimTTL)
		err = c.Notify(callCtx, n)
		cancel()
	}
	if err != nil {
		var attempts int
		if qerr := s.db.QueryRowContext(ctx, s.db.Q(`SELECT attempts FROM escrow_outbox_deliveries WHERE notice = ? AND consumer = ?`), notice, consumer).Scan(&attempts); qerr != nil {
			return false, fmt.Errorf("escrow: deliver %s to %s: %w (and reading its attempts: %v)", notice, consumer, err, qerr)
		}
		attempts++
		next := now.Add(s.backoff(attempts))
		_, uerr := s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_outbox_deliveries SET attempts = ?, due_at = ?, last_error = ?, claimed_by = '', claimed_until = 0
			WHERE notice = ? AND consumer = ? AND claimed_by = ?`),
			attempts, db.Millis(next), truncate(err.Error(), 1000), notice, consumer, holder)
		s.log.Error("escrow: after-release delivery failed; it will be retried", "notice", notice, "consumer", consumer,
			"deposit", n.Deposit, "attempts", attempts, "next", next, "err", err)
		if uerr != nil {
			return false, fmt.Errorf("escrow: deliver %s to %s: %w (and recording it: %v)", notice, consumer, err, db.Classify(uerr))
		}
		return false, fmt.Errorf("escrow: deliver %s to %s: %w", notice, consumer, err)
	}
	_, err = s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_outbox_deliveries SET attempts = attempts + 1, done_at = ?, last_error = '', claimed_by = '', claimed_until = 0
		WHERE notice = ? AND consumer = ? AND claimed_by = ?`),
		db.Millis(now), notice, consumer, holder)
	if err != nil {
		// The consumer has it; its claim runs out and it hears of it
		// again, which Notify's idempotence makes harmless.
		return true, fmt.Errorf("escrow: mark delivery of %s to %s done: %w", notice, consumer, db.Classify(err))
	}
	return true, nil
}

func (s *Service) notice(ctx context.Context, id string) (Notice, error) {
	n := Notice{ID: id}
	var at int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT deposit, product, org, fired, actor, at FROM escrow_outbox WHERE id = ?`), id).
		Scan(&n.Deposit, &n.Product, &n.Org, &n.Fired, &n.Actor, &at)
	if err != nil {
		return n, fmt.Errorf("escrow: notice %s: %w", id, db.NotFound(err, "notice %s not found", id))
	}
	n.At = db.FromMillis(at)
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// delivery is the state of one notice's delivery to one consumer.
type delivery struct {
	Notice   string
	Deposit  string
	Consumer string
	Attempts int
	Due      time.Time // when the next attempt is due (pending ones)
	Done     time.Time // zero while pending
	Error    string    // the last failure, while pending
}

// deliveries lists the outbox's deliveries of deposit's release notices.
func (s *Service) deliveries(ctx context.Context, deposit string) ([]delivery, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT d.notice, o.deposit, d.consumer, d.attempts, d.due_at, d.done_at, d.last_error
		FROM escrow_outbox_deliveries d JOIN escrow_outbox o ON o.id = d.notice WHERE o.deposit = ? ORDER BY d.notice, d.consumer`), deposit)
	if err != nil {
		return nil, fmt.Errorf("escrow: deliveries of %s: %w", deposit, db.Classify(err))
	}
	defer rows.Close()
	var out []delivery
	for rows.Next() {
		var d delivery
		var due, done int64
		if err := rows.Scan(&d.Notice, &d.Deposit, &d.Consumer, &d.Attempts, &due, &done, &d.Error); err != nil {
			return nil, err
		}
		d.Due, d.Done = db.FromMillis(due), db.FromMillis(done)
		out = append(out, d)
	}
	return out, db.Classify(rows.Err())
}

// Outbox delivers the release notices that are still pending: those whose
// first delivery, at release, failed or never finished. Several replicas
// may run one each: a lease makes one replica deliver at a time, and each
// delivery's claim keeps it from running twice at once even if two ever
// overlap.
type Outbox struct {
	s       *Service
	replica string
	// LeaseTTL is how long one tick's lease lasts (default 1 minute).
	LeaseTTL time.Duration
}

// Outbox returns the outbox worker acting as replica replicaID.
func (s *Service) Outbox(replicaID string) *Outbox {
	return &Outbox{s: s, replica: replicaID, LeaseTTL: time.Minute}
}

// OutboxResult says what one tick did.
type OutboxResult struct {
	Leader    bool // this replica held the lease
	Delivered int  // deliveries done by this tick
	Failed    int  // deliveries that failed and wait for their backoff
}

// Tick delivers what is due at now, if this replica gets the outbox lease.
func (o *Outbox) Tick(ctx context.Context, now time.Time) (OutboxResult, error) {
	var res OutboxResult
	if len(o.s.consumers) == 0 {
		return res, nil
	}
	ok, err := o.s.db.TryLease(ctx, OutboxLease, o.replica, o.LeaseTTL, now)
	if err != nil || !ok {
		return res, err
	}
	res.Leader = true
	due, err := o.s.due(ctx, now)
	if err != nil {
		return res, err
	}
	for _, d := range due {
		done, err := o.s.deliver(ctx, d.notice, d.consumer, now)
		switch {
		case done:
			res.Delivered++
		case err != nil:
			res.Failed++
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

type dueDelivery struct{ notice, consumer string }

// due lists pending, unclaimed deliveries to this service's consumers whose
// time has come, oldest first.
func (s *Service) due(ctx context.Context, now time.Time) ([]dueDelivery, error) {
	args := []any{db.Millis(now), db.Millis(now)}
	for _, c := range s.consumers {
		args = append(args, c)
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(s.consumers)), ", ")
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT notice, consumer FROM escrow_outbox_deliveries
		WHERE done_at = 0 AND due_at <= ? AND claimed_until <= ? AND consumer IN (`+in+`)
		ORDER BY due_at, notice, consumer LIMIT `+fmt.Sprint(outboxBatch)), args...)
	if err != nil {
		return nil, fmt.Errorf("escrow: pending deliveries: %w", db.Classify(err))
	}
	defer rows.Close()
	var out []dueDelivery
	for rows.Next() {
		var d dueDelivery
		if err := rows.Scan(&d.notice, &d.consumer); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, db.Classify(rows.Err())
}

// Run ticks every interval until ctx ends, with the service's clock.
func (o *Outbox) Run(ctx context.Context, every time.Duration) error {
	if o.LeaseTTL < 2*every {
		o.LeaseTTL = 2 * every
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := o.Tick(ctx, o.s.now()); err != nil && ctx.Err() == nil {
			o.s.log.Error("escrow: outbox tick failed", "replica", o.replica, "err", err)
		}
		select {
		case <-ctx.Done():
			releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = o.s.db.ReleaseLease(releaseCtx, OutboxLease, o.replica)
			cancel()
			return nil
		case <-t.C:
		}
	}
}

// consumerNames are the names of consumers, sorted, so deliveries are
// recorded and tried in one order.
func consumerNames(m map[string]AfterRelease) []string {
	out := make([]string, 0, len(m))
	for name := range m {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
