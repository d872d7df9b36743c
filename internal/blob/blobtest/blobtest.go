// Package blobtest is the one conformance suite every blob.Store passes
// (disk and a real S3 server run the same checks), plus the data generator
// and benchmark that compare a store's Put with `openssl dgst -sha256`. It is imported
// only by tests and must not know about any particular store.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Option adjusts the suite for one store.
type Option func(*suite)

// WithCorrupt gives the suite a way to damage a stored blob behind the
// store's back (replace its content with different bytes of the same
// length), so it can check that blob.ReadVerified notices. Stores that
// implement blob.Filer get this for free.
func WithCorrupt(fn func(t *testing.T, s blob.Store, d blob.Digest)) Option {
	return func(s *suite) { s.corrupt = fn }
}

type suite struct {
	newStore func(t *testing.T) blob.Store
	corrupt  func(t *testing.T, s blob.Store, d blob.Digest)
}

// Run checks newStore's stores against the blob.Store contract, as
// parallel subtests. newStore must return an empty store each time it is
// called, and may be called from several goroutines at once.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store, opts ...Option) {
	s := &suite{newStore: newStore}
	for _, o := range opts {
		o(s)
	}
	if s.corrupt == nil {
		if _, ok := newStore(t).(blob.Filer); ok {
			s.corrupt = corruptFile
		}
	}
	// Every check gets a fresh store (newStore must return an empty one),
	// so they run in parallel.
	run := func(name string, check func(*testing.T)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check(t)
		})
	}
	run("a put blob reads back byte for byte", s.roundTrip)
	run("an empty blob can be stored and read", s.emptyBlob)
	run("a put with the right expected digest succeeds", s.expectedDigestMatches)
	run("a put with a wrong expected digest is invalid and leaves nothing", s.expectedDigestMismatch)
	run("ranges return the requested bytes", s.ranges)
	run("an offset past the end is invalid", s.offsetPastEnd)
	run("a missing blob is not found", s.missing)
	run("a malformed digest is invalid", s.malformedDigest)
	run("putting the same content twice stores it once", s.idempotentPut)
	run("a deleted blob is gone and deleting again is fine", s.deleteBlob)
	run("walk lists every blob with its size", s.walk)
	run("walk stops at the first error its callback returns", s.walkError)
	run("concurrent puts of the same content all succeed", s.concurrentPuts)
	run("a 64 MiB stream is stored without a byte slice", s.largeStream)
	run("a put cancelled midway leaves nothing", s.cancelledPut)
	run("a failing reader leaves nothing", s.failingReader)
	run("read verified accepts intact content", s.readVerifiedIntact)
	run("read verified detects content altered in transit", s.readVerifiedTransit)
	if s.corrupt != nil {
		run("read verified detects content corrupted in storage", s.readVerifiedStored)
	}
	run("ping succeeds", s.ping)
}

func (s *suite) store(t *testing.T) blob.Store {
	t.Helper()
	return s.newStore(t)
}

func (s *suite) roundTrip(t *testing.T) {
	st := s.store(t)
	ctx := t.Context()
	data := []byte("firmware for a device nobody supports any more")
	info := mustPut(t, st, data, "")
	if info.Digest != blob.FromBytes(data) || info.Size != int64(len(data)) {
		t.Fatalf("Put = %+v, want digest %s size %d", info, blob.FromBytes(data), len(data))
	}
	if got := mustGet(t, st, info.Digest, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, want %q", got, data)
	}
	got, err := st.Stat(ctx, info.Digest)
	if err != nil || got != info {
		t.Fatalf("Stat = %+v, %v; want %+v", got, err, info)
	}
}

func (s *suite) emptyBlob(t *testing.T) {
	st := s.store(t)
	info := mustPut(t, st, nil, blob.FromBytes(nil))
	if info.Size != 0 {
		t.Fatalf("Put empty: size %d", info.Size)
	}
	if got := mustGet(t, st, info.Digest, 0, -1); len(got) != 0 {
		t.Fatalf("Get empty = %q", got)
	}
}

func (s *suite) expectedDigestMatches(t *testing.T) {
	st := s.store(t)
	data := []byte("checked on the way in")
	info := mustPut(t, st, data, blob.FromBytes(data))
	if info.Digest != blob.FromBytes(data) {
		t.Fatalf("Put digest %s, want %s", info.Digest, blob.FromBytes(data))
	}
}

