package clustertest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// balancer is the load balancer in front of the replicas: round-robin,
// and a request whose replica refuses the connection moves to the next
// replica when that is safe (an idempotent method, no body byte sent).
// Anything else that fails is a 502, which clients retry.
type balancer struct {
	URL      string
	backends []string // host:port of each replica
	next     atomic.Uint64
	base     *http.Transport
	srv      *http.Server

	badGateway atomic.Int64 // 502s answered
	rerouted   atomic.Int64 // tries moved off a replica that refused
	served     []atomic.Int64

	gate atomic.Pointer[uploadGate]
}

// uploadGate holds the first deposit file upload that has sent at least
// after bytes: it reports which replica receives it, then waits for
// release, so a test can kill exactly that replica mid-upload.
type uploadGate struct {
	after   int64
	hit     chan int
	release chan struct{}
	once    sync.Once
}

func newUploadGate(after int64) *uploadGate {
	return &uploadGate{after: after, hit: make(chan int, 1), release: make(chan struct{})}
}

func startBalancer(t *testing.T, ln net.Listener, backends []string) *balancer {
	b := &balancer{
		URL:      "http://" + ln.Addr().String(),
		backends: backends,
		served:   make([]atomic.Int64, len(backends)),
		base: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 0, // long polls
		},
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "replica" // the transport picks the replica
			pr.Out.Host = ""
			pr.SetXForwarded()
		},
		Transport:     b,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			b.badGateway.Add(1)
			t.Logf("balancer: %s %s: 502: %v", r.Method, r.URL.Path, err)
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
		},
	}
	b.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	t.Cleanup(func() {
		b.srv.Close()
		b.base.CloseIdleConnections()
	})
	return b
}

// RoundTrip sends the request to the next replica in turn, skipping those
// that refuse connections while that is safe.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	start := int(b.next.Add(1))
	var body *countingBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &countingBody{r: req.Body, b: b, path: req.URL.Path, method: req.Method}
	}
	var lastErr error
	for i := range b.backends {
		idx := (start + i) % len(b.backends)
		out := req.Clone(req.Context())
		out.URL.Host = b.backends[idx]
		if body != nil {
			body.backend.Store(int64(idx))
			out.Body = io.NopCloser(body) // a refused try must not close the client's body
		}
		resp, err := b.base.RoundTrip(out)
		if err == nil {
			b.served[idx].Add(1)
			return resp, nil
		}
		lastErr = err
		if !errors.Is(err, syscall.ECONNREFUSED) || !idempotent(req.Method) || (body != nil && body.n.Load() > 0) {
			break
		}
		b.rerouted.Add(1)
	}
	return nil, lastErr
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// countingBody counts what the replica read of a request body, and holds
// a deposit upload at the armed gate.
type countingBody struct {
	r            io.Reader
	b            *balancer
	path, method string
	n            atomic.Int64
	backend      atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	total := c.n.Add(int64(n))
	if g := c.b.gate.Load(); g != nil && c.method == http.MethodPut &&
		strings.HasPrefix(c.path, "/v1/deposits/") && strings.Contains(c.path, "/files/") && total >= g.after {
		g.once.Do(func() {
			g.hit <- int(c.backend.Load())
			<-g.release
		})
	}
	return n, err
}
