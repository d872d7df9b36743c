package httpclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestOnlyWhatCanSucceedLaterIsRetried(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		code  int
		err   error
		retry bool
	}{
		{"a refused connection is retried", 0, errors.New("connection refused"), true},
		{"429 is retried", 429, nil, true},
		{"502 is retried", 502, nil, true},
		{"503 is retried", 503, nil, true},
		{"504 is retried", 504, nil, true},
		{"500 is not: it would fail again", 500, nil, false},
		{"404 is not", 404, nil, false},
		{"409 is not", 409, nil, false},
		{"200 is done", 200, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			if tc.code != 0 {
				resp = &http.Response{StatusCode: tc.code, Header: http.Header{}}
			}
			got, _ := CheckRetry(ctx, resp, tc.err)
			if got != tc.retry {
				t.Fatalf("retry = %v, want %v", got, tc.retry)
			}
		})
	}
}

func TestRetryAfterIsHonouredAndCapped(t *testing.T) {
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"3"}}}
	if d := Backoff(100*time.Millisecond, 10*time.Second, 1, resp); d != 3*time.Second {
		t.Fatalf("backoff %v, want the server's 3s", d)
	}
	if d := Backoff(100*time.Millisecond, 2*time.Second, 1, resp); d != 2*time.Second {
		t.Fatalf("backoff %v, want it capped at 2s", d)
	}
}

func TestTheClientRetriesUntilTheServerRecovers(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	resp, err := Standard(Options{WaitMin: time.Millisecond, WaitMax: 10 * time.Millisecond}).Get(srv.URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	Drain(resp)
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}
}

func TestATokenDoesNotFollowARedirectToAnotherPort(t *testing.T) {
	var seen atomic.Value
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusOK)
	}))
	defer store.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			t.Errorf("the API did not get the token")
		}
		http.Redirect(w, r, store.URL+"/presigned?X-Amz-Signature=abc", http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	req, _ := http.NewRequest("GET", api.URL+"/v1/blobs/x", nil)
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := Standard(Options{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp)
	if got, _ := seen.Load().(string); got != "" {
		t.Fatalf("the blob store on another port received the API token %q", got)
	}
}
