package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Eventually calls cond until it returns nil, and fails t with cond's last
// error when timeout passes first or cond gives up (see GiveUp). It is how
// a test waits for a condition: never a fixed sleep, never a loop of its
// own. The first retry comes after 10ms, later ones back off to 250ms, so
// a condition that holds soon is seen soon and a slow one is not hammered.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(t.Context(), timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// Poll is Eventually for code that cannot fail a test itself (a goroutine,
// a helper that returns errors): it returns nil once cond does, or an error
// holding cond's last error when timeout passes, cond gives up, or ctx ends.
func Poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	start := time.Now()
	deadline := start.Add(timeout)
	wait := pollFirst
	for tries := 1; ; tries++ {
		err := cond()
		if err == nil {
			return nil
		}
		var g giveUp
		if errors.As(err, &g) {
			return fmt.Errorf("gave up after %s (%d tries): %w", time.Since(start).Round(time.Millisecond), tries, g.err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("still failing after %s (%d tries): %w", timeout, tries, err)
		}
		timer := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w after %d tries; last: %w", ctx.Err(), tries, err)
		case <-timer.C:
		}
		wait = min(wait*2, pollMax)
	}
}

const (
	pollFirst = 10 * time.Millisecond
	pollMax   = 250 * time.Millisecond
)

// GiveUp marks err as final: Eventually and Poll stop at once and report
// it, for a state the condition can no longer reach (a build that failed,
// a server that exited).
func GiveUp(err error) error { return giveUp{err} }

type giveUp struct{ err error }

func (g giveUp) Error() string { return g.err.Error() }
func (g giveUp) Unwrap() error { return g.err }
