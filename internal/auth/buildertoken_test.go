package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

func TestAnInProcessBuildersTokenIsFoundAgainAndBoundToItsOperator(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, err := auth.New(ctx, d, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		first, err := s.BuilderToken(ctx, "builder local-1", "demo-operator-1", "Demo operator 1")
		if err != nil {
			t.Fatal(err)
		}
		t.Run("the first call makes the operator and a token bound to it", func(t *testing.T) {
			o, err := s.Org(ctx, "demo-operator-1")
			if err != nil || o.Kind != "operator" || o.Name != "Demo operator 1" {
				t.Fatalf("org %+v, %v", o, err)
			}
			if op, err := s.OperatorOf(ctx, first); err != nil || op != "demo-operator-1" {
				t.Fatalf("OperatorOf = %q, %v", op, err)
			}
		})
		t.Run("a second call finds the same token", func(t *testing.T) {
			again, err := s.BuilderToken(ctx, "builder local-1", "demo-operator-1", "Demo operator 1")
			if err != nil || again != first {
				t.Fatalf("got %q, %v; want %q", again, err, first)
			}
		})
		t.Run("a token made before operators were bound is bound and kept", func(t *testing.T) {
			_, old, err := s.CreateToken(ctx, auth.TokenSpec{Name: "builder local-2", Role: principal.Builder})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.BuilderToken(ctx, "builder local-2", "demo-operator-2", "Demo operator 2")
			if err != nil || got != old.ID {
				t.Fatalf("got %q, %v; want the old token %q", got, err, old.ID)
			}
			if op, _ := s.OperatorOf(ctx, got); op != "demo-operator-2" {
				t.Fatalf("OperatorOf = %q, want demo-operator-2", op)
			}
		})
		t.Run("a revoked token is replaced", func(t *testing.T) {
			if err := s.Revoke(ctx, first); err != nil {
				t.Fatal(err)
			}
			got, err := s.BuilderToken(ctx, "builder local-1", "demo-operator-1", "Demo operator 1")
			if err != nil || got == first {
				t.Fatalf("got %q, %v; want a new token", got, err)
			}
		})
	})
}
