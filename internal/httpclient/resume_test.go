package httpclient_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// cutAfter answers with the whole length announced and stops after n
// bytes, as a replica killed mid-download does.
func cutAfter(w http.ResponseWriter, content []byte, from, n int) {
	w.Header().Set("Content-Length", strconv.Itoa(len(content)-from))
	if from > 0 {
		w.Header().Set("Content-Range", "bytes "+strconv.Itoa(from)+"-"+strconv.Itoa(len(content)-1)+"/"+strconv.Itoa(len(content)))
		w.WriteHeader(http.StatusPartialContent)
	}
	w.Write(content[from : from+n])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

func TestADownloadCutShortIsPickedUpWhereItStopped(t *testing.T) {
	content := bytes.Repeat([]byte("afterlife "), 100_000) // 1 MB
	etag := `"digest"`
	for _, tc := range []struct {
		name string
		// serve answers the nth request (from 0) with the Range it got.
		serve   func(w http.ResponseWriter, r *http.Request, nth int)
		wantErr bool
		// ranges the client must have asked for, after the first request
		wantRanges []string
	}{
		{
			name: "a transfer cut twice resumes twice with Range and If-Range",
			serve: func(w http.ResponseWriter, r *http.Request, nth int) {
				w.Header().Set("ETag", etag)
				switch nth {
				case 0:
					cutAfter(w, content, 0, 300_000)
				case 1:
					cutAfter(w, content, 300_000, 200_000)
				default:
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
				}
			},
			wantRanges: []string{"bytes=300000- " + etag, "bytes=500000- " + etag},
		},
		{
			name: "a store that ignores Range sends it all again and the part already read is skipped",
			serve: func(w http.ResponseWriter, r *http.Request, nth int) {
				if nth == 0 {
					cutAfter(w, content, 0, 400_000)
				}
				w.Write(content)
			},
			wantRanges: []string{"bytes=400000-"},
		},
		{
			name: "a 503 while resuming is retried after Retry-After",
			serve: func(w http.ResponseWriter, r *http.Request, nth int) {
				w.Header().Set("ETag", etag)
				switch nth {
				case 0:
					cutAfter(w, content, 0, 1000)
				case 1:
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusServiceUnavailable)
				default:
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
				}
			},
			wantRanges: []string{"bytes=1000- " + etag, "bytes=1000- " + etag},
		},
		{
			name: "a download that is cut every time fails instead of looping for ever",
			serve: func(w http.ResponseWriter, r *http.Request, nth int) {
				from := 0
				if rg := r.Header.Get("Range"); rg != "" {
					from, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
				}
				cutAfter(w, content, from, 10)
			},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var ranges []string
			n := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				nth := n
				n++
				if nth > 0 {
					ranges = append(ranges, strings.TrimSpace(r.Header.Get("Range")+" "+r.Header.Get("If-Range")))
				}
				mu.Unlock()
				tc.serve(w, r, nth)
			}))
			defer srv.Close()
			c := httpclient.New(httpclient.Options{WaitMin: time.Millisecond, WaitMax: 10 * time.Millisecond})
			req, err := retryablehttp.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/blob", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := httpclient.ResumingBody(c, req, resp)
			got, err := io.ReadAll(body)
			body.Close()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("read %d bytes without an error", len(got))
				}
				return
			}
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("read %d of %d bytes (identical: %v): %v", len(got), len(content), bytes.Equal(got, content), err)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(ranges, "|") != strings.Join(tc.wantRanges, "|") {
				t.Errorf("resumed with %q; want %q", ranges, tc.wantRanges)
			}
		})
	}
}
