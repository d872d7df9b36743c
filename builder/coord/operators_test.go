package coord_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// registerClaiming registers a builder with the token tokenID and a
// registration that names claimed as its operator, as a builder trying to
// pose as someone else would.
func registerClaiming(t *testing.T, f farm, tokenID, name, claimed string) agentID {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b, err := f.svc.Register(context.Background(), tokenID, builder.Registration{
		Name: name, Operator: claimed, PublicKey: keys.PublicKeyString(pub), Arch: "amd64", Toolchains: []builder.ToolchainInfo{busybox},
	})
	if err != nil {
		t.Fatal(err)
	}
	return agentID{b: b, key: priv}
}

// Attack 5 of issue 11: one party with two builder tokens met a quorum of
// two alone by naming a different operator in each registration.
func TestTwoBuildersOfOneOperatorCannotSatisfyAQuorumOfTwo(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 2})
		ctx := context.Background()
		id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
		if err != nil {
			t.Fatal(err)
		}
		m1 := registerClaiming(t, f, builderToken(t, f.auth, "m1", "mallory"), "m1", "mallory-lab-1")
		m2 := registerClaiming(t, f, builderToken(t, f.auth, "m2", "mallory"), "m2", "mallory-lab-2")
		unboundToken := builderToken(t, f.auth, "legacy", "")
		legacy := registerClaiming(t, f, unboundToken, "legacy", "carol")

		t.Run("the operator a builder names is ignored for the one an admin bound", func(t *testing.T) {
			for _, a := range []agentID{m1, m2} {
				if a.b.Operator != "mallory" {
					t.Fatalf("builder %s has operator %q, want the bound mallory", a.b.Name, a.b.Operator)
				}
			}
			if legacy.b.Operator != "" {
				t.Fatalf("an unbound token's builder has operator %q", legacy.b.Operator)
			}
		})
		j1 := next(t, f, m1)
		if j1 == nil {
			t.Fatal("mallory's first builder got no job")
		}
		t.Run("a second builder of the same operator gets no job of the build", func(t *testing.T) {
			if j := next(t, f, m2); j != nil {
				t.Fatalf("mallory's second builder got job %s", j.ID)
			}
		})
		t.Run("an unbound builder gets no job until an admin binds it", func(t *testing.T) {
			_, err := f.svc.Next(ctx, legacy.b.ID, 0)
			if !errs.Is(err, errs.Forbidden) {
				t.Fatalf("Next for an unbound builder: %v, want Forbidden", err)
			}
		})
		if err := finish(t, f, m1, j1, "firmware"); err != nil {
			t.Fatal(err)
		}
		t.Run("one operator's result leaves the build pending", func(t *testing.T) {
			b, err := f.svc.Build(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if b.State != verdict.Pending || b.Verdict.Agreeing != 1 {
				t.Fatalf("verdict %+v, want pending with one operator", b.Verdict)
			}
			if j := next(t, f, m2); j != nil {
				t.Fatalf("mallory's second builder got job %s after the first finished", j.ID)
			}
		})
		t.Run("once bound to another operator the old token's builder completes the quorum", func(t *testing.T) {
			if _, err := f.auth.BindOperator(ctx, unboundToken, "bob"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("binding to an org that does not exist: %v, want NotFound", err)
			}
			if err := f.auth.CreateOrg(ctx, "bob", "Bob's lab", "operator"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.auth.BindOperator(ctx, unboundToken, "bob"); err != nil {
				t.Fatal(err)
			}
			j2 := next(t, f, legacy)
			if j2 == nil {
				t.Fatal("the builder bound to bob got no job")
			}
			if err := finish(t, f, legacy, j2, "firmware"); err != nil {
				t.Fatal(err)
			}
			b, err := f.svc.Build(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			ops := map[string]bool{}
			for _, r := range b.Results {
				ops[r.Operator] = true
			}
			if b.State != verdict.Reproducible || b.Verdict.Agreeing != 2 || !ops["mallory"] || !ops["bob"] {
				t.Fatalf("verdict %+v with result operators %v, want reproducible by mallory and bob", b.Verdict, ops)
			}
		})
	})
}

