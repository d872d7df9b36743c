package registry

import (
	"context"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

func TestPagesCountReleasesAndFindTheNewestStableVersionInOneQuery(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{})
		root := principal.Principal{Name: "root", Role: principal.Admin}
		latest := func(t *testing.T, products ...string) map[string]string {
			t.Helper()
			m, err := e.svc.LatestStable(ctx, products)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		t.Run("a product without releases has no latest version", func(t *testing.T) {
			if m := latest(t, "demo-cam", "unknown"); len(m) != 0 {
				t.Fatalf("latest = %v", m)
			}
			if m := latest(t); len(m) != 0 {
				t.Fatalf("latest of nothing = %v", m)
			}
		})
		b1, _ := e.firmware("1.0.0")
		e.publish(PublishRequest{BuildID: b1, Version: "1.0.0", Channel: Stable})
		e.clock.add(time.Minute)
		b2, _ := e.firmware("1.1.0")
		r2 := e.publish(PublishRequest{BuildID: b2, Version: "1.1.0", Channel: Stable})
		e.clock.add(time.Minute)
		b3, _ := e.firmware("2.0.0")
		e.publish(PublishRequest{BuildID: b3, Version: "2.0.0", Channel: Testing})
		t.Run("the newest stable release is the latest; testing ones are not", func(t *testing.T) {
			if m := latest(t, "demo-cam", "unknown"); len(m) != 1 || m["demo-cam"] != "1.1.0" {
				t.Fatalf("latest = %v", m)
			}
		})
		t.Run("a yanked release is not offered, so not the latest", func(t *testing.T) {
			if _, err := e.svc.Yank(ctx, root, r2.ID, "broken"); err != nil {
				t.Fatal(err)
			}
			if m := latest(t, "demo-cam"); m["demo-cam"] != "1.0.0" {
				t.Fatalf("latest = %v", m)
			}
		})
		t.Run("every release counts, yanked ones included", func(t *testing.T) {
			n, err := e.svc.CountReleases(ctx)
			if err != nil || n != 3 {
				t.Fatalf("CountReleases = %d, %v; want 3", n, err)
			}
		})
	})
}
