package escrow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestTheEscrowKeyIsCreatedOnceAndGuarded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	first, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", st.Mode().Perm(), err)
	}
	again, err := LoadOrCreateIdentity(dir)
	if err != nil || again.String() != first.String() {
		t.Fatalf("second load gave another key (%v)", err)
	}
	t.Run("a key file others may read is refused", func(t *testing.T) {
		os.Chmod(filepath.Join(dir, IdentityFile), 0o644)
		if _, err := LoadOrCreateIdentity(dir); err == nil {
			t.Fatal("loaded a world-readable key")
		}
	})
}

func TestTheSchedulerLoopReleasesWhenTheClockPassesTheDeadline(t *testing.T) {
	e := newEnv(t, "sqlite:"+filepath.Join(t.TempDir(), "a.db"), mustDisk(t))
	d, _ := e.deposit(t, acme, "demo-cam", "dead-man=1d,0s", demoFiles)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.svc.Scheduler("r1").Run(ctx, 5*time.Millisecond) }()
	e.clock.Add(24 * time.Hour)
	testenv.Eventually(t, 10*time.Second, func() error {
		select {
		case err := <-done:
			return testenv.GiveUp(fmt.Errorf("the loop ended early: %v", err))
		default:
		}
		if s := e.state(t, d.ID); s != Released {
			return fmt.Errorf("the scheduler loop has not released the deposit: it is %v", s)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