func TestTheColdWitnessMustSaySoInItsSignedAttestation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 2})
		ctx := context.Background()
		id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.svc.Build(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		cold := 0
		for _, j := range b.Jobs {
			if j.Cold {
				cold++
			}
		}
		if len(b.Jobs) != 2 || cold != 1 {
			t.Fatalf("jobs %+v: want two, one of them cold", b.Jobs)
		}
		a := register(t, f, "a", "alice", "amd64", busybox)
		c := register(t, f, "c", "carol", "amd64", busybox)
		ja, jc := next(t, f, a), next(t, f, c)
		if ja == nil || jc == nil || ja.Cold == jc.Cold {
			t.Fatalf("jobs handed out %+v and %+v: want one cold and one warm", ja, jc)
		}
		coldJob, warmJob, coldAgent, warmAgent := ja, jc, a, c
		if jc.Cold {
			coldJob, warmJob, coldAgent, warmAgent = jc, ja, c, a
		}
		t.Run("a warm job whose attestation claims to be the cold witness is refused", func(t *testing.T) {
			if err := finishAs(t, f, warmAgent, warmJob, "firmware", true); !errs.Is(err, errs.Invalid) {
				t.Fatalf("Done: %v, want Invalid", err)
			}
		})
		t.Run("the cold witness's result attested as warm is refused", func(t *testing.T) {
			if err := finishAs(t, f, coldAgent, coldJob, "firmware", false); !errs.Is(err, errs.Invalid) {
				t.Fatalf("Done: %v, want Invalid", err)
			}
		})
		t.Run("the warm result alone leaves the build waiting for the witness", func(t *testing.T) {
			if err := finish(t, f, warmAgent, warmJob, "firmware"); err != nil {
				t.Fatal(err)
			}
			if v, err := f.svc.Verdict(ctx, id); err != nil || v.State != verdict.Pending {
				t.Fatalf("verdict %+v, %v; want pending", v, err)
			}
		})
		t.Run("an agreeing cold witness makes the build reproducible and is named", func(t *testing.T) {
			if err := finish(t, f, coldAgent, coldJob, "firmware"); err != nil {
				t.Fatal(err)
			}
			b, err := f.svc.Build(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if b.State != verdict.Reproducible || b.Verdict.ColdJob != coldJob.ID {
				t.Fatalf("verdict %+v, want reproducible with cold witness %s", b.Verdict, coldJob.ID)
			}
			for _, r := range b.Results {
				if r.Cold != (r.JobID == coldJob.ID) {
					t.Fatalf("result %s cold = %v", r.JobID, r.Cold)
				}
			}
		})
	})
}

func TestAResultOfABuilderNoLongerBoundToItsOperatorCountsForNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 2})
		ctx := context.Background()
		id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
		if err != nil {
			t.Fatal(err)
		}
		tokA := builderToken(t, f.auth, "a", "alice")
		a := registerClaiming(t, f, tokA, "a", "alice")
		b := register(t, f, "b", "bob", "amd64", busybox)
		ja, jb := next(t, f, a), next(t, f, b)
		if ja == nil || jb == nil {
			t.Fatal("the two operators did not both get a job")
		}
		// An admin moves a's token to bob while its job runs: the job was
		// leased for alice, so its result counts for no one.
		if _, err := f.auth.BindOperator(ctx, tokA, "bob"); err != nil {
			t.Fatal(err)
		}
		for _, fin := range []struct {
			a agentID
			j *builder.Job
		}{{a, ja}, {b, jb}} {
			if err := finish(t, f, fin.a, fin.j, "firmware"); err != nil {
				t.Fatal(err)
			}
		}
		bd, err := f.svc.Build(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// Once a's result could not count, bob alone could never reach two
		// operators: the build is decided failed at once.
		if bd.State != verdict.Failed {
			t.Fatalf("verdict %+v: want failed, the moved builder's result counting for nothing", bd.Verdict)
		}
		for _, r := range bd.Results {
			if r.JobID == ja.ID && r.Operator != "" {
				t.Fatalf("the moved builder's result counts for %q", r.Operator)
			}
		}
	})
}

func TestResultsRecordedAtTheSameMomentStillDecideTheBuild(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 2})
		ctx := context.Background()
		a := register(t, f, "a", "alice", "amd64", busybox)
		b := register(t, f, "b", "bob", "amd64", busybox)
		for i := range 5 {
			id, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")})
			if err != nil {
				t.Fatal(err)
			}
			ja, jb := next(t, f, a), next(t, f, b)
			if ja == nil || jb == nil {
				t.Fatalf("round %d: jobs %v %v", i, ja, jb)
			}
			errc := make(chan error, 2)
			go func() { errc <- finish(t, f, a, ja, "firmware") }()
			go func() { errc <- finish(t, f, b, jb, "firmware") }()
			for range 2 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			if v, err := f.svc.Verdict(ctx, id); err != nil || v.State != verdict.Reproducible {
				t.Fatalf("round %d: verdict %+v, %v; want reproducible", i, v, err)
			}
		}
	})
}
