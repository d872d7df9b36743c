package health_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/health"
)

func TestRun(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	hangs := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name       string
		db, blobs  func(context.Context) error
		wantStatus string
		wantReady  bool
	}{
		{"every dependency answering is ready", up, up, health.Ready, true},
		{"the blob store away leaves the replica ready but degraded", up, down, health.Degraded, true},
		{"a blob store that hangs is cut at the timeout and leaves the replica ready", up, hangs, health.Degraded, true},
		{"the database away makes the replica unavailable", down, up, health.Unavailable, false},
		{"both away make it unavailable", down, down, health.Unavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := health.Run(context.Background(), 50*time.Millisecond, []health.Check{
				{Name: "database", Needed: true, Ping: tc.db},
				{Name: "blobs", Without: "downloads and uploads", Ping: tc.blobs},
			})
			if rep.Status != tc.wantStatus || rep.Ready() != tc.wantReady {
				t.Fatalf("status %s, ready %v; want %s, %v (%+v)", rep.Status, rep.Ready(), tc.wantStatus, tc.wantReady, rep.Checks)
			}
			for name, r := range rep.Checks {
				if r.OK != (r.Error == "") || (r.OK && r.Without != "") {
					t.Errorf("check %s: %+v: an error and what fails belong to failed checks only", name, r)
				}
			}
			if b := rep.Checks["blobs"]; !b.OK && b.Without != "downloads and uploads" {
				t.Errorf("the failed blob check does not say what fails meanwhile: %+v", b)
			}
		})
	}
}
