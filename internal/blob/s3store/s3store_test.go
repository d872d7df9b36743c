package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/blobtest"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore opens a store on a fresh bucket of the shared MinIO.
func newStore(t testing.TB, lock bool, adjust ...func(*s3store.Config)) *s3store.Store {
	t.Helper()
	srv := testenv.MinIO(t)
	cfg := srv.Config(srv.NewBucket(t, lock))
	for _, a := range adjust {
		a(&cfg)
	}
	s, err := s3store.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("s3store.New: %v", err)
	}
	return s
}

// smallParts makes multipart uploads start at 5 MiB, the S3 minimum, so
// tests reach the temporary-key path with little data.
func smallParts(c *s3store.Config) { c.PartSize = 5 << 20 }

func corrupt(t *testing.T, st blob.Store, d blob.Digest) {
	t.Helper()
	ctx := t.Context()
	rc, err := st.Get(ctx, d, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := s3store.Overwrite(ctx, st.(*s3store.Store), d, data); err != nil {
		t.Fatalf("overwrite %s: %v", d, err)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t, false) }, blobtest.WithCorrupt(corrupt))
}

func TestConformanceOnALockedBucketWithAPrefix(t *testing.T) {
	t.Parallel()
	// An object-lock bucket is versioned: Delete must remove every version,
	// and a prefix keeps stores that share a bucket apart.
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return newStore(t, true, smallParts, func(c *s3store.Config) { c.Prefix = "blobs/" })
	}, blobtest.WithCorrupt(corrupt))
}

func TestConformanceWithASpool(t *testing.T) {
	t.Parallel()
	// Large Puts of unknown digest are spooled on disk, then sent to their
	// key, as serve configures the store.
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return newStore(t, false, smallParts, func(c *s3store.Config) { c.SpoolDir = t.TempDir() })
	}, blobtest.WithCorrupt(corrupt))
}

func TestFailedLargePutsLeaveNoObjectsAndNoUploads(t *testing.T) {
	t.Parallel()
	s := newStore(t, false, smallParts)
	ctx := t.Context()
	const size = 12 << 20 // three parts of 5 MiB
	wrong := blob.FromBytes([]byte("not this"))
	if _, err := s.Put(ctx, blobtest.NewData(size, 7), wrong); !errs.Is(err, errs.Invalid) {
		t.Fatalf("Put with the wrong digest: err = %v, want invalid", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	r := io.MultiReader(blobtest.NewData(7<<20, 8), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, errors.New("client went away")
	}))
	if _, err := s.Put(cctx, r, ""); err == nil {
		t.Fatal("Put from a reader that failed after the first part succeeded")
	}
	keys, err := s3store.Keys(ctx, s)
	if err != nil || len(keys) != 0 {
		t.Errorf("bucket holds %v (%v), want nothing", keys, err)
	}
	n, err := s3store.IncompleteUploads(ctx, s)
	if err != nil || n != 0 {
		t.Errorf("%d incomplete uploads (%v), want none", n, err)
	}
}

func TestALargePutWithItsDigestGoesStraightToItsKey(t *testing.T) {
	t.Parallel()
	s := newStore(t, false, smallParts)
	ctx := t.Context()
	const size = 23<<20 + 12345 // five parts of 5 MiB, more than PutParallel at once
	want := blobtest.DigestOf(t, blobtest.NewData(size, 11))
	info, err := s.Put(ctx, blobtest.NewData(size, 11), want)
	if err != nil || info.Digest != want || info.Size != size {
		t.Fatalf("Put = %+v, %v; want %s, %d bytes", info, err, want, size)
	}
	keys, err := s3store.Keys(ctx, s)
	if err != nil || len(keys) != 1 || !strings.HasSuffix(keys[0], want.Hex()) {
		t.Fatalf("bucket holds %v (%v); want only the blob's own key, no temporary copy", keys, err)
	}
	if got := blobtest.DigestOf(t, mustGet(t, s, want)); got != want {
		t.Fatalf("stored content hashes to %s; the parts were put together out of order", got)
	}
}

