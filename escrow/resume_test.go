package escrow

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// cutReader gives its text, then fails as a dropped connection does.
type cutReader struct{ r io.Reader }

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestAFileCutShortIsKeptAndContinuedFromWhereItStopped(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Pieces of 4 bytes, so a file of 26 arrives as several.
		s := e.service(t, e.db, Options{UploadPiece: 4})
		const text = "abcdefghijklmnopqrstuvwxyz"
		files := map[string]string{"a.txt": text, "b.txt": "short"}
		d, err := s.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "dead-man=30d,7d", Manifest: entries(files)})
		if err != nil {
			t.Fatal(err)
		}
		before := e.blobCount(t)
		held := func(t *testing.T) (int64, string) {
			t.Helper()
			st, err := s.Upload(ctx, acme, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range st.Files {
				if f.Path == "a.txt" {
					return f.Received, f.ReceivedSHA256
				}
			}
			t.Fatal("a.txt is not in the upload status")
			return 0, ""
		}

		t.Run("a connection cut mid-file keeps every byte that arrived, with their digest", func(t *testing.T) {
			_, err := s.PutFile(ctx, acme, d.ID, "a.txt", &cutReader{strings.NewReader(text[:10])})
			wantKind(t, err, errs.Unavailable)
			if n, sum := held(t); n != 10 || sum != hexSum([]byte(text[:10])) {
				t.Fatalf("held %d bytes, sha256 %s; want 10 and the digest of %q", n, sum, text[:10])
			}
		})
		t.Run("a body that ends early keeps its bytes too", func(t *testing.T) {
			_, err := s.PutFileFrom(ctx, acme, d.ID, "a.txt", 10, strings.NewReader(text[10:13]))
			wantKind(t, err, errs.Invalid)
			if n, _ := held(t); n != 13 {
				t.Fatalf("held %d bytes, want 13", n)
			}
		})
		t.Run("continuing from another offset than the one held is refused, naming it", func(t *testing.T) {
			for _, off := range []int64{5, 20} {
				_, err := s.PutFileFrom(ctx, acme, d.ID, "a.txt", off, strings.NewReader(text[off:]))
				wantKind(t, err, errs.Conflict)
				if !strings.Contains(errs.Message(err), "offset 13") {
					t.Fatalf("the refusal %q does not say where to continue", errs.Message(err))
				}
			}
			if n, _ := held(t); n != 13 {
				t.Fatalf("held %d bytes after refusals, want 13", n)
			}
		})
		t.Run("a rest that makes the whole hash otherwise is refused, and nothing of the file stays", func(t *testing.T) {
			_, err := s.PutFileFrom(ctx, acme, d.ID, "a.txt", 13, strings.NewReader(strings.ToUpper(text[13:])))
			wantKind(t, err, errs.Invalid)
			if n, _ := held(t); n != 0 {
				t.Fatalf("held %d bytes, want 0", n)
			}
			if n := e.blobCount(t); n != before {
				t.Fatalf("blob store holds %d blobs, was %d", n, before)
			}
		})
		t.Run("offset 0 starts a file over", func(t *testing.T) {
			if _, err := s.PutFile(ctx, acme, d.ID, "a.txt", &cutReader{strings.NewReader("zzzzzz")}); !errs.Is(err, errs.Unavailable) {
				t.Fatalf("err = %v", err)
			}
			if _, err := s.PutFile(ctx, acme, d.ID, "a.txt", &cutReader{strings.NewReader(text[:9])}); !errs.Is(err, errs.Unavailable) {
				t.Fatalf("err = %v", err)
			}
			if n, sum := held(t); n != 9 || sum != hexSum([]byte(text[:9])) {
				t.Fatalf("held %d bytes (%s), want the 9 of the second try", n, sum)
			}
		})
		t.Run("the rest completes the file, whose pieces stay its ciphertext as they arrived", func(t *testing.T) {
			st, err := s.PutFileFrom(ctx, acme, d.ID, "a.txt", 9, strings.NewReader(text[9:]))
			if err != nil || !st.Done || st.Received != int64(len(text)) {
				t.Fatalf("finishing = %+v, %v", st, err)
			}
			if _, err := s.PutFile(ctx, acme, d.ID, "b.txt", strings.NewReader("short")); err != nil {
				t.Fatal(err)
			}
			// a.txt: 9 bytes in three pieces, then 17 in five; b.txt in two.
			if n := e.blobCount(t); n != before+10 {
				t.Fatalf("blob store holds %d blobs, want %d: the files' pieces and nothing else", n, before+10)
			}
			if _, err := s.Commit(ctx, acme, d.ID); err != nil {
				t.Fatal(err)
			}
			f, err := s.Open(ctx, acme, d.ID, "a.txt")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil || string(b) != text {
				t.Fatalf("read back %q, %v", b, err)
			}
		})
		t.Run("an abandoned upload takes its pieces with it", func(t *testing.T) {
			d2, err := s.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(map[string]string{"c.txt": text})})
			if err != nil {
				t.Fatal(err)
			}
			base := e.blobCount(t)
			if _, err := s.PutFile(ctx, acme, d2.ID, "c.txt", &cutReader{strings.NewReader(text[:12])}); !errs.Is(err, errs.Unavailable) {
				t.Fatalf("err = %v", err)
			}
			if n := e.blobCount(t); n != base+3 {
				t.Fatalf("blob store holds %d blobs, want %d (three pieces)", n, base+3)
			}
			if err := s.Abort(ctx, acme, d2.ID); err != nil {
				t.Fatal(err)
			}
			if n := e.blobCount(t); n != base {
				t.Fatalf("blob store holds %d blobs after abort, want %d", n, base)
			}
		})
	})
}

