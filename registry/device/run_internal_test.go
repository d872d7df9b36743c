package device

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestTheLongestRetryAfterOfACheckIsRemembered(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	rec := &retryAfterRecorder{}
	hc := rec.wrap(srv.Client())
	for range 3 {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := rec.get(); got != 120*time.Second {
		t.Fatalf("remembered %v, want the longest Retry-After, 2m0s", got)
	}
	rec.reset()
	if got := rec.get(); got != 0 {
		t.Fatalf("after reset %v", got)
	}
	o := RunOptions{Interval: time.Minute}
	o.defaults()
	if got := nextWait(o, 1, 120*time.Second, 0.5); got != 120*time.Second {
		t.Fatalf("the wait after a failed check with Retry-After 120 is %v", got)
	}
}
