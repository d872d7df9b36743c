// Package blob defines the content-addressed blob store that every part
// keeps bytes in. The interface speaks only context, io and plain types; the
// implementations live in subpackages (fsstore, s3store) and no SDK type
// leaks out of them. blobtest holds the one conformance suite all of them
// pass.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Digest names a blob by its content: "sha256:" followed by 64 lowercase hex
// digits.
type Digest string

// ParseDigest validates s and returns it as a Digest.
func ParseDigest(s string) (Digest, error) {
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 64 {
		return "", errs.E(errs.Invalid, "digest %q: want sha256:<64 hex digits>", s)
	}
	for _, c := range hexPart {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", errs.E(errs.Invalid, "digest %q: want lowercase hex", s)
		}
	}
	return Digest(s), nil
}

// Hex is the digest without its algorithm prefix.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), "sha256:") }

func (d Digest) String() string { return string(d) }

// FromBytes is the digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// Info describes a stored blob.
type Info struct {
	Digest Digest
	Size   int64
}

// Store keeps blobs by digest. Implementations are safe for concurrent use.
type Store interface {
	// Put streams r into the store, hashing while it writes. When want is
	// not empty and the content's digest differs, Put returns an Invalid
	// error and nothing stays. A blob never becomes visible half-written.
	// Putting content that is already stored succeeds.
	Put(ctx context.Context, r io.Reader, want Digest) (Info, error)
	// Get returns length bytes from offset (length < 0: to the end). A
	// missing blob is a NotFound error.
	Get(ctx context.Context, d Digest, offset, length int64) (io.ReadCloser, error)
	// Stat tells a blob's size.
	Stat(ctx context.Context, d Digest) (Info, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, d Digest) error
	// Walk calls fn for every stored blob, in no particular order.
	Walk(ctx context.Context, fn func(Info) error) error
	// Ping checks that the store is reachable, for readiness probes.
	Ping(ctx context.Context) error
}

// Presigner is implemented by stores that can hand out a short-lived URL
// from which a client fetches the blob directly. PresignGet returns "" when
// the store knows no address its clients can reach (an S3 endpoint only the
// servers see); the server then sends the bytes itself.
type Presigner interface {
	PresignGet(ctx context.Context, d Digest, ttl time.Duration, filename string) (string, error)
}

// Filer is implemented by stores whose blobs are plain files, so servers
// can send them with zero-copy (sendfile).
type Filer interface {
	Path(d Digest) string
}

// Retainer is implemented by stores that can lock a blob against deletion
// until a time (S3 object lock).
type Retainer interface {
	Retain(ctx context.Context, d Digest, until time.Time) error
}

// ReadVerified reads the whole blob and fails at the end when its content
// does not hash to d, so a reader never trusts corrupted bytes silently.
// Callers must read to EOF to get the check.
func ReadVerified(ctx context.Context, s Store, d Digest) (io.ReadCloser, error) {
	rc, err := s.Get(ctx, d, 0, -1)
	if err != nil {
		return nil, err
	}
	return &verifier{rc: rc, h: sha256.New(), want: d}, nil
}

type verifier struct {
	rc   io.ReadCloser
	h    hash.Hash
	want Digest
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		got := Digest("sha256:" + hex.EncodeToString(v.h.Sum(nil)))
		if got != v.want {
			return n, errs.Wrap(errs.Internal, ErrCorrupt, "blob %s is corrupt (content hashes to %s)", v.want, got)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }

// ErrCorrupt marks content that does not match its digest.
var ErrCorrupt = fmt.Errorf("blob: content does not match digest")