func TestASpooledPutGoesStraightToItsKeyAndLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	spool := t.TempDir()
	if err := os.WriteFile(filepath.Join(spool, "put-left-by-a-crash"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, false, smallParts, func(c *s3store.Config) { c.SpoolDir = spool })
	ctx := t.Context()
	const size = 17<<20 + 3 // four parts of 5 MiB
	want := blobtest.DigestOf(t, blobtest.NewData(size, 12))
	info, err := s.Put(ctx, blobtest.NewData(size, 12), "")
	if err != nil || info.Digest != want || info.Size != size {
		t.Fatalf("Put = %+v, %v; want %s, %d bytes", info, err, want, size)
	}
	keys, err := s3store.Keys(ctx, s)
	if err != nil || len(keys) != 1 || !strings.HasSuffix(keys[0], want.Hex()) {
		t.Fatalf("bucket holds %v (%v); want only the blob's own key", keys, err)
	}
	if got := blobtest.DigestOf(t, mustGet(t, s, want)); got != want {
		t.Fatalf("stored content hashes to %s", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	r := io.MultiReader(blobtest.NewData(7<<20, 8), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, errors.New("client went away")
	}))
	if _, err := s.Put(cctx, r, ""); err == nil {
		t.Fatal("a spooled Put from a reader that failed succeeded")
	}
	left, err := os.ReadDir(spool)
	if err != nil || len(left) != 0 {
		t.Fatalf("spool holds %v (%v); want nothing: a crash's leftover removed at start, each Put's file when it ends", left, err)
	}
	if keys, _ := s3store.Keys(ctx, s); len(keys) != 1 {
		t.Fatalf("bucket holds %v after the failed Put", keys)
	}
}

func TestASpoolThatGivesBackOtherBytesStoresNothing(t *testing.T) {
	t.Parallel()
	spool := t.TempDir()
	s := newStore(t, false, smallParts, func(c *s3store.Config) { c.SpoolDir = spool })
	// The reader's end damages the spooled file's first bytes after they
	// were written and checked on the way in, as a bad disk would.
	r := io.MultiReader(blobtest.NewData(11<<20, 5), readerFunc(func([]byte) (int, error) {
		left, err := filepath.Glob(filepath.Join(spool, "*"))
		if err != nil || len(left) != 1 {
			t.Errorf("spool holds %v (%v); want the one file being spooled", left, err)
			return 0, io.EOF
		}
		f, err := os.OpenFile(left[0], os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt([]byte("rot"), 0)
			f.Close()
		}
		if err != nil {
			t.Error(err)
		}
		return 0, io.EOF
	}))
	info, err := s.Put(t.Context(), r, "")
	if !errs.Is(err, errs.Internal) {
		t.Fatalf("Put = %+v, %v; want an Internal error", info, err)
	}
	if keys, err := s3store.Keys(t.Context(), s); err != nil || len(keys) != 0 {
		t.Fatalf("bucket holds %v (%v); want nothing", keys, err)
	}
}

