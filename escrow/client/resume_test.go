package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/afterlife-oss/afterlife/escrow/client"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// cutBody passes n bytes of a request body, then fails as a dropped
// connection does; it counts what the server read.
type cutBody struct {
	r    io.ReadCloser
	left int64
	read *int64
	mu   *sync.Mutex
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > c.left && c.left > 0 {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	if c.left > 0 {
		c.left -= int64(n)
	}
	c.mu.Lock()
	*c.read += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *cutBody) Close() error { return c.r.Close() }

func TestAnUploadResumesWithinAFileAndChecksWhatTheServerHolds(t *testing.T) {
	const size = 3 << 20
	ctx := context.Background()
	content := make([]byte, size)
	rand.Read(content)
	newTree := func(t *testing.T) (dir, file string) {
		dir = t.TempDir()
		file = filepath.Join(dir, "fw", "image.bin")
		os.MkdirAll(filepath.Dir(file), 0o755)
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir, file
	}
	type put struct {
		query string
	}
	watch := func(s *server, first func(r *http.Request)) (*[]put, *int64) {
		var puts []put
		var read int64
		s.put = func(r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/fw/image.bin") {
				return
			}
			if len(puts) == 0 && first != nil {
				first(r)
			}
			puts = append(puts, put{query: r.URL.RawQuery})
			if _, ok := r.Body.(*cutBody); !ok {
				r.Body = &cutBody{r: r.Body, left: -1, read: &read, mu: &s.mu}
			} else {
				r.Body.(*cutBody).read = &read
			}
		}
		return &puts, &read
	}
	readBack := func(t *testing.T, s *server, id string) {
		t.Helper()
		f, err := s.svc.Open(ctx, principal.Principal{Role: principal.Admin}, id, "fw/image.bin")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(b, content) {
			t.Fatalf("read back %d bytes (%v); want the file", len(b), err)
		}
	}
	opts := func(t *testing.T, dir string) client.DepositOptions {
		return client.DepositOptions{Product: "demo-cam", Policy: "dead-man=30d,7d", Paths: []string{dir},
			StateFile: filepath.Join(t.TempDir(), "state.json"), ReceiptFile: filepath.Join(t.TempDir(), "receipt.json")}
	}

	t.Run("a connection cut mid-file continues from the bytes that arrived, in the same run", func(t *testing.T) {
		s := newServer(t)
		dir, _ := newTree(t)
		puts, read := watch(s, func(r *http.Request) {
			r.Body = &cutBody{r: r.Body, left: 1 << 20, read: new(int64), mu: &s.mu}
		})
		res, err := s.client("acme").Deposit(ctx, opts(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		if len(*puts) != 2 || (*puts)[0].query != "" || (*puts)[1].query != "offset=1048576" {
			t.Fatalf("PUTs = %+v; want the whole file, then its rest from offset 1048576", *puts)
		}
		if *read != size {
			t.Fatalf("the server read %d bytes in both tries, want each of the %d once", *read, size)
		}
		readBack(t, s, res.Deposit)
	})
	t.Run("a beginning the server holds that is not the file's is not built on", func(t *testing.T) {
		s := newServer(t)
		dir, _ := newTree(t)
		garbage := bytes.Repeat([]byte{0xEE}, 1<<20)
		puts, _ := watch(s, func(r *http.Request) {
			// A broken server: what it keeps is not what was sent.
			r.Body = &cutBody{r: io.NopCloser(io.MultiReader(bytes.NewReader(garbage), r.Body)), left: 1 << 20, read: new(int64), mu: &s.mu}
		})
		res, err := s.client("acme").Deposit(ctx, opts(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		if len(*puts) != 2 || (*puts)[1].query != "" {
			t.Fatalf("PUTs = %+v; want the file sent whole again", *puts)
		}
		readBack(t, s, res.Deposit)
	})
	t.Run("a file changed while it is sent is refused by the client and the server", func(t *testing.T) {
		s := newServer(t)
		// Larger than every socket buffer between client and server (at
		// most 36 MiB here), so the client cannot have read the last byte
		// when the server starts reading.
		const big = 80 << 20
		dir := t.TempDir()
		file := filepath.Join(dir, "fw", "image.bin")
		os.MkdirAll(filepath.Dir(file), 0o755)
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(content)
		f.Truncate(big)
		f.Close()
		watch(s, func(r *http.Request) {
			f, err := os.OpenFile(file, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.WriteAt([]byte{0xFF}, big-1)
			f.Close()
		})
		_, err = s.client("acme").Deposit(ctx, opts(t, dir))
		if !errs.Is(err, errs.Invalid) || !strings.Contains(errs.Message(err), "changed after it was hashed") {
			t.Fatalf("err = %v; want the file named as changed", err)
		}
	})
}
