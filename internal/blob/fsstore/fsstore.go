// Package fsstore keeps blobs as plain files on a local disk, laid out as
// DIR/sha256/<first 2 hex>/<64 hex>, with uploads staged in DIR/tmp. It owns
// that directory and nothing else: it must not know about any part, and it
// never lets a half-written or unverified file appear under its digest.
package fsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// dropCacheFrom is the size from which Put drops a blob's pages from the
// page cache once the blob is on disk.
const dropCacheFrom = 8 << 20

// Store is a blob.Store on a local directory. It also implements
// blob.Filer, so servers can send blobs with sendfile.
type Store struct {
	dir string
}

var (
	_ blob.Store = (*Store)(nil)
	_ blob.Filer = (*Store)(nil)
)

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsstore: %s: %w", dir, err)
	}
	s := &Store{dir: abs}
	for _, d := range []string{s.objectsDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, errs.Wrap(errs.Unavailable, err, "fsstore: create %s", d)
		}
	}
	return s, nil
}

func (s *Store) objectsDir() string { return filepath.Join(s.dir, "sha256") }
func (s *Store) tmpDir() string     { return filepath.Join(s.dir, "tmp") }

// Path is the file that holds d. It does not check that the file exists.
// d must be a valid digest (see blob.ParseDigest); an invalid one yields a
// path inside the store that never exists.
func (s *Store) Path(d blob.Digest) string {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return filepath.Join(s.dir, "invalid")
	}
	h := d.Hex()
	return filepath.Join(s.objectsDir(), h[:2], h)
}

// Put streams r into a temporary file while hashing it (starting its
// writeback every writebackEvery bytes), syncs it, checks it against
// want and only then renames it to its digest's path. A blob of
// dropCacheFrom bytes or more leaves the page cache once synced.
func (s *Store) Put(ctx context.Context, r io.Reader, want blob.Digest) (blob.Info, error) {
	if want != "" {
		if _, err := blob.ParseDigest(string(want)); err != nil {
			return blob.Info{}, fmt.Errorf("fsstore: put: %w", err)
		}
	}
	tmp, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: put: create temporary file")
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()

	h := sha256.New()
	n, err := blob.CopyHashing(&writingBack{f: tmp, start: startWriteback}, ctxReader{ctx: ctx, r: r}, h)
	if err != nil {
		return blob.Info{}, fmt.Errorf("fsstore: put: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: put: sync")
	}
	if n >= dropCacheFrom {
		// A large blob is read later if ever (a sealed piece, a release's
		// copy, a build's output), and its pages are clean now: dropping
		// them lets the writes of the next blob reuse them instead of
		// claiming new ones and pushing out what readers use
		// (docs/benchmarks.md, "Ingest: the disk half").
		dropCached(tmp)
	}
	if err := tmp.Close(); err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: put: close")
	}
	got := blob.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	if want != "" && got != want {
		return blob.Info{}, errs.E(errs.Invalid, "fsstore: put: content hashes to %s, want %s", got, want)
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, fmt.Errorf("fsstore: put: %w", err)
	}
	info := blob.Info{Digest: got, Size: n}
	final := s.Path(got)
	if fi, err := os.Stat(final); err == nil && fi.Size() == n {
		// Already stored: the temporary copy goes away in the deferred cleanup.
		return info, nil
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: put: create %s", dir)
	}
	if err := os.Chmod(tmpName, 0o444); err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: put: chmod")
	}
	// rename(2) is atomic: readers see either no file or the whole file.
	if err := os.Rename(tmpName, final); err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: put: rename into place")
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: put: sync %s", dir)
	}
	return info, nil
}

// writingBack writes into a blob's temporary file and, every
// writebackEvery bytes, has the kernel start writing them to disk, as
// databases do (RocksDB's bytes_per_sync): the blob's fsync then waits
// for the last stretch only, instead of holding its goroutine's thread
// (and the scheduler's P with it) for all of a large blob while the
// pipeline feeding it waits (docs/benchmarks.md, "Ingest: the disk half").
type writingBack struct {
	f                *os.File
	start            func(f *os.File, off, n int64) // startWriteback
	written, started int64
}

const writebackEvery = 8 << 20

