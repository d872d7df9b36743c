package httpclient

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// maxResumes bounds how often one download is picked up again.
const maxResumes = 8

// ResumingBody returns resp's body such that a transfer cut short (a
// replica restarting, the blob store away for a moment) is picked up
// where it stopped: req is sent again with Range from the bytes already
// read (and If-Range with the first answer's ETag), through c and its
// retry policy. It is for content-addressed downloads whose reader checks
// the digest of what it reads: when the server answers the resumed
// request with the whole content (200, a store that ignores If-Range or
// Range), the part already read is skipped. resp must be a 200 to req.
func ResumingBody(c *retryablehttp.Client, req *retryablehttp.Request, resp *http.Response) io.ReadCloser {
	return &resuming{c: c, req: req, body: resp.Body, etag: resp.Header.Get("ETag"), size: resp.ContentLength}
}

type resuming struct {
	c       *retryablehttp.Client
	req     *retryablehttp.Request
	body    io.ReadCloser
	etag    string
	size    int64 // -1 when unknown
	read    int64
	resumes int
}

func (r *resuming) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.read += int64(n)
		if err == nil || n > 0 {
			return n, nil
		}
		if err == io.EOF && (r.size < 0 || r.read >= r.size) {
			return 0, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if r.req.Context().Err() != nil || r.resumes >= maxResumes {
			return 0, err
		}
		r.resumes++
		if rerr := r.resume(); rerr != nil {
			return 0, fmt.Errorf("%w (resuming after %d bytes: %v)", err, r.read, rerr)
		}
	}
}

// resume asks for the rest and swaps the body.
func (r *resuming) resume() error {
	r.body.Close()
	r.body = io.NopCloser(strings.NewReader(""))
	req, err := retryablehttp.NewRequestWithContext(r.req.Context(), r.req.Method, r.req.URL.String(), nil)
	if err != nil {
		return err
	}
	req.Header = r.req.Header.Clone()
	req.Header.Set("Range", "bytes="+strconv.FormatInt(r.read, 10)+"-")
	if r.etag != "" && !strings.HasPrefix(r.etag, "W/") {
		req.Header.Set("If-Range", r.etag)
	}
	resp, err := r.c.Do(req)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(r.read, 10)+"-") {
			resp.Body.Close()
			return errs.E(errs.Unavailable, "resumed at %q, not at byte %d", resp.Header.Get("Content-Range"), r.read)
		}
		r.body = resp.Body
	case http.StatusOK:
		if _, err := io.CopyN(io.Discard, resp.Body, r.read); err != nil {
			resp.Body.Close()
			return err
		}
		r.body = resp.Body
	default:
		defer Drain(resp)
		return DecodeError(resp, req.Method+" "+req.URL.Redacted())
	}
	return nil
}

func (r *resuming) Close() error { return r.body.Close() }
