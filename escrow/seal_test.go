package escrow

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errPutEnded
	}
	return len(p), nil
}

func TestCopyHashedHashesWhatItCopiesOnAnotherGoroutine(t *testing.T) {
	for _, size := range []int{0, 1, 256<<10 - 1, 256 << 10, 256<<10 + 1, 3<<20 + 7} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		var out bytes.Buffer
		n, sum, err := copyHashed(&out, iotest.HalfReader(bytes.NewReader(data)))
		want := sha256.Sum256(data)
		if err != nil || n != int64(size) || !bytes.Equal(out.Bytes(), data) || !bytes.Equal(sum, want[:]) {
			t.Fatalf("%d bytes: copied %d, equal %v, sum ok %v, err %v", size, n, bytes.Equal(out.Bytes(), data), bytes.Equal(sum, want[:]), err)
		}
	}
	t.Run("a writer that stops ends the copy with its error", func(t *testing.T) {
		_, _, err := copyHashed(&failingWriter{after: 600 << 10}, bytes.NewReader(make([]byte, 4<<20)))
		if !errors.Is(err, errPutEnded) {
			t.Fatalf("err = %v, want errPutEnded", err)
		}
	})
	t.Run("a reader that fails ends the copy with its error", func(t *testing.T) {
		boom := errors.New("connection reset")
		_, _, err := copyHashed(io.Discard, io.MultiReader(bytes.NewReader(make([]byte, 300<<10)), iotest.ErrReader(boom)))
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
	})
}
