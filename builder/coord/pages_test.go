package coord_test

import (
	"context"
	"testing"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestPagesCountBuildsFilterBySubmitterAndReadOnlyTheirBuildsLogs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFarm(t, d, coord.Options{Quorum: 2})
		ids := map[string]string{}
		for _, who := range []string{"alice", "bob"} {
			id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, ""), RequestedBy: who})
			if err != nil {
				t.Fatal(err)
			}
			ids[who] = id
		}
		t.Run("builds are counted, all and by state", func(t *testing.T) {
			for state, want := range map[verdict.State]int{"": 2, verdict.Pending: 2, verdict.Reproducible: 0} {
				if n, err := f.svc.CountBuilds(ctx, state); err != nil || n != want {
					t.Fatalf("CountBuilds(%q) = %d, %v; want %d", state, n, err, want)
				}
			}
		})
		t.Run("a submitter's builds are theirs only", func(t *testing.T) {
			bs, err := f.svc.Builds(ctx, coord.Filter{RequestedBy: "alice"})
			if err != nil || len(bs) != 1 || bs[0].ID != ids["alice"] {
				t.Fatalf("alice's builds = %+v, %v", bs, err)
			}
		})
		a := register(t, f, "a", "alice-ops", "amd64", busybox)
		job := next(t, f, a)
		other := ids["alice"]
		if job.BuildID == other {
			other = ids["bob"]
		}
		t.Run("a build runs once a job is leased; the other stays queued", func(t *testing.T) {
			running, err := f.svc.Build(ctx, job.BuildID)
			if err != nil || !running.Running() {
				t.Fatalf("build %s running = %v, %v", job.BuildID, running.Running(), err)
			}
			queued, err := f.svc.Build(ctx, other)
			if err != nil || queued.Running() {
				t.Fatalf("build %s running = %v, %v", other, queued.Running(), err)
			}
		})
		t.Run("a job's log is read through its own build only", func(t *testing.T) {
			if _, err := f.svc.BuildLog(ctx, job.BuildID, job.ID, 0); err != nil {
				t.Fatal(err)
			}
			for _, build := range []string{other, "bld-unknown"} {
				if _, err := f.svc.BuildLog(ctx, build, job.ID, 0); !errs.Is(err, errs.NotFound) {
					t.Fatalf("log of %s through build %s: err = %v, want NotFound", job.ID, build, err)
				}
			}
			if _, err := f.svc.BuildLog(ctx, job.BuildID, "job-unknown", 0); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unknown job: err = %v", err)
			}
		})
	})
}
