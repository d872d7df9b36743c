// Package s3store keeps blobs in an S3-compatible bucket (MinIO, AWS S3,
// Ceph). It is the only package that imports minio-go, and no minio-go type
// leaves it: callers see blob.Store, blob.Presigner and blob.Retainer.
//
// Blobs live at PREFIX/sha256/<64 hex>. Small blobs (up to one part) are
// hashed in memory and uploaded straight to their key; larger ones are
// streamed as a multipart upload to PREFIX/tmp/<random>, hashed on the way,
// and copied server-side to their key only once their digest checks out, so
// a half-written or unverified blob is never visible under its digest.
package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// DefaultPartSize is the multipart part size, and the largest blob that is
// uploaded in one request. A Put holds at most PutParallel+2 parts in
// memory (the first part read ahead, the one being read, those in flight),
// whatever the blob's size.
const DefaultPartSize = 16 << 20

// Config says where the bucket is and how to reach it.
type Config struct {
	Endpoint  string // host:port
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	// SessionToken goes with temporary credentials.
	SessionToken string
	Secure       bool // HTTPS
	// Retention, when > 0, locks every blob Put stores against deletion
	// for that long (the bucket must have object lock enabled).
	Retention time.Duration
	// RetentionMode is "GOVERNANCE" (default) or "COMPLIANCE".
	RetentionMode string
	// Prefix is prepended to every key, so several stores can share a bucket.
	Prefix string
	// PartSize is the multipart part size (default DefaultPartSize,
	// at least 5 MiB).
	PartSize int64
	// SpoolDir, when set, is a local directory where a Put larger than one
	// part whose digest is not known in advance (the escrow's ciphertext)
	// is written while it is hashed, then uploaded straight to its digest's
	// key: S3 cannot rename, so without it such a blob is uploaded to a
	// temporary key and copied into place server-side, which has the store
	// write every byte twice. It needs room for the largest blobs being
	// put at once. Files left in it by a crash are removed by New.
	SpoolDir string
	// PublicURL is where clients (devices, browsers, builders) reach the
	// same S3 service, as scheme://host[:port], when Endpoint is an address
	// only the servers can reach (minio:9000 inside compose). Presigned
	// URLs are signed for it, since SigV4 signs the Host. Empty means no
	// address is known to be reachable by clients: the store hands out no
	// presigned URLs and servers stream the bytes themselves.
	PublicURL string
}

// ParseURL reads s3://BUCKET?endpoint=HOST:PORT&secure=false&region=R&
// retention=720h&mode=governance&prefix=p&public_url=https://HOST[:PORT].
// Credentials come from the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
// never from the URL, so it can be logged.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, errs.Wrap(errs.Invalid, err, "s3store: parse %q", raw)
	}
	if u.Scheme != "s3" {
		return Config{}, errs.E(errs.Invalid, "s3store: %q: want an s3:// URL", raw)
	}
	if u.User != nil {
		return Config{}, errs.E(errs.Invalid, "s3store: %q: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", u.Redacted())
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") {
		return Config{}, errs.E(errs.Invalid, "s3store: %q: want s3://BUCKET?endpoint=HOST:PORT", raw)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "secure", "region", "retention", "mode", "prefix", "part_size", "public_url":
		default:
			return Config{}, errs.E(errs.Invalid, "s3store: %q: unknown parameter %q", raw, k)
		}
	}
	cfg := Config{
		Bucket:        u.Host,
		Endpoint:      q.Get("endpoint"),
		Region:        q.Get("region"),
		Prefix:        q.Get("prefix"),
		PublicURL:     q.Get("public_url"),
		RetentionMode: strings.ToUpper(q.Get("mode")),
		Secure:        true,
		AccessKey:     os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:     os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken:  os.Getenv("AWS_SESSION_TOKEN"),
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "s3.amazonaws.com"
	}
	if s := q.Get("secure"); s != "" {
		if cfg.Secure, err = strconv.ParseBool(s); err != nil {
			return Config{}, errs.E(errs.Invalid, "s3store: %q: secure=%q is not a boolean", raw, s)
		}
	}
	if s := q.Get("retention"); s != "" {
		if cfg.Retention, err = time.ParseDuration(s); err != nil || cfg.Retention < 0 {
			return Config{}, errs.E(errs.Invalid, "s3store: %q: retention=%q is not a duration like 720h", raw, s)
		}
	}
	if s := q.Get("part_size"); s != "" {
		if cfg.PartSize, err = strconv.ParseInt(s, 10, 64); err != nil {
			return Config{}, errs.E(errs.Invalid, "s3store: %q: part_size=%q is not a number of bytes", raw, s)
		}
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) validate() error {
	switch {
	case c.Bucket == "":
		return errs.E(errs.Invalid, "s3store: no bucket")
	case c.Endpoint == "" || strings.Contains(c.Endpoint, "/"):
		return errs.E(errs.Invalid, "s3store: endpoint %q: want HOST:PORT", c.Endpoint)
	case c.RetentionMode != "" && c.RetentionMode != "GOVERNANCE" && c.RetentionMode != "COMPLIANCE":
		return errs.E(errs.Invalid, "s3store: retention mode %q: want GOVERNANCE or COMPLIANCE", c.RetentionMode)
	case c.PartSize != 0 && (c.PartSize < 5<<20 || c.PartSize > 5<<30):
		return errs.E(errs.Invalid, "s3store: part size %d: want 5 MiB to 5 GiB", c.PartSize)
	}
	if c.PublicURL != "" {
		if _, _, err := c.publicEndpoint(); err != nil {
			return err
		}
	}
	return nil
}

