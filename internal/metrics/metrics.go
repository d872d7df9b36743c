// Package metrics serves the server's Prometheus metrics: on the API's
// address or on one of their own, and behind a bearer token of their own
// when asked (docs/metrics.md); and, on an address of their own when asked,
// Go's runtime profiles.
package metrics

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Handler serves g's metrics; with a tokenFile it answers only requests
// that bear that file's token (API tokens do not count).
func Handler(g prometheus.Gatherer, tokenFile string) (http.Handler, error) {
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	if tokenFile == "" {
		return h, nil
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "metrics: token file")
	}
	token := []byte(strings.TrimSpace(string(b)))
	if len(token) == 0 {
		return nil, errs.E(errs.Invalid, "metrics: token file %s is empty", tokenFile)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics need the bearer token of --metrics-token-file", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}

// Listen serves h as GET /metrics alone on addr until stop is called.
func Listen(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("metrics served", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
