package escrow

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// ledger is an after-release consumer that keeps one effect per notice, as
// a consumer must: it keys on the notice's id, so a notice delivered again
// changes nothing. It fails while failures > 0, and calls onNotify after
// its effect.
type ledger struct {
	mu       sync.Mutex
	failures int
	calls    map[string]int // notice id → Notify calls
	effects  map[string]int // notice id → effects applied
	onNotify func()
}

func newLedger(failures int) *ledger {
	return &ledger{failures: failures, calls: map[string]int{}, effects: map[string]int{}}
}

func (l *ledger) Notify(_ context.Context, n Notice) error {
	l.mu.Lock()
	l.calls[n.ID]++
	if l.failures > 0 {
		l.failures--
		l.mu.Unlock()
		return errors.New("consumer unavailable")
	}
	if l.effects[n.ID] == 0 {
		l.effects[n.ID]++
	}
	hook := l.onNotify
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (l *ledger) counts() (calls, effects map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls, effects = map[string]int{}, map[string]int{}
	for k, v := range l.calls {
		calls[k] = v
	}
	for k, v := range l.effects {
		effects[k] = v
	}
	return calls, effects
}

// sealedDeposits commits n dead-man deposits that are due at due.
func (e *env) sealedDeposits(t *testing.T, n int) (ids []string, due time.Time) {
	t.Helper()
	e.clock.Set(t0)
	for range n {
		d, _ := e.deposit(t, acme, "demo-cam", "dead-man=1d,1h", demoFiles)
		ids = append(ids, d.ID)
	}
	return ids, t0.Add(25 * time.Hour)
}

func onlyDelivery(t *testing.T, s *Service, deposit string) delivery {
	t.Helper()
	ds, err := s.deliveries(context.Background(), deposit)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("deliveries of %s = %+v, want one", deposit, ds)
	}
	return ds[0]
}

func TestAFailingConsumerIsRetriedWithBackoffUntilItTakesTheNoticeOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := newLedger(3)
		s := e.service(t, e.db, Options{AfterRelease: map[string]AfterRelease{"ledger": l}})
		dep, due := e.sealedDeposits(t, 1)
		e.clock.Set(due)
		released, err := s.Evaluate(ctx, dep[0], due, "scheduler:test")
		if err != nil || !released {
			t.Fatalf("Evaluate = %v, %v; a failing consumer must not undo the release", released, err)
		}
		if got := e.state(t, dep[0]); got != Released {
			t.Fatalf("state = %s", got)
		}
		d := onlyDelivery(t, s, dep[0])
		if d.Attempts != 1 || !d.Done.IsZero() || d.Error == "" || !d.Due.Equal(due.Add(10*time.Second)) {
			t.Fatalf("after the attempt at release: %+v, want 1 attempt, pending, due in 10s", d)
		}

		ob := s.Outbox("r1")
		at := due
		for i, wait := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
			early, err := ob.Tick(ctx, at.Add(wait-time.Millisecond))
			if err != nil || !early.Leader || early.Delivered+early.Failed != 0 {
				t.Fatalf("tick before the backoff ends = %+v, %v; want nothing tried", early, err)
			}
			at = at.Add(wait)
			res, err := ob.Tick(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			if want := (OutboxResult{Leader: true, Failed: 1}); i < 2 && res != want {
				t.Fatalf("retry %d = %+v, want %+v", i+1, res, want)
			}
			if want := (OutboxResult{Leader: true, Delivered: 1}); i == 2 && res != want {
				t.Fatalf("retry %d = %+v, want %+v", i+1, res, want)
			}
		}
		d = onlyDelivery(t, s, dep[0])
		if d.Attempts != 4 || !d.Done.Equal(at) || d.Error != "" {
			t.Fatalf("after success: %+v, want done at %v after 4 attempts", d, at)
		}
		calls, effects := l.counts()
		if calls[d.Notice] != 4 || effects[d.Notice] != 1 || len(effects) != 1 {
			t.Fatalf("calls = %v, effects = %v; want 4 calls and one effect", calls, effects)
		}
		res, err := ob.Tick(ctx, at.Add(24*time.Hour))
		if err != nil || res.Delivered+res.Failed != 0 {
			t.Fatalf("a tick after success = %+v, %v; want nothing", res, err)
		}
		if calls, _ := l.counts(); calls[d.Notice] != 4 {
			t.Fatalf("a done delivery was tried again: %v", calls)
		}
	})
}