func (s *suite) expectedDigestMismatch(t *testing.T) {
	st := s.store(t)
	ctx := t.Context()
	data := []byte("these are not the bytes you announced")
	claimed := blob.FromBytes([]byte("what was announced"))
	_, err := st.Put(ctx, bytes.NewReader(data), claimed)
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("Put with wrong digest: err = %v (kind %s), want kind invalid", err, errs.KindOf(err))
	}
	for _, d := range []blob.Digest{claimed, blob.FromBytes(data)} {
		if _, err := st.Stat(ctx, d); !errs.Is(err, errs.NotFound) {
			t.Errorf("Stat(%s) after rejected put: err = %v, want not found", d, err)
		}
	}
	if got := walkAll(t, st); len(got) != 0 {
		t.Errorf("Walk after rejected put lists %v, want nothing", got)
	}
}

func (s *suite) ranges(t *testing.T) {
	st := s.store(t)
	data := []byte("0123456789abcdefghij")
	d := mustPut(t, st, data, "").Digest
	tests := []struct {
		name           string
		offset, length int64
		want           string
	}{
		{"the start", 0, 4, "0123"},
		{"the middle", 8, 5, "89abc"},
		{"from an offset to the end", 15, -1, "fghij"},
		{"the whole blob", 0, -1, string(data)},
		{"zero bytes at the start", 0, 0, ""},
		{"zero bytes in the middle", 7, 0, ""},
		{"a length past the end stops at the end", 17, 100, "hij"},
		{"an offset at the end reads nothing", int64(len(data)), -1, ""},
		{"the last byte", int64(len(data)) - 1, 1, "j"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustGet(t, st, d, tt.offset, tt.length); string(got) != tt.want {
				t.Fatalf("Get(%d, %d) = %q, want %q", tt.offset, tt.length, got, tt.want)
			}
		})
	}
}

func (s *suite) offsetPastEnd(t *testing.T) {
	st := s.store(t)
	data := []byte("short")
	d := mustPut(t, st, data, "").Digest
	rc, err := st.Get(t.Context(), d, int64(len(data))+1, -1)
	if err == nil {
		rc.Close()
	}
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("Get past the end: err = %v, want kind invalid", err)
	}
}

func (s *suite) missing(t *testing.T) {
	st := s.store(t)
	ctx := t.Context()
	d := blob.FromBytes([]byte("never stored"))
	rc, err := st.Get(ctx, d, 0, -1)
	if err == nil {
		rc.Close()
	}
	if !errs.Is(err, errs.NotFound) {
		t.Errorf("Get missing: err = %v, want not found", err)
	}
	if _, err := st.Stat(ctx, d); !errs.Is(err, errs.NotFound) {
		t.Errorf("Stat missing: err = %v, want not found", err)
	}
	if err := st.Delete(ctx, d); err != nil {
		t.Errorf("Delete missing: %v, want nil", err)
	}
}

func (s *suite) malformedDigest(t *testing.T) {
	st := s.store(t)
	ctx := t.Context()
	for _, d := range []blob.Digest{"", "sha256:../../etc/passwd", "md5:0123", blob.Digest("sha256:" + string(bytes.Repeat([]byte("A"), 64)))} {
		if _, err := st.Stat(ctx, d); !errs.Is(err, errs.Invalid) {
			t.Errorf("Stat(%q): err = %v, want invalid", d, err)
		}
		rc, err := st.Get(ctx, d, 0, -1)
		if err == nil {
			rc.Close()
		}
		if !errs.Is(err, errs.Invalid) {
			t.Errorf("Get(%q): err = %v, want invalid", d, err)
		}
	}
	if _, err := st.Put(ctx, bytes.NewReader(nil), "sha256:nope"); !errs.Is(err, errs.Invalid) {
		t.Errorf("Put with malformed expected digest: err = %v, want invalid", err)
	}
}

func (s *suite) idempotentPut(t *testing.T) {
	st := s.store(t)
	data := []byte("stored twice, kept once")
	first := mustPut(t, st, data, "")
	second := mustPut(t, st, data, blob.FromBytes(data))
	if first != second {
		t.Fatalf("second Put = %+v, first %+v", second, first)
	}
	if got := walkAll(t, st); len(got) != 1 || got[0] != first {
		t.Fatalf("Walk = %v, want just %v", got, first)
	}
	if got := mustGet(t, st, first.Digest, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("Get after re-put = %q", got)
	}
}

