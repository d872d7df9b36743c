package coord_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes/inputkind"
)

// restrictedSet names the build-only escrow files, as the escrow would.
type restrictedSet map[blob.Digest]bool

func (r restrictedSet) BuildOnly(_ context.Context, d blob.Digest) (bool, error) { return r[d], nil }

// TestABuildOnlyInputReachesOnlyTheBuilderHoldingAJobThatDeclaresIt: by
// digest alone nobody gets a build-only file; through a job, only the
// lease holder, and only while the lease holds.
func TestABuildOnlyInputReachesOnlyTheBuilderHoldingAJobThatDeclaresIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		restricted := restrictedSet{}
		f := newFarm(t, d, coord.Options{Quorum: 1, Restricted: restricted})
		driver, err := f.store.Put(ctx, strings.NewReader("vendor driver, build-only"), "")
		if err != nil {
			t.Fatal(err)
		}
		undeclared, err := f.store.Put(ctx, strings.NewReader("another build-only file"), "")
		if err != nil {
			t.Fatal(err)
		}
		restricted[driver.Digest], restricted[undeclared.Digest] = true, true
		sp := spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")
		sp.Inputs = []builder.Input{{Digest: driver.Digest, Mount: "escrow/drivers/eth.c", Kind: inputkind.Escrow, BuildOnly: true}}
		if _, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: sp}); err != nil {
			t.Fatal(err)
		}
		holder := f.svc.Local(builderToken(t, f.auth, "holder", "op1"))
		other := f.svc.Local(builderToken(t, f.auth, "other", "op2"))
		for _, l := range []*coord.Local{holder, other} {
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			if _, err := l.Register(ctx, builder.Registration{Name: "b", PublicKey: keys.PublicKeyString(pub), Arch: "amd64", Toolchains: []builder.ToolchainInfo{busybox}}); err != nil {
				t.Fatal(err)
			}
		}
		job, err := holder.Next(ctx, 0)
		if err != nil || job == nil {
			t.Fatalf("next: %v, %v", job, err)
		}
		for _, tc := range []struct {
			name  string
			fetch func() (io.ReadCloser, error)
			want  string // the content, or "" for NotFound or Conflict
		}{
			{"the holder gets it through its job", func() (io.ReadCloser, error) { return holder.FetchInput(ctx, job.ID, driver.Digest) }, "vendor driver, build-only"},
			{"the holder cannot get it by digest alone", func() (io.ReadCloser, error) { return holder.Fetch(ctx, driver.Digest) }, ""},
			{"another builder cannot get it by digest", func() (io.ReadCloser, error) { return other.Fetch(ctx, driver.Digest) }, ""},
			{"another builder cannot get it through a job it does not hold", func() (io.ReadCloser, error) { return other.FetchInput(ctx, job.ID, driver.Digest) }, ""},
			{"the holder cannot get a build-only file its job does not declare", func() (io.ReadCloser, error) { return holder.FetchInput(ctx, job.ID, undeclared.Digest) }, ""},
			{"the source archive is still fetched by digest", func() (io.ReadCloser, error) { return other.Fetch(ctx, sp.Source) }, "source"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rc, err := tc.fetch()
				if tc.want == "" {
					if !errs.Is(err, errs.NotFound) && !errs.Is(err, errs.Conflict) {
						t.Fatalf("err = %v, want NotFound or Conflict", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if !strings.HasPrefix(string(b), tc.want) {
					t.Fatalf("read %q", b)
				}
			})
		}
		t.Run("once the job is given back, its former holder gets nothing", func(t *testing.T) {
			if err := holder.GiveBack(ctx, job.ID); err != nil {
				t.Fatal(err)
			}
			_, err := holder.FetchInput(ctx, job.ID, driver.Digest)
			if !errs.Is(err, errs.Conflict) {
				t.Fatalf("err = %v, want Conflict", err)
			}
		})
	})
}
