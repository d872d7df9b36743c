package s3store

import (
	"bytes"
	"context"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/afterlife-oss/afterlife/internal/blob"
)

// Test-only access to the bucket behind a Store, for damaging blobs and
// inspecting what a Put left behind.

// SetNow replaces the store's clock.
func SetNow(s *Store, now func() time.Time) { s.now = now }

// Overwrite replaces d's stored bytes with data behind the store's back.
func Overwrite(ctx context.Context, s *Store, d blob.Digest, data []byte) error {
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(d), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	return err
}

// Keys lists every object key in the bucket, temporary ones included.
func Keys(ctx context.Context, s *Store) ([]string, error) {
	var keys []string
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		keys = append(keys, obj.Key)
	}
	return keys, nil
}

// IncompleteUploads counts multipart uploads that were started and never
// completed or aborted.
func IncompleteUploads(ctx context.Context, s *Store) (int, error) {
	n := 0
	for u := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, "", true) {
		if u.Err != nil {
			return 0, u.Err
		}
		n++
	}
	return n, nil
}

// RetentionOf reads d's object-lock retention.
func RetentionOf(ctx context.Context, s *Store, d blob.Digest) (string, time.Time, error) {
	mode, until, err := s.client.GetObjectRetention(ctx, s.cfg.Bucket, s.key(d), "")
	if err != nil {
		return "", time.Time{}, err
	}
	var m string
	var u time.Time
	if mode != nil {
		m = mode.String()
	}
	if until != nil {
		u = *until
	}
	return m, u, nil
}
