package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

var errStopped = errors.New("the writer stopped")

// recordingWriter keeps what it is given and the largest single write.
type recordingWriter struct {
	bytes.Buffer
	largest int
	after   int // fail once more than after bytes were written, when > 0
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.after > 0 && w.Len()+len(p) > w.after {
		return 0, errStopped
	}
	w.largest = max(w.largest, len(p))
	return w.Buffer.Write(p)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// signallingReader closes reached once at bytes were read from r.
type signallingReader struct {
	r       io.Reader
	read    int
	at      int
	reached chan struct{}
}

func (s *signallingReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if s.read < s.at && s.read+n >= s.at {
		close(s.reached)
	}
	s.read += n
	return n, err
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestCopyHashingCopiesAndHashesTheSameBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"an empty source", 0},
		{"one byte", 1},
		{"a source one byte short of the first block", firstCopyBlock - 1},
		{"a source exactly the first block", firstCopyBlock},
		{"a source one byte past the first block", firstCopyBlock + 1},
		{"a source that fills every block more than once", copyBlocks*copyBlock*2 + 7},
	} {
		t.Run(tc.name+" is copied whole and hashed whole", func(t *testing.T) {
			data := pattern(tc.size)
			var out recordingWriter
			h := sha256.New()
			n, err := CopyHashing(&out, iotest.HalfReader(bytes.NewReader(data)), h)
			want := sha256.Sum256(data)
			if err != nil || n != int64(tc.size) || !bytes.Equal(out.Bytes(), data) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("copied %d of %d, equal %v, sum ok %v, err %v", n, tc.size, bytes.Equal(out.Bytes(), data), bytes.Equal(h.Sum(nil), want[:]), err)
			}
		})
	}
	t.Run("a large source reaches the writer in blocks of a MiB, however the reader splits it", func(t *testing.T) {
		var out recordingWriter
		if _, err := CopyHashing(&out, iotest.OneByteReader(bytes.NewReader(pattern(3*copyBlock))), sha256.New()); err != nil {
			t.Fatal(err)
		}
		if out.largest != copyBlock {
			t.Fatalf("largest write %d bytes; want %d", out.largest, copyBlock)
		}
	})
	t.Run("a writer that waits on its disk does not stop the reading", func(t *testing.T) {
		// The first write waits until the source was read two blocks
		// further: with reading and writing on one goroutine it would
		// wait forever.
		readAhead := make(chan struct{})
		src := &signallingReader{r: bytes.NewReader(pattern(6 * copyBlock)), at: firstCopyBlock + 2*copyBlock, reached: readAhead}
		first := true
		dst := writerFunc(func(p []byte) (int, error) {
			if first {
				first = false
				select {
				case <-readAhead:
				case <-time.After(10 * time.Second):
					return 0, errors.New("the source was not read while the writer waited")
				}
			}
			return len(p), nil
		})
		if n, err := CopyHashing(dst, src, sha256.New()); err != nil || n != 6*copyBlock {
			t.Fatalf("copied %d, %v", n, err)
		}
	})
	t.Run("a hash holding a state goes on from it", func(t *testing.T) {
		data := pattern(2*copyBlock + 5)
		h := sha256.New()
		h.Write(data[:1000])
		state, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
		resumed := sha256.New()
		resumed.(encoding.BinaryUnmarshaler).UnmarshalBinary(state)
		if _, err := CopyHashing(io.Discard, bytes.NewReader(data[1000:]), resumed); err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(data); !bytes.Equal(resumed.Sum(nil), want[:]) {
			t.Fatal("the resumed hash is not the whole content's")
		}
	})
	t.Run("a writer that stops ends the copy with its error", func(t *testing.T) {
		_, err := CopyHashing(&recordingWriter{after: 600 << 10}, bytes.NewReader(make([]byte, 4<<20)), sha256.New())
		if !errors.Is(err, errStopped) {
			t.Fatalf("err = %v, want %v", err, errStopped)
		}
	})
	t.Run("a reader that fails ends the copy with its error, after copying and hashing what it gave", func(t *testing.T) {
		boom := errors.New("connection reset")
		data := pattern(300 << 10)
		var out recordingWriter
		h := sha256.New()
		n, err := CopyHashing(&out, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), h)
		want := sha256.Sum256(data)
		if !errors.Is(err, boom) || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("err = %v (want %v), copied %d of %d, sum ok %v", err, boom, n, len(data), bytes.Equal(h.Sum(nil), want[:]))
		}
	})
}
