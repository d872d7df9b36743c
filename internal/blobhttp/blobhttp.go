// Package blobhttp serves a stored blob over HTTP the way every download in
// afterlife is served: Content-Length, a strong ETag (the digest),
// If-None-Match, single Range requests, zero-copy sendfile when the blob is
// a plain file, and a redirect to a short-lived presigned URL when the store
// can hand one out that clients reach (an S3 store with a public URL), so
// bytes do not pass through the server at all. Without one, the bytes are
// streamed from the store through the server, with the same Range support.
package blobhttp

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Options tune one response.
type Options struct {
	// Filename is offered to the client (Content-Disposition) and picks the
	// content type; empty means the digest's hex.
	Filename string
	// Size, when known from metadata, saves a Stat; 0 means unknown.
	Size int64
	// NoRedirect serves the bytes even from a store that can presign (for
	// clients that cannot follow redirects).
	NoRedirect bool
	// CacheControl overrides the default, which is immutable: a digest's
	// bytes never change.
	CacheControl string
	// PresignTTL is how long a redirect URL lives (default 5 minutes).
	PresignTTL time.Duration
}

// Serve writes blob d to w. It returns an error with a kind only when
// nothing has been written yet; the caller turns that into the API's error
// shape.
func Serve(w http.ResponseWriter, r *http.Request, store blob.Store, d blob.Digest, o Options) error {
	name := o.Filename
	if name == "" {
		name = d.Hex()
	}
	etag := `"` + d.Hex() + `"`
	h := w.Header()
	if o.CacheControl != "" {
		h.Set("Cache-Control", o.CacheControl)
	} else {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	h.Set("ETag", etag)
	h.Set("X-Content-Digest", string(d))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if p, ok := store.(blob.Presigner); ok && !o.NoRedirect {
		ttl := o.PresignTTL
		if ttl == 0 {
			ttl = 5 * time.Minute
		}
		u, err := p.PresignGet(r.Context(), d, ttl, path.Base(name))
		if err != nil {
			unsetHeaders(h)
			return fmt.Errorf("blobhttp: presign %s: %w", d, err)
		}
		if u != "" {
			if _, err := store.Stat(r.Context(), d); err != nil {
				unsetHeaders(h)
				return err
			}
			h.Set("Cache-Control", "no-store")
			http.Redirect(w, r, u, http.StatusTemporaryRedirect)
			return nil
		}
	}
	if ctype := mime.TypeByExtension(path.Ext(name)); ctype != "" {
		h.Set("Content-Type", ctype)
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(name)}))
	if f, ok := store.(blob.Filer); ok {
		file, err := os.Open(f.Path(d))
		if os.IsNotExist(err) {
			unsetHeaders(h)
			return errs.E(errs.NotFound, "blob %s not found", d)
		}
		if err != nil {
			unsetHeaders(h)
			return fmt.Errorf("blobhttp: open %s: %w", d, err)
		}
		defer file.Close()
		// ServeContent handles Range and If-Range; copying from an
		// *os.File to the connection uses sendfile once the copy reaches
		// net/http's own writer (see zeroCopyWriter).
		http.ServeContent(zeroCopyWriter{w}, r, "", time.Time{}, file)
		return nil
	}
	size := o.Size
	if size == 0 {
		info, err := store.Stat(r.Context(), d)
		if err != nil {
			unsetHeaders(h)
			return err
		}
		size = info.Size
	}
	content := &readSeeker{r: r, store: store, d: d, size: size}
	defer content.close()
	if r.Method != http.MethodHead && r.Header.Get("Range") == "" && size > 0 {
		// A whole download opens the blob before the header goes out, so
		// a store that is away answers with an error (503, Retry-After),
		// not a 200 cut short.
		if err := content.open(); err != nil {
			unsetHeaders(h)
			return err
		}
	}
	http.ServeContent(w, r, "", time.Time{}, content)
	return nil
}

// unsetHeaders takes back what Serve set for the blob when it answers with
// an error instead.
func unsetHeaders(h http.Header) {
	for _, k := range []string{"Cache-Control", "ETag", "X-Content-Digest", "Content-Type", "Content-Disposition"} {
		h.Del(k)
	}
}

// zeroCopyWriter lets a copy into the response reach the io.ReaderFrom of
// net/http's own writer through gin's, which wraps it without implementing
// ReaderFrom: net/http's ReadFrom hands a file to sendfile(2), so the bytes
// never pass through user space. Only writers that pass bytes through
// unchanged (gin's: it holds back the header, nothing else) are stepped
// over; any other writer gets an ordinary copy. The header goes out through
// gin first, so it records the status; the body's length it does not see
// (the access log reads Content-Length).
type zeroCopyWriter struct{ http.ResponseWriter }

// passThrough is gin's writer: it sends a held-back header on demand and
// wraps the connection's writer.
type passThrough interface {
	WriteHeaderNow()
	Unwrap() http.ResponseWriter
}

func (z zeroCopyWriter) ReadFrom(src io.Reader) (int64, error) {
	w := z.ResponseWriter
	for {
		if rf, ok := w.(io.ReaderFrom); ok {
			return rf.ReadFrom(src)
		}
		pt, ok := w.(passThrough)
		if !ok {
			break
		}
		pt.WriteHeaderNow()
		w = pt.Unwrap()
	}
	// No writer in the chain takes the file: an ordinary copy, hiding this
	// ReadFrom so that io.Copy does not call it again.
	return io.Copy(struct{ io.Writer }{z.ResponseWriter}, src)
}

func etagMatches(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}

// readSeeker lets http.ServeContent do range handling over a store that
// only offers ranged Gets: a Get is opened at the position of the first
// Read after a seek (ServeContent seeks to the end to learn the size, then
// to where it sends from), and reopened only when a seek moved away.
type readSeeker struct {
	r     *http.Request
	store blob.Store
	d     blob.Digest
	size  int64
	off   int64 // where the next Read starts
	rc    io.ReadCloser
	rcOff int64 // where rc's next Read starts
}

func (s *readSeeker) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = s.off + offset
	case io.SeekEnd:
		abs = s.size + offset
	}
	if abs < 0 {
		return 0, fmt.Errorf("blobhttp: negative seek")
	}
	s.off = abs
	return abs, nil
}

func (s *readSeeker) open() error {
	rc, err := s.store.Get(s.r.Context(), s.d, s.off, -1)
	if err != nil {
		return err
	}
	s.rc, s.rcOff = rc, s.off
	return nil
}

func (s *readSeeker) close() {
	if s.rc != nil {
		s.rc.Close()
		s.rc = nil
	}
}

func (s *readSeeker) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if s.rc != nil && s.rcOff != s.off {
		s.close()
	}
	if s.rc == nil {
		if err := s.open(); err != nil {
			return 0, err
		}
	}
	n, err := s.rc.Read(p)
	s.off += int64(n)
	s.rcOff += int64(n)
	return n, err
}
