package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/catalog"
)

// The escrow outbox delivers a release notice at least once; the hand-over
// it is wired to must turn any number of deliveries into one status change.
func TestAReleaseNoticeDeliveredAgainHandsTheProductOverOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		c, err := catalog.New(ctx, d, func() time.Time { return now })
		if err != nil {
			t.Fatal(err)
		}
		vendor := principal.Principal{Name: "acme-ci", Role: principal.Vendor, Org: "acme"}
		if _, err := c.Register(ctx, vendor, catalog.Registration{ID: "demo-cam", Vendor: "acme", Model: "Cam 200"}); err != nil {
			t.Fatal(err)
		}
		consumer := handOver{c}
		n := escrow.Notice{ID: "rel_1", Deposit: "dep_1", Product: "demo-cam", Org: "acme", Fired: "immediate", Actor: "vendor:acme-ci", At: now}

		// A first delivery, then two at once (a claim that ran out while
		// the first was still running), then one more after a crash.
		if err := consumer.Notify(ctx, n); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := consumer.Notify(ctx, n); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if err := consumer.Notify(ctx, n); err != nil {
			t.Fatal(err)
		}

		p, err := c.Get(ctx, "demo-cam")
		if err != nil || p.Status != catalog.HandedOver {
			t.Fatalf("product = %+v, %v; want handed-over", p, err)
		}
		evs, err := c.Events(ctx, "demo-cam")
		if err != nil {
			t.Fatal(err)
		}
		moves := 0
		for _, e := range evs {
			if e.To == catalog.HandedOver {
				moves++
			}
		}
		if moves != 1 {
			t.Fatalf("status events = %+v; want one move to handed-over for four deliveries", evs)
		}
	})
}