// publicEndpoint splits PublicURL into the host:port and the HTTPS flag a
// client for it needs.
func (c *Config) publicEndpoint() (host string, secure bool, err error) {
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", false, errs.E(errs.Invalid, "s3store: public URL %q: want http(s)://HOST[:PORT] and nothing else", c.PublicURL)
	}
	return u.Host, u.Scheme == "https", nil
}

func (c *Config) mode() minio.RetentionMode {
	if c.RetentionMode == "COMPLIANCE" {
		return minio.Compliance
	}
	return minio.Governance
}

// Store is a blob.Store on an S3 bucket.
type Store struct {
	cfg    Config
	client *minio.Client
	// public signs presigned URLs for cfg.PublicURL; nil when none is set.
	public *minio.Client
	prefix string
	now    func() time.Time
}

var (
	_ blob.Store     = (*Store)(nil)
	_ blob.Presigner = (*Store)(nil)
	_ blob.Retainer  = (*Store)(nil)
)

func newClient(cfg Config) (*minio.Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure: cfg.Secure,
		Region: cfg.Region,
		// A few quick retries ride out a blip; a longer outage surfaces
		// as Unavailable instead of stalling the caller for many seconds.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "s3store: endpoint %s", cfg.Endpoint)
	}
	return c, nil
}

// New connects to cfg's bucket, which must exist (see EnsureBucket).
func New(ctx context.Context, cfg Config) (*Store, error) {
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	if cfg.SpoolDir != "" {
		if err := clearSpool(cfg.SpoolDir); err != nil {
			return nil, err
		}
	}
	s := &Store{cfg: cfg, client: client, prefix: prefix, now: time.Now}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, mapErr(err, "s3store: check bucket %s at %s", cfg.Bucket, cfg.Endpoint)
	}
	if !ok {
		return nil, errs.E(errs.NotFound, "s3store: bucket %s does not exist at %s; create it (with object lock if blobs are to be retained)", cfg.Bucket, cfg.Endpoint)
	}
	if cfg.PublicURL != "" {
		if s.public, err = newPublicClient(ctx, cfg, client); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// newPublicClient makes the client that signs URLs for cfg.PublicURL. It
// never sends a request: the servers may not be able to reach the public
// address at all (a name only outside DNS resolves), so the bucket's region,
// which signing needs, is asked of the internal endpoint once, here.
func newPublicClient(ctx context.Context, cfg Config, internal *minio.Client) (*minio.Client, error) {
	host, secure, err := cfg.publicEndpoint()
	if err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		if region, err = internal.GetBucketLocation(ctx, cfg.Bucket); err != nil {
			return nil, mapErr(err, "s3store: region of bucket %s", cfg.Bucket)
		}
	}
	pub := cfg
	pub.Endpoint, pub.Secure, pub.Region = host, secure, region
	return newClient(pub)
}

