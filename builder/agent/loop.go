package agent

// This file is the agent's loop: registering, asking for work, and seeing
// each job to its end (heartbeats, shutdown, giving it back).

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Run registers and then runs jobs until ctx ends; it returns nil then.
// Errors talking to the coordinator are retried (the HTTP client backs off
// already); only a refused registration ends Run with an error.
func (a *Agent) Run(ctx context.Context) error {
	for {
		me, err := a.o.Coordinator.Register(ctx, a.Registration())
		if err == nil {
			a.me = me
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if k := errs.KindOf(err); k != errs.Unavailable && k != errs.Internal {
			return fmt.Errorf("agent: register %s: %w", a.o.Name, err)
		}
		a.log.Warn("registration failed; retrying", "err", err)
		if !pause(ctx, 5*time.Second) {
			return nil
		}
	}
	if a.me.Operator == "" {
		a.log.Warn("builder registered, but its token is not bound to an operator: it gets no jobs until an admin binds it (afterlife admin token bind)", "id", a.me.ID, "key", a.me.KeyID)
	} else {
		a.log.Info("builder registered", "id", a.me.ID, "operator", a.me.Operator, "key", a.me.KeyID)
	}
	var backoff time.Duration
	for ctx.Err() == nil {
		job, err := a.o.Coordinator.Next(ctx, a.o.PollWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("asking for work failed", "err", err)
			if errs.Is(err, errs.Forbidden) {
				pause(ctx, 10*time.Second) // waiting for an admin
			} else {
				pause(ctx, 2*time.Second)
			}
			continue
		}
		if job == nil {
			continue
		}
		if a.runJob(ctx, job) {
			// The job could not run here (sandbox or coordinator trouble)
			// and went back: wait before taking another, so this builder
			// does not spin through the queue.
			backoff = min(max(2*backoff, time.Second), time.Minute)
			a.log.Warn("pausing after a job this builder could not run", "for", backoff)
			pause(ctx, backoff)
		} else {
			backoff = 0
		}
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// phases of a job, for deciding what a shutdown does with it.
const (
	phaseBuilding  int32 = iota // fetching or running: give the job back
	phaseReporting              // outputs exist: finish and report
)

// runJob runs one job to its end: reported, given back, or dropped when
// the lease was lost. It reports whether the job went back because of
// trouble on this side.
func (a *Agent) runJob(ctx context.Context, job *builder.Job) (trouble bool) {
	log := a.log.With("job", job.ID, "build", job.BuildID, "recipe", job.Spec.Recipe.Name)
	log.Info("job started", "attempt", job.Attempt)
	jobCtx, cancelJob := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJob()
	var phase atomic.Int32
	var lost, stopping atomic.Bool

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // heartbeat
		defer wg.Done()
		every := max(job.LeaseTTL/3, 50*time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-t.C:
			}
			if _, err := a.o.Coordinator.Extend(jobCtx, job.ID); err != nil {
				if errs.Is(err, errs.Conflict) || errs.Is(err, errs.NotFound) {
					log.Warn("lease lost; dropping the job", "err", err)
					lost.Store(true)
					cancelJob()
					return
				}
				log.Warn("heartbeat failed", "err", err)
			}
		}
	}()
	go func() { // shutdown: stop building, but let reporting finish
		defer wg.Done()
		select {
		case <-jobCtx.Done():
		case <-ctx.Done():
			stopping.Store(true)
			if phase.Load() == phaseBuilding {
				cancelJob()
			}
		}
	}()

	rep, err := a.execute(jobCtx, job, &phase, log)
	switch {
	case lost.Load():
	case err != nil && stopping.Load() && phase.Load() == phaseBuilding:
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if gerr := a.o.Coordinator.GiveBack(gctx, job.ID); gerr != nil {
			log.Warn("giving the job back failed; its lease will expire", "err", gerr)
		} else {
			log.Info("job given back on shutdown")
		}
		cancel()
	case err != nil && errs.Is(err, errs.Unavailable):
		// Not the build's fault (the coordinator or the network is down, the
		// sandbox would not start): another builder, or this one later, may
		// do better.
		trouble = true
		log.Error("job could not be run; giving it back", "err", err)
		if gerr := a.o.Coordinator.GiveBack(jobCtx, job.ID); gerr != nil {
			log.Warn("giving the job back failed; its lease will expire", "err", gerr)
		}
	case err != nil:
		// The job cannot be run as given (a blob that does not match its
		// digest, a missing toolchain): say so, so the verdict names it.
		log.Error("job failed before it could build", "err", err)
		reason := errs.Message(err)
		if errs.KindOf(err) == errs.Internal {
			reason = err.Error()
		}
		if derr := a.o.Coordinator.Done(jobCtx, job.ID, builder.Report{Failed: true, Reason: truncate(reason, 1000)}); derr != nil {
			log.Warn("reporting the failure failed; its lease will expire", "err", derr)
		}
	default:
		if derr := a.o.Coordinator.Done(jobCtx, job.ID, rep); derr != nil {
			log.Error("reporting the result failed", "err", derr)
			if gerr := a.o.Coordinator.GiveBack(jobCtx, job.ID); gerr != nil {
				log.Warn("giving the job back failed; its lease will expire", "err", gerr)
			}
		} else {
			log.Info("job done", "failed", rep.Failed, "reason", rep.Reason, "outputs", len(rep.Outputs))
		}
	}
	cancelJob()
	wg.Wait()
	return trouble
}