func mustGet(t *testing.T, s blob.Store, d blob.Digest) io.Reader {
	t.Helper()
	rc, err := s.Get(t.Context(), d, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestPutOfAStoredDigestDoesNotReadAgain(t *testing.T) {
	t.Parallel()
	s := newStore(t, false)
	data := []byte("already here")
	info, err := s.Put(t.Context(), bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	unreadable := readerFunc(func([]byte) (int, error) { return 0, errors.New("read") })
	got, err := s.Put(t.Context(), unreadable, info.Digest)
	if err != nil || got != info {
		t.Fatalf("second Put = %+v, %v; want %+v without reading", got, err, info)
	}
}

// publicAtLocalhost makes clients reach the store as localhost:PORT while the
// store itself talks to 127.0.0.1:PORT: two names for one MinIO, like
// minio:9000 inside compose and blobs.example.org outside.
func publicAtLocalhost(c *s3store.Config) {
	_, port, _ := strings.Cut(c.Endpoint, ":")
	c.PublicURL = "http://localhost:" + port
}

func TestPresignedURLServesTheBlobUnderItsFilename(t *testing.T) {
	t.Parallel()
	s := newStore(t, false, publicAtLocalhost)
	data := []byte("downloaded straight from the bucket")
	info, err := s.Put(t.Context(), bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(t.Context(), info.Digest, time.Minute, "firmware v1.2.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "http://localhost:") {
		t.Fatalf("presigned URL %s is not on the public URL", u)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET presigned URL: %s %q, want 200 %q", resp.Status, body, data)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="firmware v1.2.bin"` {
		t.Errorf("Content-Disposition = %q", cd)
	}
	tampered := strings.Replace(u, "X-Amz-Expires=60", "X-Amz-Expires=6000", 1)
	if tampered == u {
		t.Fatalf("URL %s has no X-Amz-Expires=60", u)
	}
	resp2, err := http.Get(tampered)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusForbidden {
		t.Errorf("GET tampered URL: %s, want 403", resp2.Status)
	}
}

func TestAStoreWithoutAPublicURLHandsOutNoPresignedURL(t *testing.T) {
	s := newStore(t, false)
	info, err := s.Put(t.Context(), bytes.NewReader([]byte("streamed by the server")), "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(t.Context(), info.Digest, time.Minute, "fw.bin")
	if err != nil || u != "" {
		t.Fatalf("PresignGet = %q, %v; want no URL, so the server streams the bytes", u, err)
	}
}

func TestAPublicURLTheServerCannotReachStillSigns(t *testing.T) {
	// Signing needs no request to the public address: a name only clients
	// resolve must not stop the server from starting or presigning.
	s := newStore(t, false, func(c *s3store.Config) { c.PublicURL = "https://blobs.invalid" })
	info, err := s.Put(t.Context(), bytes.NewReader([]byte("x")), "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(t.Context(), info.Digest, time.Minute, "")
	if err != nil || !strings.HasPrefix(u, "https://blobs.invalid/") || !strings.Contains(u, "X-Amz-Signature=") {
		t.Fatalf("PresignGet = %q, %v; want a signed URL on https://blobs.invalid", u, err)
	}
}

func TestRetainedBlobsCannotBeDeleted(t *testing.T) {
	t.Parallel()
	s := newStore(t, true)
	ctx := t.Context()
	info, err := s.Put(ctx, bytes.NewReader([]byte("keep for a year")), "")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := s.Retain(ctx, info.Digest, until); err != nil {
		t.Fatalf("Retain: %v", err)
	}
	mode, got, err := s3store.RetentionOf(ctx, s, info.Digest)
	if err != nil || mode != "GOVERNANCE" || !got.Equal(until) {
		t.Fatalf("retention = %s until %s (%v), want GOVERNANCE until %s", mode, got, err, until)
	}
	if err := s.Delete(ctx, info.Digest); !errs.Is(err, errs.Forbidden) {
		t.Fatalf("Delete of a retained blob: err = %v, want forbidden", err)
	}
	if _, err := s.Stat(ctx, info.Digest); err != nil {
		t.Fatalf("Stat after refused delete: %v", err)
	}
	if err := s.Retain(ctx, blob.FromBytes([]byte("absent")), until); !errs.Is(err, errs.NotFound) {
		t.Errorf("Retain of a missing blob: err = %v, want not found", err)
	}
}

func TestRetainFailsOnABucketWithoutObjectLock(t *testing.T) {
	t.Parallel()
	s := newStore(t, false)
	info, err := s.Put(t.Context(), bytes.NewReader([]byte("x")), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Retain(t.Context(), info.Digest, time.Now().Add(time.Hour)); err == nil {
		t.Fatal("Retain on a bucket without object lock succeeded")
	}
}

func TestConfiguredRetentionLocksEveryPut(t *testing.T) {
	t.Parallel()
	s := newStore(t, true, smallParts, func(c *s3store.Config) { c.Retention = 48 * time.Hour })
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s3store.SetNow(s, func() time.Time { return now })
	ctx := t.Context()
	for _, tc := range []struct {
		size   int64
		digest bool
	}{
		{1000, false},    // one request
		{6 << 20, false}, // multipart to a temporary key, then copied
		{7 << 20, true},  // multipart straight to its key
	} {
		size, want := tc.size, blob.Digest("")
		if tc.digest {
			want = blobtest.DigestOf(t, blobtest.NewData(size, uint64(size)))
		}
		info, err := s.Put(ctx, blobtest.NewData(size, uint64(size)), want)
		if err != nil {
			t.Fatalf("Put %d bytes: %v", size, err)
		}
		mode, until, err := s3store.RetentionOf(ctx, s, info.Digest)
		if err != nil || mode != "GOVERNANCE" || !until.Equal(now.Add(48*time.Hour)) {
			t.Errorf("%d bytes: retention %s until %s (%v), want GOVERNANCE until %s", size, mode, until, err, now.Add(48*time.Hour))
		}
		if err := s.Delete(ctx, info.Digest); !errs.Is(err, errs.Forbidden) {
			t.Errorf("%d bytes: Delete: err = %v, want forbidden", size, err)
		}
	}
}

func TestNewRequiresAnExistingBucket(t *testing.T) {
	t.Parallel()
	srv := testenv.MinIO(t)
	_, err := s3store.New(t.Context(), srv.Config("no-such-bucket"))
	if !errs.Is(err, errs.NotFound) || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Fatalf("New on a missing bucket: err = %v, want not found naming the bucket", err)
	}
}

func TestAStoppedServerIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := testenv.StartMinIO(t)
	s, err := s3store.New(t.Context(), srv.Config(srv.NewBucket(t, false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	d := blob.FromBytes([]byte("x"))
	checks := map[string]error{
		"Ping": s.Ping(ctx),
		"Stat": func() error { _, err := s.Stat(ctx, d); return err }(),
		"Put":  func() error { _, err := s.Put(ctx, bytes.NewReader([]byte("x")), ""); return err }(),
	}
	for op, err := range checks {
		if !errs.Is(err, errs.Unavailable) {
			t.Errorf("%s on a stopped server: err = %v (kind %s), want unavailable", op, err, errs.KindOf(err))
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
	t.Setenv("AWS_SESSION_TOKEN", "TOKEN")
	tests := []struct {
		name string
		raw  string
		want s3store.Config
		bad  bool
	}{
		{
			name: "a full URL sets every field and takes credentials from the environment",
			raw:  "s3://blobs?endpoint=127.0.0.1:9000&secure=false&region=eu-west-1&retention=720h&mode=compliance&prefix=prod",
			want: s3store.Config{Endpoint: "127.0.0.1:9000", Bucket: "blobs", Region: "eu-west-1",
				AccessKey: "AKID", SecretKey: "SECRET", SessionToken: "TOKEN",
				Retention: 720 * time.Hour, RetentionMode: "COMPLIANCE", Prefix: "prod"},
		},
		{
			name: "a public URL says where clients reach the bucket",
			raw:  "s3://blobs?endpoint=minio:9000&secure=false&public_url=https://blobs.example.org",
			want: s3store.Config{Endpoint: "minio:9000", Bucket: "blobs", PublicURL: "https://blobs.example.org",
				AccessKey: "AKID", SecretKey: "SECRET", SessionToken: "TOKEN"},
		},
		{
			name: "a bare bucket means AWS over HTTPS",
			raw:  "s3://blobs",
			want: s3store.Config{Endpoint: "s3.amazonaws.com", Bucket: "blobs", Secure: true,
				AccessKey: "AKID", SecretKey: "SECRET", SessionToken: "TOKEN"},
		},
		{name: "another scheme is refused", raw: "http://blobs?endpoint=x:1", bad: true},
		{name: "a URL without a bucket is refused", raw: "s3://?endpoint=x:1", bad: true},
		{name: "credentials in the URL are refused", raw: "s3://key:secret@blobs", bad: true},
		{name: "a path after the bucket is refused", raw: "s3://blobs/sub", bad: true},
		{name: "a secure flag that is not a boolean is refused", raw: "s3://blobs?secure=maybe", bad: true},
		{name: "a retention that is not a duration is refused", raw: "s3://blobs?retention=30d", bad: true},
		{name: "an unknown retention mode is refused", raw: "s3://blobs?mode=forever", bad: true},
		{name: "an unknown parameter is refused", raw: "s3://blobs?endpont=x:1", bad: true},
		{name: "a part size under 5 MiB is refused", raw: "s3://blobs?part_size=1024", bad: true},
		{name: "an endpoint with a scheme is refused", raw: "s3://blobs?endpoint=http://x:1", bad: true},
		{name: "a public URL with a path is refused", raw: "s3://blobs?public_url=https://x/blobs", bad: true},
		{name: "a public URL without a scheme is refused", raw: "s3://blobs?public_url=x:9000", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s3store.ParseURL(tt.raw)
			if tt.bad {
				if !errs.Is(err, errs.Invalid) {
					t.Fatalf("ParseURL(%q) = %+v, %v; want an invalid error", tt.raw, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseURL(%q) =\n %+v, %v\nwant %+v", tt.raw, got, err, tt.want)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	f.Add("s3://blobs?endpoint=127.0.0.1:9000&secure=false&retention=1h")
	f.Add("s3://a?part_size=6000000&mode=governance")
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := s3store.ParseURL(raw)
		if err == nil && (cfg.Bucket == "" || cfg.Endpoint == "") {
			t.Fatalf("ParseURL(%q) accepted %+v", raw, cfg)
		}
	})
}

// BenchmarkPut reports, beside the store's Put (with a spool directory, as
// serve configures it) and openssl, a plain minio-go PutObject of the same
// number of generated bytes into the same MinIO: what the store could
// reach if it did nothing but upload.
func BenchmarkPut(b *testing.B) {
	const size = 256 << 20
	st := newStore(b, false, func(c *s3store.Config) { c.SpoolDir = b.TempDir() })
	blobtest.BenchmarkPut(b, st, size)
	took, err := st.UploadCeiling(context.Background(), blobtest.NewData(size, 7), size)
	if err != nil {
		b.Fatalf("plain PutObject: %v", err)
	}
	b.ReportMetric(size/1e6/took.Seconds(), "minio-put-MB/s")
}