// EnsureBucket creates cfg's bucket when it is missing, with object lock
// (and so versioning) when lock is true. An existing bucket is left as it is.
func EnsureBucket(ctx context.Context, cfg Config, lock bool) error {
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return mapErr(err, "s3store: check bucket %s", cfg.Bucket)
	}
	if ok {
		return nil
	}
	err = client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: lock})
	if code := minio.ToErrorResponse(err).Code; code == minio.BucketAlreadyOwnedByYou {
		return nil
	}
	return mapErr(err, "s3store: create bucket %s", cfg.Bucket)
}

// Bucket is what Init found or made.
type Bucket struct {
	Name       string
	Created    bool // Init made it; false when it was there already
	ObjectLock bool // object lock (and so versioning) is enabled
}

// Init makes cfg's bucket ready for a server: it creates it with object
// lock when missing and checks that an existing one has object lock, which
// retention of sealed blobs needs and which S3 lets a bucket have only
// from its creation. Running it again changes nothing.
func Init(ctx context.Context, cfg Config) (Bucket, error) {
	b := Bucket{Name: cfg.Bucket}
	client, err := newClient(cfg)
	if err != nil {
		return b, err
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return b, mapErr(err, "s3store: check bucket %s at %s", cfg.Bucket, cfg.Endpoint)
	}
	if !ok {
		err = client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: true})
		switch code := minio.ToErrorResponse(err).Code; {
		case err == nil:
			b.Created = true
		case code == minio.BucketAlreadyOwnedByYou: // another init won
		default:
			return b, mapErr(err, "s3store: create bucket %s", cfg.Bucket)
		}
	}
	lock, _, _, _, err := client.GetObjectLockConfig(ctx, cfg.Bucket)
	if err != nil && minio.ToErrorResponse(err).Code != "ObjectLockConfigurationNotFoundError" {
		return b, mapErr(err, "s3store: object lock of bucket %s", cfg.Bucket)
	}
	b.ObjectLock = lock == "Enabled"
	if !b.ObjectLock {
		return b, errs.E(errs.Conflict, "s3store: bucket %s exists without object lock, which only a new bucket gets: create a new bucket (afterlife admin blobs init) and copy the blobs into it", cfg.Bucket)
	}
	return b, nil
}

func (s *Store) key(d blob.Digest) string { return s.prefix + "sha256/" + d.Hex() }

func checkDigest(op string, d blob.Digest) error {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return fmt.Errorf("s3store: %s: %w", op, err)
	}
	return nil
}

// Put stores r. Content of up to one part is hashed before it is sent and
// goes straight to its key; anything larger streams to a temporary key and
// is copied into place once its digest is known and checked.
func (s *Store) Put(ctx context.Context, r io.Reader, want blob.Digest) (blob.Info, error) {
	if want != "" {
		if err := checkDigest("put", want); err != nil {
			return blob.Info{}, err
		}
		// Content-addressed: if want is stored, uploading it again is waste.
		if info, err := s.Stat(ctx, want); err == nil {
			return info, nil
		} else if !errs.Is(err, errs.NotFound) {
			return blob.Info{}, err
		}
	}
	head, err := io.ReadAll(io.LimitReader(r, s.cfg.PartSize+1))
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3store: put: read: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, fmt.Errorf("s3store: put: %w", err)
	}
	if int64(len(head)) <= s.cfg.PartSize {
		return s.putSmall(ctx, head, want)
	}
	return s.putLarge(ctx, io.MultiReader(bytes.NewReader(head), r), want, nil)
}