func TestACrashBetweenDeliveryAndItsRecordDeliversAgainWithoutASecondEffect(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		l := newLedger(0)
		s := e.service(t, e.db, Options{AfterRelease: map[string]AfterRelease{"ledger": l}})
		dep, due := e.sealedDeposits(t, 1)
		e.clock.Set(due)

		// The process dies right after the consumer applied the notice,
		// before escrow records the delivery as done.
		ctx, crash := context.WithCancel(context.Background())
		l.onNotify = crash
		released, err := s.Evaluate(ctx, dep[0], due, "scheduler:test")
		if err != nil || !released {
			t.Fatalf("Evaluate = %v, %v", released, err)
		}
		l.onNotify = nil
		d := onlyDelivery(t, s, dep[0])
		if !d.Done.IsZero() {
			t.Fatalf("delivery = %+v; the crash came before it was recorded, so it must be pending", d)
		}

		// Restarted: another process on the same database.
		restarted := e.service(t, openDB(t, e.dbURL), Options{AfterRelease: map[string]AfterRelease{"ledger": l}})
		ob := restarted.Outbox("r2")
		res, err := ob.Tick(context.Background(), due.Add(time.Minute-time.Millisecond))
		if err != nil || res.Delivered != 0 {
			t.Fatalf("tick while the dead claim holds = %+v, %v; want nothing", res, err)
		}
		res, err = ob.Tick(context.Background(), due.Add(time.Minute))
		if err != nil || res.Delivered != 1 {
			t.Fatalf("tick once the claim ran out = %+v, %v; want the notice delivered again", res, err)
		}
		d = onlyDelivery(t, restarted, dep[0])
		calls, effects := l.counts()
		if d.Done.IsZero() || calls[d.Notice] != 2 || effects[d.Notice] != 1 {
			t.Fatalf("delivery %+v, calls %v, effects %v; want done, delivered twice, one effect", d, calls, effects)
		}
	})
}

func TestTwoReplicasDeliverEachNoticeOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		down := newLedger(1 << 30)
		up := newLedger(0)
		consumer := &switchable{to: down}
		a := e.service(t, e.db, Options{AfterRelease: map[string]AfterRelease{"ledger": consumer}})
		b := e.service(t, openDB(t, e.dbURL), Options{AfterRelease: map[string]AfterRelease{"ledger": consumer}})
		deps, due := e.sealedDeposits(t, 6)
		e.clock.Set(due)
		for _, id := range deps[:3] {
			if ok, err := a.Evaluate(ctx, id, due, "scheduler:a"); err != nil || !ok {
				t.Fatalf("Evaluate = %v, %v", ok, err)
			}
		}
		for _, id := range deps[3:] {
			if ok, err := b.Evaluate(ctx, id, due, "scheduler:b"); err != nil || !ok {
				t.Fatalf("Evaluate = %v, %v", ok, err)
			}
		}
		consumer.set(up) // the consumer is back

		retry := due.Add(10 * time.Second)
		var wg sync.WaitGroup
		results := make([]OutboxResult, 2)
		errs := make([]error, 2)
		for i, s := range []*Service{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ob := s.Outbox([]string{"replica-a", "replica-b"}[i])
				for range 5 {
					res, err := ob.Tick(ctx, retry)
					results[i].Delivered += res.Delivered
					if err != nil {
						errs[i] = err
					}
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
		if n := results[0].Delivered + results[1].Delivered; n != len(deps) {
			t.Fatalf("deliveries reported = %d and %d, want %d in all", results[0].Delivered, results[1].Delivered, len(deps))
		}
		calls, _ := up.counts()
		for _, id := range deps {
			d := onlyDelivery(t, a, id)
			if d.Done.IsZero() || calls[d.Notice] != 1 {
				t.Fatalf("deposit %s: delivery %+v, %d calls; want done, called once", id, d, calls[d.Notice])
			}
		}

		t.Run("the claim alone keeps a delivery to one deliverer without the lease", func(t *testing.T) {
			consumer.set(down)
			more, due := e.sealedDeposits(t, 1)
			if ok, err := a.Evaluate(ctx, more[0], due, "scheduler:a"); err != nil || !ok {
				t.Fatalf("Evaluate = %v, %v", ok, err)
			}
			consumer.set(up)
			notice := onlyDelivery(t, a, more[0]).Notice
			retry := due.Add(10 * time.Second)
			var mu sync.Mutex
			won := 0
			var wg sync.WaitGroup
			for _, s := range []*Service{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := s.deliver(ctx, notice, "ledger", retry)
					if err != nil {
						t.Error(err)
					}
					if ok {
						mu.Lock()
						won++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if calls, _ := up.counts(); won != 1 || calls[notice] != 1 {
				t.Fatalf("%d deliverers won, consumer called %d times; want 1 and 1", won, calls[notice])
			}
		})
	})
}

// switchable hands notices to whichever consumer it is set to.
type switchable struct {
	mu sync.Mutex
	to AfterRelease
}

func (s *switchable) set(to AfterRelease) { s.mu.Lock(); s.to = to; s.mu.Unlock() }

func (s *switchable) Notify(ctx context.Context, n Notice) error {
	s.mu.Lock()
	to := s.to
	s.mu.Unlock()
	return to.Notify(ctx, n)
}

func TestDefaultBackoffDoublesFromTenSecondsToAnHour(t *testing.T) {
	for _, c := range []struct {
		attempts int
		want     time.Duration
	}{{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {9, 2560 * time.Second}, {10, time.Hour}, {1000, time.Hour}} {
		if got := DefaultBackoff(c.attempts); got != c.want {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", c.attempts, got, c.want)
		}
	}
}
