package s3store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestInitMakesABucketWithObjectLockOnce(t *testing.T) {
	srv := testenv.MinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := srv.Config(fmt.Sprintf("init-%d", time.Now().UnixNano()))

	t.Run("a missing bucket is created with object lock", func(t *testing.T) {
		b, err := s3store.Init(ctx, cfg)
		if err != nil || !b.Created || !b.ObjectLock {
			t.Fatalf("init = %+v, %v", b, err)
		}
		if _, err := s3store.New(ctx, cfg); err != nil {
			t.Fatalf("a server cannot open the bucket: %v", err)
		}
	})
	t.Run("running it again changes nothing", func(t *testing.T) {
		b, err := s3store.Init(ctx, cfg)
		if err != nil || b.Created || !b.ObjectLock {
			t.Fatalf("init again = %+v, %v", b, err)
		}
	})
	t.Run("an existing bucket without object lock is refused", func(t *testing.T) {
		b, err := s3store.Init(ctx, srv.Config(srv.NewBucket(t, false)))
		if !errs.Is(err, errs.Conflict) || b.Created || b.ObjectLock {
			t.Fatalf("init = %+v, %v; want a Conflict", b, err)
		}
	})
}