func (s *Store) putSmall(ctx context.Context, data []byte, want blob.Digest) (blob.Info, error) {
	got := blob.FromBytes(data)
	if want != "" && got != want {
		return blob.Info{}, errs.E(errs.Invalid, "s3store: put: content hashes to %s, want %s", got, want)
	}
	info := blob.Info{Digest: got, Size: int64(len(data))}
	if want == "" {
		if _, err := s.Stat(ctx, got); err == nil {
			return info, nil
		}
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if s.cfg.Retention > 0 {
		opts.Mode = s.cfg.mode()
		opts.RetainUntilDate = s.now().Add(s.cfg.Retention)
	}
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(got), bytes.NewReader(data), int64(len(data)), opts); err != nil {
		return blob.Info{}, mapErr(err, "s3store: put %s", got)
	}
	return info, nil
}

// putLarge sends r as a multipart upload of PartSize parts, PutParallel of
// them in flight at once, hashing as it reads. With want given, the upload
// goes straight to want's key and is completed only once the content has
// hashed to it: an uncompleted multipart upload is never visible, and one
// with the wrong content is aborted. Otherwise it goes to a temporary key
// and is copied into place (server-side) once its digest is known. From
// the spool (check not nil), want is the digest the spool learnt, and the
// upload completes only once what it read has check's size and CRC-32C.
func (s *Store) putLarge(ctx context.Context, r io.Reader, want blob.Digest, check *spooled) (blob.Info, error) {
	if want == "" && s.cfg.SpoolDir != "" {
		return s.putSpooled(ctx, r)
	}
	key := s.prefix + "tmp/" + randomName()
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if want != "" {
		key = s.key(want)
		if s.cfg.Retention > 0 {
			opts.Mode = s.cfg.mode()
			opts.RetainUntilDate = s.now().Add(s.cfg.Retention)
		}
	}
	core := minio.Core{Client: s.client}
	uploadID, err := core.NewMultipartUpload(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		return blob.Info{}, mapErr(err, "s3store: put: start upload")
	}
	completed := false
	defer func() {
		if !completed {
			s.abortUpload(ctx, key, uploadID)
		}
	}()
	h := sha256.New()
	if check != nil {
		h = crc32.New(castagnoli)
	}
	parts, n, sum, err := s.uploadParts(ctx, core, key, uploadID, r, h)
	if err != nil {
		return blob.Info{}, err
	}
	var got blob.Digest
	switch {
	case check != nil && (n != check.size || !bytes.Equal(sum, check.crc)):
		return blob.Info{}, errs.E(errs.Internal, "s3store: put %s: the spool gave back other bytes than it was given (%d bytes, %d spooled)", want, n, check.size)
	case check != nil:
		got = want
	default:
		got = blob.Digest("sha256:" + hex.EncodeToString(sum))
	}
	info := blob.Info{Digest: got, Size: n}
	if want != "" && got != want {
		return blob.Info{}, errs.E(errs.Invalid, "s3store: put: content hashes to %s, want %s", got, want)
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, fmt.Errorf("s3store: put: %w", err)
	}
	up, err := core.CompleteMultipartUpload(ctx, s.cfg.Bucket, key, uploadID, parts, minio.PutObjectOptions{})
	if err != nil {
		return blob.Info{}, mapErr(err, "s3store: put: complete upload")
	}
	completed = true
	if want != "" {
		return info, nil
	}
	defer s.removeTemp(ctx, key, up.VersionID)
	if _, err := s.Stat(ctx, got); err == nil {
		return info, nil
	}
	dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: s.key(got)}
	if s.cfg.Retention > 0 {
		dst.Mode = s.cfg.mode()
		dst.RetainUntilDate = s.now().Add(s.cfg.Retention)
	}
	src := minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: key, VersionID: up.VersionID}
	// ComposeObject copies server-side in one request up to 5 GiB and by
	// multipart copy beyond.
	if _, err := s.client.ComposeObject(ctx, dst, src); err != nil {
		return blob.Info{}, mapErr(err, "s3store: put: copy %s into place", got)
	}
	return info, nil
}