func (s *suite) deleteBlob(t *testing.T) {
	st := s.store(t)
	ctx := t.Context()
	keep := mustPut(t, st, []byte("keep me"), "")
	gone := mustPut(t, st, []byte("delete me"), "")
	if err := st.Delete(ctx, gone.Digest); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Stat(ctx, gone.Digest); !errs.Is(err, errs.NotFound) {
		t.Errorf("Stat deleted: err = %v, want not found", err)
	}
	if rc, err := st.Get(ctx, gone.Digest, 0, -1); !errs.Is(err, errs.NotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get deleted: err = %v, want not found", err)
	}
	if err := st.Delete(ctx, gone.Digest); err != nil {
		t.Errorf("Delete again: %v", err)
	}
	if got := walkAll(t, st); len(got) != 1 || got[0] != keep {
		t.Errorf("Walk after delete = %v, want just %v", got, keep)
	}
}

func (s *suite) walk(t *testing.T) {
	st := s.store(t)
	var want []blob.Info
	for i := range 5 {
		want = append(want, mustPut(t, st, bytes.Repeat([]byte{byte('a' + i)}, 10*i+1), ""))
	}
	sortInfos(want)
	if got := walkAll(t, st); !slices.Equal(got, want) {
		t.Fatalf("Walk = %v\nwant %v", got, want)
	}
}

func (s *suite) walkError(t *testing.T) {
	st := s.store(t)
	mustPut(t, st, []byte("one"), "")
	mustPut(t, st, []byte("two"), "")
	stop := errors.New("stop here")
	calls := 0
	err := st.Walk(t.Context(), func(blob.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk = %v after %d calls, want the callback's error after 1 call", err, calls)
	}
}

func (s *suite) concurrentPuts(t *testing.T) {
	st := s.store(t)
	data := bytes.Repeat([]byte("race "), 50_000)
	const n = 8
	var wg sync.WaitGroup
	infos := make([]blob.Info, n)
	putErrs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			infos[i], putErrs[i] = st.Put(t.Context(), bytes.NewReader(data), "")
		})
	}
	wg.Wait()
	want := blob.Info{Digest: blob.FromBytes(data), Size: int64(len(data))}
	for i := range n {
		if putErrs[i] != nil || infos[i] != want {
			t.Errorf("put %d = %+v, %v; want %+v", i, infos[i], putErrs[i], want)
		}
	}
	if got := mustGet(t, st, want.Digest, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("Get after concurrent puts: %d bytes differ from the %d put", len(got), len(data))
	}
	if got := walkAll(t, st); len(got) != 1 {
		t.Fatalf("Walk after concurrent puts = %v, want one blob", got)
	}
}

