package httpapi

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestAFastRouteAnswersBeforeGinAndHandsBackWhatItDoesNotServe(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	a := New(Options{Metrics: reg, Auth: tokens{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	v1 := a.V1()
	v1.GET("/hot", Op{Summary: "hot", Public: true}, func(c *gin.Context) error {
		return errs.E(errs.Invalid, "the full stack answered")
	})
	v1.Fast(http.MethodGet, "/hot", func(w http.ResponseWriter, r *http.Request) (int, bool) {
		if r.URL.RawQuery != "ok" {
			return 0, false
		}
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, true
	})
	serve := func(method, target string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		name, method, target string
		hdr                  []string
		want                 int
	}{
		{"what the fast route serves is answered there", "GET", "/v1/hot?ok", nil, 204},
		{"what it hands back gets the full stack's error", "GET", "/v1/hot?no", nil, 400},
		{"a request with a token goes through the full stack", "GET", "/v1/hot?ok", []string{"Authorization", "Bearer nope"}, 401},
		{"another method goes through the full stack", "POST", "/v1/hot?ok", nil, 405},
		{"a malformed request id goes through the full stack", "GET", "/v1/hot?ok", []string{"X-Request-Id", "a b"}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := serve(tc.method, tc.target, tc.hdr...); w.Code != tc.want {
				t.Fatalf("%d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
	t.Run("errors carry a request id", func(t *testing.T) {
		w := serve("GET", "/v1/hot?no")
		if id := w.Header().Get("X-Request-Id"); id == "" || !strings.Contains(w.Body.String(), id) {
			t.Fatalf("X-Request-Id %q, body %s", id, w.Body)
		}
	})
	t.Run("a well-formed request id is echoed", func(t *testing.T) {
		if w := serve("GET", "/v1/hot?ok", "X-Request-Id", "trace-1"); w.Header().Get("X-Request-Id") != "trace-1" {
			t.Fatalf("X-Request-Id %q", w.Header().Get("X-Request-Id"))
		}
	})
	t.Run("fast answers are counted like the others", func(t *testing.T) {
		count := func() float64 {
			var m dto.Metric
			if err := a.requests.WithLabelValues("GET", "/v1/hot", "204").Write(&m); err != nil {
				t.Fatal(err)
			}
			return m.GetCounter().GetValue()
		}
		before := count()
		serve("GET", "/v1/hot?ok")
		if got := count(); got != before+1 {
			t.Fatalf("requests_total{status=204} went from %v to %v", before, got)
		}
	})
	t.Run("one fast answer in FastLogEvery is logged", func(t *testing.T) {
		logs.Reset()
		for range FastLogEvery {
			serve("GET", "/v1/hot?ok")
		}
		if n := strings.Count(logs.String(), "sampled_1_in="); n != 1 {
			t.Fatalf("%d sampled lines in %d fast answers:\n%s", n, FastLogEvery, logs.String())
		}
	})
}
