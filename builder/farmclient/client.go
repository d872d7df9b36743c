// Package farmclient is the build farm protocol's client over HTTP: the
// builder.Coordinator a builder agent uses across the network, through
// afterlife's retrying HTTP client, and the calls a maintainer makes
// (submitting a recipe, listing builders). It never links the farm's
// server side (builder/farmhttp, builder/coord): an operator's builder
// carries no web framework or database driver.
package farmclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// Options tune a Client.
type Options struct {
	// HTTP tunes retries and backoff (internal/httpclient).
	HTTP   httpclient.Options
	Logger *slog.Logger
	// PollSlack is how much longer than the requested wait a long poll's
	// request may take before the client gives up on it (default 15s).
	PollSlack time.Duration
}

// Client is the builder.Coordinator of an agent talking to a coordinator
// over HTTP. Every call goes through afterlife's retrying client: network
// errors, 429, 502, 503 and 504 are retried with backoff that honours
// Retry-After.
type Client struct {
	base  string
	token string
	hc    *retryablehttp.Client
	slack time.Duration
}

var _ builder.Coordinator = (*Client)(nil)

// New returns a client of the coordinator at baseURL (the server's root,
// e.g. "https://farm.example.org") using a builder or maintainer token.
func New(baseURL, token string, o Options) *Client {
	if o.HTTP.Logger == nil {
		o.HTTP.Logger = o.Logger
	}
	if o.PollSlack <= 0 {
		o.PollSlack = 15 * time.Second
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: httpclient.New(o.HTTP), slack: o.PollSlack}
}

func (c *Client) do(ctx context.Context, method, path string, body any, contentType string, out any) (int, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, errs.Wrap(errs.Invalid, err, "farm client: %s %s", method, path)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c.header(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, errs.Wrap(errs.Unavailable, err, "farm client: %s %s", method, path)
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, httpclient.DecodeError(resp, method+" "+path)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
			return resp.StatusCode, errs.Wrap(errs.Unavailable, err, "farm client: %s %s: bad response", method, path)
		}
	}
	return resp.StatusCode, nil
}

// header says who calls and which protocol version it speaks.
func (c *Client) header(req *retryablehttp.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set(builder.ProtocolHeader, strconv.Itoa(builder.ProtocolVersion))
}

func (c *Client) json(ctx context.Context, method, path string, in, out any) (int, error) {
	var body any
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("farm client: encode %s: %w", path, err)
		}
		body, ctype = b, "application/json"
	}
	return c.do(ctx, method, path, body, ctype, out)
}

// Register implements builder.Coordinator.
func (c *Client) Register(ctx context.Context, reg builder.Registration) (builder.Builder, error) {
	var b builder.Builder
	_, err := c.json(ctx, http.MethodPost, "/v1/builders", reg, &b)
	return b, err
}

// Next implements builder.Coordinator: a long poll whose request may take
// wait plus the client's slack.
func (c *Client) Next(ctx context.Context, wait time.Duration) (*builder.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+c.slack)
	defer cancel()
	var job builder.Job
	status, err := c.json(ctx, http.MethodPost, "/v1/jobs/next", builder.NextRequest{WaitMillis: wait.Milliseconds()}, &job)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return &job, nil
}

// Extend implements builder.Coordinator.
func (c *Client) Extend(ctx context.Context, jobID string) (time.Time, error) {
	var r builder.ExtendResponse
	_, err := c.json(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(jobID)+"/extend", nil, &r)
	return r.LeaseUntil, err
}

// Fetch implements builder.Coordinator. Redirects to a presigned store URL
// are followed, and a transfer cut short resumes where it stopped.
func (c *Client) Fetch(ctx context.Context, d blob.Digest) (io.ReadCloser, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return nil, err
	}
	return c.fetch(ctx, "/v1/blobs/"+string(d))
}

// FetchInput implements builder.Coordinator: the job-scoped route, the only
// one that serves a build-only input.
func (c *Client) FetchInput(ctx context.Context, jobID string, d blob.Digest) (io.ReadCloser, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return nil, err
	}
	return c.fetch(ctx, "/v1/jobs/"+url.PathEscape(jobID)+"/inputs/"+string(d))
}

func (c *Client) fetch(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "farm client: GET %s", path)
	}
	c.header(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errs.Wrap(errs.Unavailable, err, "farm client: GET %s", path)
	}
	if resp.StatusCode != http.StatusOK {
		defer httpclient.Drain(resp)
		return nil, httpclient.DecodeError(resp, http.MethodGet+" "+path)
	}
	// An input cut short (a replica restarting, the store away) resumes
	// with Range; the agent checks every input's digest as it reads.
	return httpclient.ResumingBody(c.hc, req, resp), nil
}

// Upload implements builder.Coordinator. When r is an io.Seeker (a file,
// a bytes.Reader) it is re-read from its start when a try is retried;
// otherwise the upload is tried once.
func (c *Client) Upload(ctx context.Context, jobID string, d blob.Digest, size int64, r io.Reader) error {
	path := "/v1/jobs/" + url.PathEscape(jobID) + "/outputs/" + string(d)
	var body any = r
	if _, ok := r.(io.ReadSeeker); !ok {
		read := false
		body = retryablehttp.ReaderFunc(func() (io.Reader, error) {
			if read {
				return nil, errs.E(errs.Unavailable, "farm client: the upload of %s cannot be read again for a retry", d)
			}
			read = true
			return r, nil
		})
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPut, c.base+path, body)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "farm client: PUT %s", path)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	c.header(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errs.Wrap(errs.Unavailable, err, "farm client: PUT %s", path)
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode >= 300 {
		return httpclient.DecodeError(resp, http.MethodPut+" "+path)
	}
	return nil
}

// AppendLog implements builder.Coordinator.
func (c *Client) AppendLog(ctx context.Context, jobID string, chunk []byte) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(jobID)+"/log", bytes.Clone(chunk), "text/plain; charset=utf-8", nil)
	return err
}

// Done implements builder.Coordinator.
func (c *Client) Done(ctx context.Context, jobID string, rep builder.Report) error {
	_, err := c.json(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(jobID)+"/done", rep, nil)
	return err
}

// GiveBack implements builder.Coordinator.
func (c *Client) GiveBack(ctx context.Context, jobID string) error {
	_, err := c.json(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(jobID)+"/giveback", nil, nil)
	return err
}

// Submit asks the coordinator to build a recipe repository at a ref
// (maintainer token).
func (c *Client) Submit(ctx context.Context, req builder.SubmitRequest) (builder.SubmitResult, error) {
	var res builder.SubmitResult
	_, err := c.json(ctx, http.MethodPost, "/v1/recipes", req, &res)
	return res, err
}

// Builders lists the registered builders.
func (c *Client) Builders(ctx context.Context) ([]builder.Builder, error) {
	var r struct {
		Builders []builder.Builder `json:"builders"`
	}
	_, err := c.json(ctx, http.MethodGet, "/v1/builders", nil, &r)
	return r.Builders, err
}
