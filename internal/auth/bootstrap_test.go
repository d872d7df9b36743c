package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

func TestADatabaseGetsExactlyOneBootstrapAdminToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
		s, err := New(ctx, d, func() time.Time { return now })
		if err != nil {
			t.Fatal(err)
		}
		// Replicas starting together, each with its own service.
		const replicas = 6
		var wg sync.WaitGroup
		var mu sync.Mutex
		var secrets []string
		var failures []error
		for range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				secret, _, created, err := s.Bootstrap(ctx, 24*time.Hour)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
				}
				if created {
					secrets = append(secrets, secret)
				}
			}()
		}
		wg.Wait()
		if len(failures) != 0 || len(secrets) != 1 {
			t.Fatalf("%d replicas made a token (errors %v), want exactly one", len(secrets), failures)
		}

		t.Run("the token is an admin token that expires after the given time", func(t *testing.T) {
			p, err := s.Authenticate(ctx, secrets[0])
			if err != nil || p.Role != principal.Admin {
				t.Fatalf("authenticate = %+v, %v", p, err)
			}
			toks, err := s.Tokens(ctx, "")
			if err != nil || len(toks) != 1 || toks[0].Name != BootstrapName || !toks[0].Expires.Equal(now.Add(24*time.Hour)) {
				t.Fatalf("tokens = %+v, %v", toks, err)
			}
		})
		t.Run("a later start makes none", func(t *testing.T) {
			if _, _, created, err := s.Bootstrap(ctx, 24*time.Hour); created || err != nil {
				t.Fatalf("bootstrap again = %v, %v", created, err)
			}
		})
	})
}
