package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FastFunc serves the ordinary requests of a hot public route outside
// gin's middleware stack: no context, no request id, no per-request
// allocation of its own. It answers and returns the status it wrote and
// true, or writes nothing and returns false to hand the request to the
// route's regular handler, which then answers it through the full stack
// (request id, JSON error, an access-log line). Errors, overload (503 with
// Retry-After) and anything unusual take that way.
type FastFunc func(w http.ResponseWriter, r *http.Request) (status int, ok bool)

// FastLogEvery is the sampling of the access log on fast routes: one
// request in FastLogEvery is logged (at info level, with the key
// sampled_1_in); every request handed to the regular handler is logged
// as usual.
const FastLogEvery = 1024

type fastRoute struct {
	method, path string
	f            FastFunc
	seen         atomic.Uint64
	// Resolved once, so counting a request looks up no label.
	statuses [4]fastStatus
	latency  prometheus.Observer
}

type fastStatus struct {
	code     int
	requests prometheus.Counter
}

// Fast serves the route method path (registered with GET on this router
// too, with its Op) with f first when the API is served through
// API.ServeHTTP. The regular handler stays: it answers what f hands back,
// and serves the route when the gin engine is used directly.
func (r *Router) Fast(method, path string, f FastFunc) {
	a := r.api
	fr := &fastRoute{method: method, path: r.prefix + path, f: f}
	for i, code := range []int{http.StatusOK, http.StatusNoContent, http.StatusNotModified} {
		fr.statuses[i].code = code
		if a.requests != nil {
			fr.statuses[i].requests = a.requests.WithLabelValues(method, fr.path, strconv.Itoa(code))
		}
	}
	if a.latency != nil {
		fr.latency = a.latency.WithLabelValues(method, fr.path)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fast == nil {
		a.fast = map[string]*fastRoute{}
	}
	a.fast[fr.path] = fr
}

// ServeHTTP serves the API: fast routes first (see Router.Fast), then the
// gin engine. Routes are registered before serving starts.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if fr := a.fast[r.URL.Path]; fr != nil && r.Method == fr.method && fastEligible(w, r) {
		start := time.Now()
		if status, ok := fr.f(w, r); ok {
			a.observeFast(fr, r, status, start)
			return
		}
	}
	a.engine.ServeHTTP(w, r)
}

// fastEligible leaves to the full stack the requests that carry a token
// (it may be refused) and echoes a well-formed X-Request-Id; a malformed
// one goes the regular way, which replaces it.
func fastEligible(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := r.Header["Authorization"]; ok {
		return false
	}
	if v, ok := r.Header["X-Request-Id"]; ok {
		if len(v) != 1 || !validRequestID(v[0]) {
			return false
		}
		w.Header()["X-Request-Id"] = v
	}
	return true
}

// validRequestID is requestIDPattern without the regexp.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (a *API) observeFast(fr *fastRoute, r *http.Request, status int, start time.Time) {
	dur := time.Since(start)
	if a.requests != nil {
		counted := false
		for i := range fr.statuses {
			if fr.statuses[i].code == status && fr.statuses[i].requests != nil {
				fr.statuses[i].requests.Inc()
				counted = true
				break
			}
		}
		if !counted {
			a.requests.WithLabelValues(r.Method, fr.path, strconv.Itoa(status)).Inc()
		}
		fr.latency.Observe(dur.Seconds())
	}
	if fr.seen.Add(1)%FastLogEvery != 1 || !a.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("took", dur),
		slog.String("remote", r.RemoteAddr),
		slog.Int("sampled_1_in", FastLogEvery),
	)
}