func (s *suite) largeStream(t *testing.T) {
	st := s.store(t)
	ctx := t.Context()
	const size = 64 << 20
	want := DigestOf(t, NewData(size, 1))
	info, err := st.Put(ctx, NewData(size, 1), want)
	if err != nil {
		t.Fatalf("Put 64 MiB: %v", err)
	}
	if info != (blob.Info{Digest: want, Size: size}) {
		t.Fatalf("Put = %+v, want %s and %d bytes", info, want, size)
	}
	rc, err := blob.ReadVerified(ctx, st, want)
	if err != nil {
		t.Fatalf("ReadVerified: %v", err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != size {
		t.Fatalf("read back %d bytes, err %v; want %d", n, err, size)
	}
	tail := mustGet(t, st, want, size-10, -1)
	r := NewData(size, 1)
	if _, err := io.CopyN(io.Discard, r, size-10); err != nil {
		t.Fatal(err)
	}
	wantTail, _ := io.ReadAll(r)
	if !bytes.Equal(tail, wantTail) {
		t.Fatalf("last 10 bytes = %x, want %x", tail, wantTail)
	}
}

func (s *suite) cancelledPut(t *testing.T) {
	st := s.store(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const size = 8 << 20
	r := &cancelAfter{r: NewData(size, 2), after: 1 << 20, cancel: cancel}
	_, err := st.Put(ctx, r, "")
	if err == nil {
		t.Fatal("Put with a context cancelled midway succeeded")
	}
	s.assertEmpty(t, st, DigestOf(t, NewData(size, 2)))
}

func (s *suite) failingReader(t *testing.T) {
	st := s.store(t)
	boom := errors.New("connection reset by vendor")
	r := io.MultiReader(NewData(3<<20, 3), errReader{boom})
	_, err := st.Put(t.Context(), r, "")
	if !errors.Is(err, boom) {
		t.Fatalf("Put from a failing reader: err = %v, want it to wrap %v", err, boom)
	}
	s.assertEmpty(t, st, DigestOf(t, NewData(3<<20, 3)))
}

func (s *suite) assertEmpty(t *testing.T, st blob.Store, d blob.Digest) {
	t.Helper()
	// The caller's context may be cancelled: look with a fresh one.
	ctx := context.WithoutCancel(t.Context())
	if _, err := st.Stat(ctx, d); !errs.Is(err, errs.NotFound) {
		t.Errorf("Stat(%s) after failed put: err = %v, want not found", d, err)
	}
	if got := walkAll(t, st); len(got) != 0 {
		t.Errorf("Walk after failed put lists %v, want nothing", got)
	}
}

func (s *suite) readVerifiedIntact(t *testing.T) {
	st := s.store(t)
	data := []byte("intact")
	d := mustPut(t, st, data, "").Digest
	rc, err := blob.ReadVerified(t.Context(), st, d)
	if err != nil {
		t.Fatalf("ReadVerified: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadVerified read %q, %v; want %q", got, err, data)
	}
}

func (s *suite) readVerifiedTransit(t *testing.T) {
	st := s.store(t)
	data := bytes.Repeat([]byte("bits rot "), 1000)
	d := mustPut(t, st, data, "").Digest
	assertCorruptDetected(t, flipper{Store: st, at: 4321}, d)
}

func (s *suite) readVerifiedStored(t *testing.T) {
	st := s.store(t)
	data := bytes.Repeat([]byte("bits rot on disk "), 1000)
	d := mustPut(t, st, data, "").Digest
	s.corrupt(t, st, d)
	got := mustGet(t, st, d, 0, -1)
	if bytes.Equal(got, data) {
		t.Fatal("the corrupt function left the content as it was")
	}
	assertCorruptDetected(t, st, d)
}

func assertCorruptDetected(t *testing.T, st blob.Store, d blob.Digest) {
	t.Helper()
	rc, err := blob.ReadVerified(t.Context(), st, d)
	if err != nil {
		t.Fatalf("ReadVerified: %v", err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("reading corrupted content: err = %v, want blob.ErrCorrupt", err)
	}
}

func (s *suite) ping(t *testing.T) {
	if err := s.store(t).Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// corruptFile flips one byte of a blob kept as a plain file.
func corruptFile(t *testing.T, s blob.Store, d blob.Digest) {
	t.Helper()
	p := s.(blob.Filer).Path(d)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 100); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, 100); err != nil {
		t.Fatal(err)
	}
}

// flipper is a store whose reads flip one bit at a fixed offset, like a
// bad disk or a faulty network path would.
type flipper struct {
	blob.Store
	at int64
}

func (f flipper) Get(ctx context.Context, d blob.Digest, offset, length int64) (io.ReadCloser, error) {
	rc, err := f.Store.Get(ctx, d, offset, length)
	if err != nil {
		return nil, err
	}
	return &flipReader{rc: rc, at: f.at - offset}, nil
}

type flipReader struct {
	rc  io.ReadCloser
	pos int64
	at  int64
}

func (r *flipReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if i := r.at - r.pos; i >= 0 && i < int64(n) {
		p[i] ^= 0x80
	}
	r.pos += int64(n)
	return n, err
}

func (r *flipReader) Close() error { return r.rc.Close() }

type cancelAfter struct {
	r      io.Reader
	after  int64
	read   int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// NewData returns a reader of size pseudo-random bytes; the same seed gives
// the same bytes. It holds no buffer, so any size streams.
func NewData(size int64, seed uint64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// DigestOf hashes r to its end.
func DigestOf(tb testing.TB, r io.Reader) blob.Digest {
	tb.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		tb.Fatalf("hash: %v", err)
	}
	return blob.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
}

func mustPut(t *testing.T, st blob.Store, data []byte, want blob.Digest) blob.Info {
	t.Helper()
	info, err := st.Put(t.Context(), bytes.NewReader(data), want)
	if err != nil {
		t.Fatalf("Put %d bytes: %v", len(data), err)
	}
	return info
}

func mustGet(t *testing.T, st blob.Store, d blob.Digest, offset, length int64) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), d, offset, length)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): %v", d, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	return b
}

func walkAll(t *testing.T, st blob.Store) []blob.Info {
	t.Helper()
	var got []blob.Info
	err := st.Walk(context.WithoutCancel(t.Context()), func(i blob.Info) error {
		got = append(got, i)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	sortInfos(got)
	return got
}

func sortInfos(infos []blob.Info) {
	slices.SortFunc(infos, func(a, b blob.Info) int {
		return bytes.Compare([]byte(a.Digest), []byte(b.Digest))
	})
}