// putSpooled writes r to a file in the spool directory while hashing it,
// then puts the file under the digest it learnt, straight to that key.
// The bytes read back from the spool are checked against a CRC-32C
// (Castagnoli) taken as they were spooled, so a bad spool disk cannot
// store wrong bytes; the content's sha256 was taken on the way in, and
// the scrub re-hashes what the store holds. A second sha256 of every
// byte would cost as much CPU as the first for the same protection
// against a disk's errors (docs/benchmarks.md, "Ingest: the disk half").
func (s *Store) putSpooled(ctx context.Context, r io.Reader) (blob.Info, error) {
	f, err := os.CreateTemp(s.cfg.SpoolDir, spoolPattern)
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3store: put: spool: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h, crc := sha256.New(), crc32.New(castagnoli)
	n, err := blob.CopyHashing(io.MultiWriter(f, crc), r, h)
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3store: put: spool: %w", err)
	}
	got := blob.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	if info, err := s.Stat(ctx, got); err == nil {
		return info, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return blob.Info{}, fmt.Errorf("s3store: put: spool: %w", err)
	}
	return s.putLarge(ctx, f, got, &spooled{size: n, crc: crc.Sum(nil)})
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spooled is what a spooled blob must read back as: its size and CRC-32C.
type spooled struct {
	size int64
	crc  []byte
}

const spoolPattern = "put-*"

// clearSpool makes dir and removes what a Put left in it when its process
// died: a replica's spool holds only its own uploads in flight.
func clearSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("s3store: spool %s: %w", dir, err)
	}
	left, err := filepath.Glob(filepath.Join(dir, spoolPattern))
	if err != nil {
		return fmt.Errorf("s3store: spool %s: %w", dir, err)
	}
	for _, f := range left {
		_ = os.Remove(f)
	}
	return nil
}

// PutParallel is how many parts of one Put are uploaded at once. With the
// part being read (and the first, read ahead to tell a small blob), a Put
// holds at most PutParallel+2 parts in memory, whatever the blob's size.
const PutParallel = 3

// uploadParts reads r in parts, hashes it in order into h, and uploads
// the parts on PutParallel goroutines. It returns the parts in order, the
// size and h's sum; on any error the caller aborts the upload.
func (s *Store) uploadParts(ctx context.Context, core minio.Core, key, uploadID string, r io.Reader, h hash.Hash) ([]minio.CompletePart, int64, []byte, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type part struct {
		num int
		buf []byte
	}
	free := make(chan []byte, PutParallel+1)
	for range PutParallel + 1 {
		free <- nil // allocated on first use: a small blob needs few
	}
	todo := make(chan part)
	var (
		mu    sync.Mutex
		parts []minio.CompletePart
		wg    sync.WaitGroup
	)
	for range PutParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range todo {
				// The payload is not signed chunk by chunk (minio-go does
				// that over plain HTTP only; over HTTPS it sends unsigned
				// payloads anyway): the content is hashed here and its
				// digest checked before the upload completes, and the
				// scrub re-hashes what the store holds.
				up, err := core.PutObjectPart(ctx, s.cfg.Bucket, key, uploadID, p.num, bytes.NewReader(p.buf), int64(len(p.buf)),
					minio.PutObjectPartOptions{DisableContentSha256: true})
				free <- p.buf[:cap(p.buf)]
				if err != nil {
					cancel(mapErr(err, "s3store: put: upload part %d", p.num))
					continue
				}
				mu.Lock()
				parts = append(parts, minio.CompletePart{PartNumber: p.num, ETag: up.ETag})
				mu.Unlock()
			}
		}()
	}
	var n int64
	var readErr error
	for num := 1; ctx.Err() == nil; num++ {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if buf == nil {
			buf = make([]byte, s.cfg.PartSize)
		}
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			select {
			case todo <- part{num: num, buf: buf[:k]}:
			case <-ctx.Done():
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("s3store: put: read: %w", err)
			break
		}
	}
	close(todo)
	wg.Wait()
	if readErr != nil {
		return nil, 0, nil, readErr
	}
	if err := context.Cause(ctx); err != nil {
		return nil, 0, nil, err
	}
	slices.SortFunc(parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	return parts, n, h.Sum(nil), nil
}