// failingStore fails its failAt-th Put (counting from 1) and those after.
type failingStore struct {
	blob.Store
	mu     sync.Mutex
	puts   int
	failAt int
}

func (f *failingStore) Put(ctx context.Context, r io.Reader, want blob.Digest) (blob.Info, error) {
	f.mu.Lock()
	f.puts++
	fail := f.puts >= f.failAt
	f.mu.Unlock()
	if fail {
		io.Copy(io.Discard, io.LimitReader(r, 3)) // fail mid-piece, as a store going away does
		return blob.Info{}, errs.E(errs.Unavailable, "the blob store went away")
	}
	return f.Store.Put(ctx, r, want)
}

func TestAStoreFailingMidFileKeepsThePiecesStoredBeforeIt(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		failing := &failingStore{Store: e.blobs, failAt: 4}
		e.blobs = failing
		s := e.service(t, e.db, Options{UploadPiece: 4})
		const text = "abcdefghijklmnopqrstuvwxyz"
		d, err := s.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "on=2099-01-01", Manifest: entries(map[string]string{"a.txt": text})})
		if err != nil {
			t.Fatal(err)
		}
		base := e.blobCount(t)

		_, err = s.PutFile(ctx, acme, d.ID, "a.txt", strings.NewReader(text))
		wantKind(t, err, errs.Unavailable)
		st, err := s.Upload(ctx, acme, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Files[0].Received; got != 12 {
			t.Fatalf("the server holds %d bytes; want the three pieces stored before the failure (12)", got)
		}
		if n := e.blobCount(t); n != base+3 {
			t.Fatalf("the store holds %d blobs; want the %d before and three pieces", n, base)
		}

		failing.mu.Lock()
		failing.failAt = 1 << 30
		failing.mu.Unlock()
		if _, err := s.PutFileFrom(ctx, acme, d.ID, "a.txt", 12, strings.NewReader(text[12:])); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(ctx, acme, d.ID); err != nil {
			t.Fatal(err)
		}
		f, err := s.Open(ctx, acme, d.ID, "a.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if b, err := io.ReadAll(f); err != nil || string(b) != text {
			t.Fatalf("read back %q, %v", b, err)
		}
	})
}

// overlapStore holds each Put but the last of a file of pieces open,
// once it has read everything, until the next Put starts, and records how
// many Puts ran at once. Without pipelining the next never starts: the
// Put then fails at a deadline instead of waiting for ever.
type overlapStore struct {
	blob.Store
	pieces  int
	mu      sync.Mutex
	puts    int
	running int
	most    int
	started map[int]chan struct{}
}

func (o *overlapStore) startedChan(k int) chan struct{} {
	if o.started[k] == nil {
		o.started[k] = make(chan struct{})
	}
	return o.started[k]
}

func (o *overlapStore) Put(ctx context.Context, r io.Reader, want blob.Digest) (blob.Info, error) {
	o.mu.Lock()
	o.puts++
	k := o.puts
	o.running++
	o.most = max(o.most, o.running)
	close(o.startedChan(k))
	next := o.startedChan(k + 1)
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.running--
		o.mu.Unlock()
	}()
	b, err := io.ReadAll(r)
	if err != nil {
		return blob.Info{}, err
	}
	if k < o.pieces {
		select {
		case <-next:
		case <-time.After(30 * time.Second):
			return blob.Info{}, errs.E(errs.Unavailable, "piece %d: the next piece never started while this one was stored", k)
		}
	}
	return o.Store.Put(ctx, bytes.NewReader(b), want)
}

func TestTheNextPieceIsEncryptedWhileTheStoreKeepsTheLastAndNoMoreAtOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := &overlapStore{Store: e.blobs, pieces: 7, started: map[int]chan struct{}{}}
		e.blobs = o
		s := e.service(t, e.db, Options{UploadPiece: 4})
		const text = "abcdefghijklmnopqrstuvwxyz" // seven pieces
		d, err := s.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "on=2099-01-01", Manifest: entries(map[string]string{"a.txt": text})})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutFile(ctx, acme, d.ID, "a.txt", strings.NewReader(text)); err != nil {
			t.Fatal(err)
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.puts != 7 || o.most != 2 {
			t.Fatalf("%d Puts, at most %d at once; want 7, never more than 2 at once", o.puts, o.most)
		}
	})
}
