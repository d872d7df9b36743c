package coord_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// The admin page charts the farm's queue and build durations from
// Activity: a job waits from its creation until a builder starts it, and
// a build lasts from its submission to its verdict.
func TestActivityShowsHowLongJobsWaitedAndBuildsTook(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		clock := &testClock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
		f := newFarm(t, d, coord.Options{Quorum: 2, Now: clock.now})
		ctx := context.Background()
		t0 := clock.now()
		var a, b agentID // the two builders, of two operators

		t.Run("an idle farm has an empty queue at every hour and no builds", func(t *testing.T) {
			a, err := f.svc.Activity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Queue) != 25 || !a.Queue[24].At.Equal(t0) || !a.Since.Equal(t0.Add(-24*time.Hour)) || len(a.Builds) != 0 {
				t.Fatalf("activity = %+v", a)
			}
			for _, q := range a.Queue {
				if q.Waiting != 0 {
					t.Fatalf("an idle farm had %d jobs waiting at %s", q.Waiting, q.At)
				}
			}
		})
		t.Run("two jobs wait until each builder starts one, and the build lasts until its verdict", func(t *testing.T) {
			id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
			if err != nil {
				t.Fatal(err)
			}
			a = register(t, f, "a", "alice", "amd64", busybox)
			b = register(t, f, "b", "bob", "amd64", busybox)
			clock.add(90 * time.Minute)
			if err := finish(t, f, a, next(t, f, a), "same"); err != nil {
				t.Fatal(err)
			}
			clock.add(60 * time.Minute)
			if err := finish(t, f, b, next(t, f, b), "same"); err != nil {
				t.Fatal(err)
			}
			clock.add(2 * time.Hour)
			act, err := f.svc.Activity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Samples fall at t0 + 30 min + k hours, each the most jobs
			// waiting at once in the hour before it: both from t0 until
			// 90 min, one until 150 min.
			var got []int
			for _, q := range act.Queue[len(act.Queue)-6:] {
				got = append(got, q.Waiting)
			}
			if fmt.Sprint(got) != "[0 2 2 1 0 0]" || len(act.Queue) != 25 {
				t.Errorf("queue at the last six hours = %v (of %d samples), want [0 2 2 1 0 0]", got, len(act.Queue))
			}
			if len(act.Builds) != 1 || act.Builds[0].ID != id || act.Builds[0].Seconds != 9000 || act.Builds[0].State != verdict.Reproducible {
				t.Errorf("builds = %+v, want %s reproducible after 9000 s", act.Builds, id)
			}
		})
		t.Run("a wait shorter than an hour between two samples still shows", func(t *testing.T) {
			if _, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")}); err != nil {
				t.Fatal(err)
			}
			clock.add(10 * time.Minute)
			if err := finish(t, f, a, next(t, f, a), "other"); err != nil {
				t.Fatal(err)
			}
			if err := finish(t, f, b, next(t, f, b), "other"); err != nil {
				t.Fatal(err)
			}
			clock.add(40 * time.Minute)
			act, err := f.svc.Activity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if last := act.Queue[len(act.Queue)-1]; last.Waiting != 2 {
				t.Errorf("the hour with a ten-minute wait of two jobs shows %d", last.Waiting)
			}
		})
		t.Run("a day later the queue has forgotten the jobs, the build stays listed", func(t *testing.T) {
			clock.add(25 * time.Hour)
			act, err := f.svc.Activity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range act.Queue {
				if q.Waiting != 0 {
					t.Fatalf("%d jobs waiting at %s", q.Waiting, q.At)
				}
			}
			if len(act.Builds) != 2 || act.Builds[0].Seconds != 9000 || act.Builds[1].Seconds != 600 {
				t.Fatalf("builds = %+v, want the two, oldest first", act.Builds)
			}
		})
	})
}