// abortUpload drops an unfinished multipart upload even when ctx is done.
func (s *Store) abortUpload(ctx context.Context, key, uploadID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// Best effort: an upload left behind is never visible; a bucket
	// lifecycle rule can sweep incomplete uploads.
	_ = minio.Core{Client: s.client}.AbortMultipartUpload(ctx, s.cfg.Bucket, key, uploadID)
}

// UploadCeiling uploads size bytes of r with one plain minio-go PutObject
// (the size given, minio-go's defaults) under a temporary key, removes the
// object, and returns how long the upload took: what storing the same bytes
// costs when nothing is hashed or checked. Benchmarks compare Put with it.
func (s *Store) UploadCeiling(ctx context.Context, r io.Reader, size int64) (time.Duration, error) {
	key := s.prefix + "tmp/ceiling-" + randomName()
	start := time.Now()
	up, err := s.client.PutObject(ctx, s.cfg.Bucket, key, r, size, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	took := time.Since(start)
	if err != nil {
		return 0, mapErr(err, "s3store: upload ceiling")
	}
	s.removeTemp(ctx, key, up.VersionID)
	return took, nil
}

// removeTemp deletes a temporary upload even when ctx is already done.
func (s *Store) removeTemp(ctx context.Context, key, versionID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// Best effort: a leftover is only ever under tmp/, which Walk never
	// lists; a bucket lifecycle rule on tmp/ can sweep such leftovers.
	_ = s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: versionID})
}

func randomName() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Get returns length bytes of d from offset (length < 0: to the end; a
// length past the end stops at the end). A missing blob fails here, not at
// the first Read.
func (s *Store) Get(ctx context.Context, d blob.Digest, offset, length int64) (io.ReadCloser, error) {
	if err := checkDigest("get", d); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, errs.E(errs.Invalid, "s3store: get %s: negative offset %d", d, offset)
	}
	info, err := s.Stat(ctx, d)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, errs.E(errs.Invalid, "s3store: get %s: offset %d is past the end (%d bytes)", d, offset, info.Size)
	}
	end := info.Size // exclusive
	if length >= 0 && offset+length < end {
		end = offset + length
	}
	if end == offset {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	var opts minio.GetObjectOptions
	if offset > 0 || end < info.Size {
		if err := opts.SetRange(offset, end-1); err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "s3store: get %s: range", d)
		}
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.key(d), opts)
	if err != nil {
		return nil, mapErr(err, "s3store: get %s", d)
	}
	// GetObject is lazy; Stat sends the request so errors show up now.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, mapErr(err, "s3store: get %s", d)
	}
	return obj, nil
}

// Stat tells d's size.
func (s *Store) Stat(ctx context.Context, d blob.Digest) (blob.Info, error) {
	if err := checkDigest("stat", d); err != nil {
		return blob.Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(d), minio.StatObjectOptions{})
	if err != nil {
		return blob.Info{}, mapErr(err, "s3store: stat %s", d)
	}
	return blob.Info{Digest: d, Size: oi.Size}, nil
}

// Delete removes every version of d, so that on a versioned (object-lock)
// bucket the bytes are really gone and not hidden behind a delete marker.
// A version still under retention makes Delete fail with Forbidden.
func (s *Store) Delete(ctx context.Context, d blob.Digest) error {
	if err := checkDigest("delete", d); err != nil {
		return err
	}
	key := s.key(d)
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if obj.Err != nil {
			return mapErr(obj.Err, "s3store: delete %s: list versions", d)
		}
		if obj.Key != key {
			continue
		}
		if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: obj.VersionID}); err != nil {
			return s.deleteErr(ctx, d, obj.VersionID, err)
		}
	}
	return nil
}

