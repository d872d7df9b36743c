package farmclient_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder/farmclient"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/blobhttp"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// An input whose transfer is cut (the replica serving it stops) arrives
// whole: the agent's client resumes it with Range from the replica that
// answers next.
func TestAnInputCutShortIsFetchedWhole(t *testing.T) {
	store, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("toolchain "), 200_000) // 2 MB
	d := blob.FromBytes(content)
	if _, err := store.Put(t.Context(), bytes.NewReader(content), d); err != nil {
		t.Fatal(err)
	}
	var tries, ranged atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		if tries.Add(1) == 1 {
			// The first replica dies after 700 kB.
			w.Header().Set("Content-Length", "2000000")
			w.Header().Set("ETag", `"`+d.Hex()+`"`)
			w.Write(content[:700_000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		if err := blobhttp.Serve(w, r, store, d, blobhttp.Options{}); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	c := farmclient.New(srv.URL, "token", farmclient.Options{HTTP: httpclient.Options{WaitMin: time.Millisecond, WaitMax: 10 * time.Millisecond}})
	rc, err := c.Fetch(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("fetched %d of %d bytes (identical: %v): %v", len(got), len(content), bytes.Equal(got, content), err)
	}
	if tries.Load() != 2 || ranged.Load() != 1 {
		t.Errorf("%d requests, %d with Range; want the cut one and one resumed with Range", tries.Load(), ranged.Load())
	}
}
