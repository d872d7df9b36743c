package escrow

import (
	"context"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
)

// SchedulerLease is the lease a replica holds while it evaluates policies.
const SchedulerLease = "escrow-scheduler"

// Scheduler evaluates release policies periodically. Several replicas may
// run one each: a lease makes one replica do the work at a time, and the
// conditional state change in release makes each release happen once even
// if two replicas ever overlap.
type Scheduler struct {
	s       *Service
	replica string
	// LeaseTTL is how long one tick's lease lasts (default 1 minute).
	LeaseTTL time.Duration
}

// Scheduler returns a scheduler acting as replica replicaID.
func (s *Service) Scheduler(replicaID string) *Scheduler {
	return &Scheduler{s: s, replica: replicaID, LeaseTTL: time.Minute}
}

// TickResult says what one tick did.
type TickResult struct {
	Leader    bool     // this replica held the lease
	Released  []string // deposits released by this tick
	Abandoned []string // uploads removed for being idle past the TTL
}

// Tick evaluates every sealed deposit at now and removes abandoned uploads,
// if this replica gets the scheduler lease.
func (sc *Scheduler) Tick(ctx context.Context, now time.Time) error {
	_, err := sc.TickResult(ctx, now)
	return err
}

// TickResult is Tick, reporting what it did.
func (sc *Scheduler) TickResult(ctx context.Context, now time.Time) (TickResult, error) {
	var res TickResult
	ok, err := sc.s.db.TryLease(ctx, SchedulerLease, sc.replica, sc.LeaseTTL, now)
	if err != nil || !ok {
		return res, err
	}
	res.Leader = true
	ids, err := sc.s.stateIDs(ctx, Sealed, 0)
	if err != nil {
		return res, err
	}
	var firstErr error
	for _, id := range ids {
		released, err := sc.s.Evaluate(ctx, id, now, "scheduler:"+sc.replica)
		if err != nil {
			sc.s.log.Error("escrow: evaluating a deposit failed", "deposit", id, "err", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if released {
			res.Released = append(res.Released, id)
		}
	}
	stale, err := sc.s.stateIDs(ctx, Uploading, db.Millis(now.Add(-sc.s.uploadTTL)))
	if err != nil {
		return res, err
	}
	for _, id := range stale {
		if err := sc.s.drop(ctx, id, "scheduler:"+sc.replica, "abandoned"); err != nil {
			sc.s.log.Warn("escrow: could not remove an abandoned upload", "deposit", id, "err", err)
			continue
		}
		res.Abandoned = append(res.Abandoned, id)
	}
	return res, firstErr
}

// stateIDs lists deposits in state; createdBefore > 0 keeps only those
// created before it.
func (s *Service) stateIDs(ctx context.Context, state State, createdBefore int64) ([]string, error) {
	q := `SELECT id FROM escrow_deposits WHERE state = ?`
	args := []any{state}
	if createdBefore > 0 {
		q += ` AND created_at < ?`
		args = append(args, createdBefore)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(q+` ORDER BY id`), args...)
	if err != nil {
		return nil, fmt.Errorf("escrow: list %s deposits: %w", state, db.Classify(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, db.Classify(rows.Err())
}

// Run ticks every interval until ctx ends, with the service's clock.
func (sc *Scheduler) Run(ctx context.Context, every time.Duration) error {
	if sc.LeaseTTL < 2*every {
		sc.LeaseTTL = 2 * every
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := sc.Tick(ctx, sc.s.now()); err != nil && ctx.Err() == nil {
			sc.s.log.Error("escrow: scheduler tick failed", "replica", sc.replica, "err", err)
		}
		select {
		case <-ctx.Done():
			releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = sc.s.db.ReleaseLease(releaseCtx, SchedulerLease, sc.replica)
			cancel()
			return nil
		case <-t.C:
		}
	}
}
