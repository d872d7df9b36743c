// Package httpclient is the one place where afterlife's clients (the builder
// agent, the device client, the vendor CLI) get their HTTP client and their
// retry policy: connection errors and 429/502/503/504 are retried with
// backoff that honours Retry-After; other 4xx are never retried, since they
// would fail again.
package httpclient

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Options tune a client. The zero value is sane.
type Options struct {
	// RetryMax is how many times a request is retried (default 8).
	RetryMax int
	// WaitMin and WaitMax bound the backoff between tries (default 200ms and 15s).
	WaitMin, WaitMax time.Duration
	// Timeout bounds one try (default none: long polls and downloads set
	// deadlines with their context).
	Timeout time.Duration
	// Logger receives one line per retry (default: discard).
	Logger *slog.Logger
}

// New returns a retrying client with afterlife's policy.
func New(o Options) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.RetryMax = 8
	if o.RetryMax > 0 {
		c.RetryMax = o.RetryMax
	}
	c.RetryWaitMin, c.RetryWaitMax = 200*time.Millisecond, 15*time.Second
	if o.WaitMin > 0 {
		c.RetryWaitMin = o.WaitMin
	}
	if o.WaitMax > 0 {
		c.RetryWaitMax = o.WaitMax
	}
	c.HTTPClient.Timeout = o.Timeout
	c.HTTPClient.CheckRedirect = dropCredentialsOffOrigin
	c.CheckRetry = CheckRetry
	c.Backoff = Backoff
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.Logger = nil
	if o.Logger != nil {
		log := o.Logger
		c.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
			if attempt > 0 {
				log.Info("retrying request", "method", r.Method, "url", r.URL.Redacted(), "attempt", attempt)
			}
		}
	}
	return c
}

// dropCredentialsOffOrigin keeps a token from following a redirect to
// another origin. Go drops it only for another host name, but a blob store
// on the same host and another port (a presigned S3 URL) must not see the
// API token: S3 refuses a request that carries two kinds of credentials.
func dropCredentialsOffOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if origin := via[0].URL; req.URL.Scheme != origin.Scheme || req.URL.Host != origin.Host {
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
	}
	return nil
}

// Standard returns New(o) as a plain *http.Client, for libraries that take
// one (the TUF updater's fetcher, for example).
func Standard(o Options) *http.Client { return New(o).StandardClient() }

// CheckRetry decides whether a try is worth repeating.
func CheckRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			var certErr *x509.UnknownAuthorityError
			if errors.As(uerr.Err, &certErr) {
				return false, err
			}
		}
		return true, nil // connection refused, reset, timeout: the server may come back
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, nil
	}
	return false, nil
}

// Backoff waits exponentially between tries, but as long as the server's
// Retry-After asks when it gives one (capped at max).
func Backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			d := time.Duration(s) * time.Second
			if d > max {
				d = max
			}
			return d
		}
	}
	return retryablehttp.DefaultBackoff(min, max, attempt, resp)
}

// Drain reads and closes a response body so the connection is reused.
func Drain(resp *http.Response) {
	if resp != nil && resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
	}
}
