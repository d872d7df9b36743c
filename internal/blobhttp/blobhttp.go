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
			return fmt.Errorf("blobhttp: presign %s: %w", d, err)
		}
		if u != "" {
			if _, err := store.Stat(r.Context(), d); err != nil {
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
			return errs.E(errs.NotFound, "blob %s not found", d)
		}
		if err != nil {
			return fmt.Errorf("blobhttp: open %s: %w", d, err)
		}
		defer file.Close()
		// ServeContent handles Range and If-Range; copying from an
		// *os.File to the connection uses sendfile.
		http.ServeContent(w, r, "", time.Time{}, file)
		return nil
	}
	size := o.Size
	if size == 0 {
		info, err := store.Stat(r.Context(), d)
		if err != nil {
			return err
		}
		size = info.Size
	}
	http.ServeContent(w, r, "", time.Time{}, &readSeeker{r: r, store: store, d: d, size: size})
	return nil
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
// only offers ranged Gets: it opens the range lazily at the first Read.
type readSeeker struct {
	r     *http.Request
	store blob.Store
	d     blob.Digest
	size  int64
	off   int64
	rc    io.ReadCloser
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
	if abs != s.off && s.rc != nil {
		s.rc.Close()
		s.rc = nil
	}
	s.off = abs
	return abs, nil
}

func (s *readSeeker) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if s.rc == nil {
		rc, err := s.store.Get(s.r.Context(), s.d, s.off, -1)
		if err != nil {
			return 0, err
		}
		s.rc = rc
		context := s.r.Context()
		go func() { <-context.Done(); rc.Close() }()
	}
	n, err := s.rc.Read(p)
	s.off += int64(n)
	return n, err
}