// deleteErr explains a failed delete: servers word a refusal because of
// object lock differently (MinIO answers 400 InvalidRequest), so rather than
// reading their text, ask whether the version is under retention.
func (s *Store) deleteErr(ctx context.Context, d blob.Digest, versionID string, err error) error {
	_, until, rerr := s.client.GetObjectRetention(ctx, s.cfg.Bucket, s.key(d), versionID)
	if rerr == nil && until != nil && until.After(s.now()) {
		return errs.Wrap(errs.Forbidden, err, "s3store: delete %s: retained until %s", d, until.UTC().Format(time.RFC3339))
	}
	return mapErr(err, "s3store: delete %s", d)
}

// Walk lists every blob under the store's prefix.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn returns early
	prefix := s.prefix + "sha256/"
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return mapErr(obj.Err, "s3store: walk")
		}
		d, err := blob.ParseDigest("sha256:" + strings.TrimPrefix(obj.Key, prefix))
		if err != nil {
			continue // not ours
		}
		if err := fn(blob.Info{Digest: d, Size: obj.Size}); err != nil {
			return err
		}
	}
	return nil
}

// Ping checks that the bucket answers.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return mapErr(err, "s3store: ping %s", s.cfg.Endpoint)
	}
	if !ok {
		return errs.E(errs.Unavailable, "s3store: ping: bucket %s is gone", s.cfg.Bucket)
	}
	return nil
}

// PresignGet returns a URL on the public URL, valid for ttl, from which d
// downloads directly, saved under filename when filename is not empty. It
// returns "" when the store has no public URL.
func (s *Store) PresignGet(ctx context.Context, d blob.Digest, ttl time.Duration, filename string) (string, error) {
	if err := checkDigest("presign", d); err != nil {
		return "", err
	}
	if s.public == nil {
		return "", nil
	}
	params := url.Values{}
	if filename != "" {
		cd := mime.FormatMediaType("attachment", map[string]string{"filename": filename})
		if cd == "" {
			return "", errs.E(errs.Invalid, "s3store: presign %s: bad filename %q", d, filename)
		}
		params.Set("response-content-disposition", cd)
	}
	u, err := s.public.PresignedGetObject(ctx, s.cfg.Bucket, s.key(d), ttl, params)
	if err != nil {
		return "", mapErr(err, "s3store: presign %s", d)
	}
	return u.String(), nil
}

// Retain locks d's current version against deletion until until, in the
// store's retention mode. Retention can be extended, not shortened.
func (s *Store) Retain(ctx context.Context, d blob.Digest, until time.Time) error {
	if err := checkDigest("retain", d); err != nil {
		return err
	}
	if _, err := s.Stat(ctx, d); err != nil {
		return err
	}
	mode := s.cfg.mode()
	until = until.UTC()
	err := s.client.PutObjectRetention(ctx, s.cfg.Bucket, s.key(d), minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	return mapErr(err, "s3store: retain %s until %s", d, until.Format(time.RFC3339))
}

// mapErr gives minio-go's errors afterlife's kinds; nil stays nil.
func mapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchKey || resp.Code == "NoSuchVersion":
		return errs.Wrap(errs.NotFound, err, format, args...)
	case resp.Code == minio.NoSuchBucket:
		return errs.Wrap(errs.Unavailable, err, format, args...)
	case resp.Code == "InvalidRange":
		return errs.Wrap(errs.Invalid, err, format, args...)
	case resp.Code == minio.AccessDenied || resp.StatusCode == http.StatusForbidden:
		return errs.Wrap(errs.Forbidden, err, format, args...)
	case resp.StatusCode == http.StatusNotFound:
		return errs.Wrap(errs.NotFound, err, format, args...)
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway ||
		resp.StatusCode == http.StatusGatewayTimeout || resp.StatusCode == http.StatusInternalServerError ||
		resp.Code == "SlowDown" || resp.Code == "XMinioServerNotInitialized":
		return errs.Wrap(errs.Unavailable, err, format, args...)
	case isConnErr(err):
		return errs.Wrap(errs.Unavailable, err, format, args...)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

func isConnErr(err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	var urlErr *url.Error
	return errors.As(err, &netErr) || errors.As(err, &opErr) || errors.As(err, &urlErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}
