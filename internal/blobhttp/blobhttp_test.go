package blobhttp_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/blobhttp"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestServe(t *testing.T) {
	content := bytes.Repeat([]byte("afterlife firmware "), 5000)
	ctx := context.Background()
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mc := testenv.MinIO(t)
	bucket := mc.NewBucket(t, false)
	s3, err := s3store.New(ctx, mc.Config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	public := mc.Config(bucket)
	_, port, _ := strings.Cut(public.Endpoint, ":")
	public.PublicURL = "http://localhost:" + port
	s3public, err := s3store.New(ctx, public)
	if err != nil {
		t.Fatal(err)
	}
	for name, store := range map[string]blob.Store{"disk": fs, "s3": s3, "s3 with a public URL": s3public} {
		t.Run(name, func(t *testing.T) {
			info, err := store.Put(ctx, bytes.NewReader(content), "")
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := blobhttp.Serve(w, r, store, info.Digest, blobhttp.Options{Filename: "fw.bin"}); err != nil {
					http.Error(w, err.Error(), 500)
				}
			}))
			defer srv.Close()

			for _, tc := range []struct {
				name    string
				headers map[string]string
				status  int
				body    []byte
			}{
				{"a whole download has its length and digest", nil, 200, content},
				{"a range request gets the range", map[string]string{"Range": "bytes=10-19"}, 206, content[10:20]},
				{"a resume from the middle gets the rest", map[string]string{"Range": "bytes=50000-"}, 206, content[50000:]},
				{"a matching ETag is not sent again", map[string]string{"If-None-Match": `"` + info.Digest.Hex() + `"`}, 304, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req, _ := http.NewRequest("GET", srv.URL, nil)
					for k, v := range tc.headers {
						req.Header.Set(k, v)
					}
					resp, err := http.DefaultClient.Do(req) // follows the presigned redirect for S3
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					got, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != tc.status || !bytes.Equal(got, tc.body) {
						t.Fatalf("status %d, %d bytes; want %d, %d bytes", resp.StatusCode, len(got), tc.status, len(tc.body))
					}
				})
			}

			t.Run("only a store with a public URL redirects, to that URL", func(t *testing.T) {
				client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if name != "s3 with a public URL" {
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d; want 200 with the bytes streamed by the server", resp.StatusCode)
					}
					return
				}
				if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, public.PublicURL+"/") {
					t.Fatalf("status %d, Location %q; want 307 to %s/…", resp.StatusCode, loc, public.PublicURL)
				}
			})
		})
	}
}

// readFromRecorder stands between net/http's writer and gin's, as a probe:
// it counts the bytes that reach the connection through ReadFrom, the path
// net/http turns into sendfile(2).
type readFromRecorder struct {
	http.ResponseWriter
	mu       sync.Mutex
	readFrom int64
}

func (rr *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := rr.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	rr.mu.Lock()
	rr.readFrom += n
	rr.mu.Unlock()
	return n, err
}

func (rr *readFromRecorder) Unwrap() http.ResponseWriter { return rr.ResponseWriter }

func TestAFileBlobReachesTheConnectionZeroCopyThroughGin(t *testing.T) {
	content := bytes.Repeat([]byte("zero-copy firmware "), 100_000)
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	info, err := fs.Put(context.Background(), bytes.NewReader(content), "")
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.GET("/fw.bin", func(c *gin.Context) {
		if err := blobhttp.Serve(c.Writer, c.Request, fs, info.Digest, blobhttp.Options{Filename: "fw.bin"}); err != nil {
			c.String(500, err.Error())
		}
	})
	var last *readFromRecorder
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr := &readFromRecorder{ResponseWriter: w}
		mu.Lock()
		last = rr
		mu.Unlock()
		engine.ServeHTTP(rr, r)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name   string
		rng    string
		status int
		body   []byte
	}{
		{"a whole download is handed to the connection's ReadFrom", "", 200, content},
		{"a range is handed to it too, with its status", "bytes=1000-1999", 206, content[1000:2000]},
		{"a resume to the end is handed to it too", "bytes=1000000-", 206, content[1000000:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/fw.bin", nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tc.status || !bytes.Equal(got, tc.body) {
				t.Fatalf("status %d, %d bytes, %v; want %d, %d bytes", resp.StatusCode, len(got), err, tc.status, len(tc.body))
			}
			if etag := resp.Header.Get("ETag"); etag != `"`+info.Digest.Hex()+`"` {
				t.Errorf("ETag %q", etag)
			}
			mu.Lock()
			rr := last
			mu.Unlock()
			rr.mu.Lock()
			defer rr.mu.Unlock()
			if rr.readFrom != int64(len(tc.body)) {
				t.Fatalf("%d bytes went through ReadFrom; want all %d", rr.readFrom, len(tc.body))
			}
		})
	}
}
