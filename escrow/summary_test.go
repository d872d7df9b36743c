package escrow

import (
	"context"
	"testing"
	"time"
)

func TestPagesSeeAProductsEscrowAsAnAnonymousReaderDoes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.deposit(t, acme, "demo-cam", "quorum=2/2:alice,bob", demoFiles)
		released, _ := e.deposit(t, acme, "demo-cam", "immediate", demoFiles)
		deadman, _ := e.deposit(t, acme, "demo-cam", "dead-man=30d,7d", demoFiles)

		t.Run("the summary counts and lists released deposits only", func(t *testing.T) {
			sum, err := e.svc.ProductSummary(ctx, "demo-cam")
			if err != nil {
				t.Fatal(err)
			}
			if sum.Released != 1 || len(sum.Deposits) != 1 || sum.Deposits[0].ID != released.ID || sum.Deposits[0].Manifest != nil {
				t.Fatalf("summary = %+v", sum)
			}
		})
		t.Run("a vendor's own listing holds its sealed deposits, another's none", func(t *testing.T) {
			mine, err := e.svc.List(ctx, acme, ListFilter{Mine: true})
			if err != nil || len(mine) != 3 {
				t.Fatalf("acme's = %d deposits, %v; want 3", len(mine), err)
			}
			theirs, err := e.svc.List(ctx, globex, ListFilter{Mine: true})
			if err != nil || len(theirs) != 0 {
				t.Fatalf("globex's = %+v, %v; want none", theirs, err)
			}
		})
		t.Run("the dead-man deadline counts from the seal until a check-in", func(t *testing.T) {
			d, err := e.svc.Get(ctx, acme, deadman.ID)
			if err != nil {
				t.Fatal(err)
			}
			last, deadline, ok, err := e.svc.DeadManDeadline(ctx, d)
			if err != nil || !ok || !last.IsZero() || !deadline.Equal(d.SealedAt.Add(37*24*time.Hour)) {
				t.Fatalf("DeadManDeadline = %v, %v, %v, %v; want the seal + 37 days", last, deadline, ok, err)
			}
			if _, _, ok, err := e.svc.DeadManDeadline(ctx, released); ok || err != nil {
				t.Fatalf("an immediate policy has a dead-man deadline (%v)", err)
			}
		})
	})
}
