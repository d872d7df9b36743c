package coord_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestRegistrationChecksTheProtocolVersion(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1})
		ctx := context.Background()
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		for _, tc := range []struct {
			name     string
			protocol int
			ok       bool
		}{
			{"an agent that names no version speaks version 1", 0, true},
			{"an agent of this version registers", builder.ProtocolVersion, true},
			{"an agent of a newer version is refused", builder.ProtocolVersion + 1, false},
			{"an agent of a version below 1 is refused", -1, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l := f.svc.Local(builderToken(t, f.auth, "b", "op"))
				_, err := l.Register(ctx, builder.Registration{Protocol: tc.protocol, Name: "b", PublicKey: keys.PublicKeyString(pub), Arch: "amd64"})
				if tc.ok {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				want := "the builder speaks farm protocol " + strconv.Itoa(tc.protocol) + ", this coordinator speaks " + strconv.Itoa(builder.ProtocolVersion)
				if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, want an invalid error saying %q", err, want)
				}
			})
		}
	})
}

// unseekable hides a reader's Seek, the way an HTTP request body has none.
type unseekable struct{ io.Reader }

func TestUploadsAreCheckedOnceForEveryTransport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFarm(t, d, coord.Options{Quorum: 1, MaxUpload: 8})
		ctx := context.Background()
		if _, _, err := f.svc.CreateBuild(ctx, coord.NewBuild{Spec: spec(t, f.store, builder.ToolchainReq{Name: "busybox"}, "")}); err != nil {
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
		small := []byte("firmware")
		for _, tc := range []struct {
			name   string
			l      *coord.Local
			digest blob.Digest
			size   int64
			body   io.Reader
			want   errs.Kind // 0: stored
		}{
			{"a builder that does not hold the job may not upload to it", other, blob.FromBytes(small), 8, bytes.NewReader(small), errs.Conflict},
			{"a blob that says it is above the limit is refused before it is read", holder, blob.FromBytes([]byte("123456789")), 9, strings.NewReader("123456789"), errs.TooLarge},
			{"a blob of unknown size stops at the limit", holder, blob.FromBytes([]byte("123456789")), -1, unseekable{strings.NewReader("123456789")}, errs.TooLarge},
			{"a blob whose content is not its digest is refused", holder, blob.FromBytes([]byte("other")), 8, bytes.NewReader(small), errs.Invalid},
			{"a blob whose size is not what the upload said is refused", holder, blob.FromBytes(small), 7, bytes.NewReader(small), errs.Invalid},
			{"a blob of unknown size within the limit is stored", holder, blob.FromBytes(small), -1, unseekable{bytes.NewReader(small)}, 0},
			{"a blob at the limit is stored", holder, blob.FromBytes(small), 8, bytes.NewReader(small), 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.l.Upload(ctx, job.ID, tc.digest, tc.size, tc.body)
				if tc.want == 0 && err != nil || tc.want != 0 && !errs.Is(err, tc.want) {
					t.Fatalf("got %v, want kind %v", err, tc.want)
				}
				if tc.want == errs.Invalid {
					return // a blob is stored by its digest, before its size is known
				}
				_, serr := f.store.Stat(ctx, tc.digest)
				if stored := serr == nil; stored != (tc.want == 0) {
					t.Fatalf("stored: %v (%v)", stored, serr)
				}
			})
		}
	})
}
