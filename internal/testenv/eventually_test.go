package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestPoll(t *testing.T) {
	notYet := errors.New("not yet")
	t.Run("a condition that comes to hold is seen after a few tries", func(t *testing.T) {
		tries := 0
		err := testenv.Poll(t.Context(), time.Minute, func() error {
			if tries++; tries < 4 {
				return notYet
			}
			return nil
		})
		if err != nil || tries != 4 {
			t.Fatalf("Poll = %v after %d tries, want nil after 4", err, tries)
		}
	})
	t.Run("a condition that never holds fails with its last error", func(t *testing.T) {
		tries := 0
		err := testenv.Poll(t.Context(), 50*time.Millisecond, func() error {
			tries++
			return fmt.Errorf("try %d: %w", tries, notYet)
		})
		if !errors.Is(err, notYet) || !strings.Contains(err.Error(), fmt.Sprintf("try %d:", tries)) {
			t.Fatalf("Poll = %v, want the last of %d tries' errors", err, tries)
		}
	})
	t.Run("a condition that gives up stops the polling at once", func(t *testing.T) {
		tries := 0
		err := testenv.Poll(t.Context(), time.Hour, func() error {
			tries++
			return testenv.GiveUp(notYet)
		})
		if !errors.Is(err, notYet) || tries != 1 {
			t.Fatalf("Poll = %v after %d tries, want %v after 1", err, tries, notYet)
		}
	})
	t.Run("an ended context stops the polling", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := testenv.Poll(ctx, time.Hour, func() error { return notYet })
		if !errors.Is(err, context.Canceled) || !errors.Is(err, notYet) {
			t.Fatalf("Poll = %v, want it to hold context.Canceled and %v", err, notYet)
		}
	})
}
