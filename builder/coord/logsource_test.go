package coord_test

import (
	"context"
	"testing"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
)

func TestEveryDecidedBuildIsInTheVerdictLogOnceInTheOrderDecided(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newFarm(t, d, coord.Options{Quorum: 2})
		a := register(t, f, "a", "alice", "amd64", busybox)
		b := register(t, f, "b", "bob", "amd64", busybox)
		var builds []string
		for i, outs := range [][2]string{{"same", "same"}, {"one", "two"}} {
			id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
			if err != nil {
				t.Fatal(err)
			}
			builds = append(builds, id)
			ja, jb := next(t, f, a), next(t, f, b)
			if err := finish(t, f, a, ja, outs[0]); err != nil {
				t.Fatal(err)
			}
			if got, err := f.svc.VerdictsAfter(ctx, int64(i), 10); err != nil || len(got) != 0 {
				t.Fatalf("a pending build is in the verdict log: %+v %v", got, err)
			}
			if err := finish(t, f, b, jb, outs[1]); err != nil {
				t.Fatal(err)
			}
		}
		got, err := f.svc.VerdictsAfter(ctx, 0, 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("verdict log: %+v, %v; want both builds", got, err)
		}
		for i, want := range []verdict.State{verdict.Reproducible, verdict.Unreproducible} {
			v := got[i]
			if v.Seq != int64(i+1) || v.Build.ID != builds[i] || v.Build.State != want || len(v.Build.Results) != 2 {
				t.Fatalf("entry %d: seq %d build %s %s with %d results; want %s %s with both results", i, v.Seq, v.Build.ID, v.Build.State, len(v.Build.Results), builds[i], want)
			}
			for _, r := range v.Build.Results {
				if r.Attestation == "" || r.Operator == "" {
					t.Fatalf("result %+v carries no attestation or operator", r)
				}
			}
		}
		if more, _ := f.svc.VerdictsAfter(ctx, 1, 10); len(more) != 1 || more[0].Build.ID != builds[1] {
			t.Fatalf("after seq 1: %+v", more)
		}
	})
}