func (w *writingBack) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.started >= writebackEvery {
		w.start(w.f, w.started, w.written-w.started)
		w.started = w.written
	}
	return n, err
}

// Get opens d and positions it at offset; length < 0 reads to the end, and
// a length past the end is cut at the end.
func (s *Store) Get(ctx context.Context, d blob.Digest, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fsstore: get %s: %w", d, err)
	}
	if offset < 0 {
		return nil, errs.E(errs.Invalid, "fsstore: get %s: negative offset %d", d, offset)
	}
	f, err := s.open(d)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, errs.Wrap(errs.Unavailable, err, "fsstore: get %s", d)
	}
	if offset > fi.Size() {
		f.Close()
		return nil, errs.E(errs.Invalid, "fsstore: get %s: offset %d is past the end (%d bytes)", d, offset, fi.Size())
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, errs.Wrap(errs.Unavailable, err, "fsstore: get %s: seek", d)
	}
	if length < 0 {
		return f, nil
	}
	return limitedFile{Reader: io.LimitReader(f, length), f: f}, nil
}

type limitedFile struct {
	io.Reader
	f *os.File
}

func (l limitedFile) Close() error { return l.f.Close() }

func (s *Store) open(d blob.Digest) (*os.File, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	}
	f, err := os.Open(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.E(errs.NotFound, "blob %s not found", d)
	}
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "fsstore: open %s", d)
	}
	return f, nil
}

// Stat tells d's size.
func (s *Store) Stat(ctx context.Context, d blob.Digest) (blob.Info, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return blob.Info{}, fmt.Errorf("fsstore: stat: %w", err)
	}
	fi, err := os.Stat(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return blob.Info{}, errs.E(errs.NotFound, "blob %s not found", d)
	}
	if err != nil {
		return blob.Info{}, errs.Wrap(errs.Unavailable, err, "fsstore: stat %s", d)
	}
	return blob.Info{Digest: d, Size: fi.Size()}, nil
}

// Delete removes d; a missing blob is not an error.
func (s *Store) Delete(ctx context.Context, d blob.Digest) error {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return fmt.Errorf("fsstore: delete: %w", err)
	}
	err := os.Remove(s.Path(d))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errs.Wrap(errs.Unavailable, err, "fsstore: delete %s", d)
	}
	return nil
}

// Walk calls fn for every blob. Files whose names are not digests (left by
// hand, or by another program) are ignored.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	prefixes, err := os.ReadDir(s.objectsDir())
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "fsstore: walk")
	}
	for _, p := range prefixes {
		if !p.IsDir() || len(p.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.objectsDir(), p.Name()))
		if err != nil {
			return errs.Wrap(errs.Unavailable, err, "fsstore: walk %s", p.Name())
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("fsstore: walk: %w", err)
			}
			d, err := blob.ParseDigest("sha256:" + e.Name())
			if err != nil || !e.Type().IsRegular() || e.Name()[:2] != p.Name() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while walking
			}
			if err != nil {
				return errs.Wrap(errs.Unavailable, err, "fsstore: walk %s", d)
			}
			if err := fn(blob.Info{Digest: d, Size: fi.Size()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// CopyTo copies every blob, and nothing else (no temporary file of a Put
// in progress), into a store rooted at dir, which it creates: what a
// backup of a running store needs. Blobs are copied as they are, not
// re-hashed; a blob deleted while copying is skipped. It returns how many
// blobs it copied.
func (s *Store) CopyTo(ctx context.Context, dir string) (int, error) {
	dst, err := New(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.Walk(ctx, func(info blob.Info) error {
		err := copyBlob(s.Path(info.Digest), dst.Path(info.Digest))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return errs.Wrap(errs.Unavailable, err, "fsstore: copy %s", info.Digest)
		}
		n++
		return nil
	})
	return n, err
}

func copyBlob(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Ping checks that the store's directories are still there and writable.
func (s *Store) Ping(ctx context.Context) error {
	f, err := os.CreateTemp(s.tmpDir(), "ping-*")
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "fsstore: ping %s", s.dir)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return errs.Wrap(errs.Unavailable, err, "fsstore: ping %s", s.dir)
	}
	return nil
}

// ctxReader stops a copy as soon as ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
