package fsstore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestABlobBeingWrittenHasItsWritebackStartedEveryFewMiB(t *testing.T) {
	type span struct{ off, n int64 }
	cases := []struct {
		name   string
		writes []int // sizes, in order
		want   []span
	}{
		{"a small blob is left to its fsync", []int{1 << 20, 4 << 20}, nil},
		{"one span a writebackEvery", []int{4 << 20, 4 << 20, 4 << 20, 4 << 20, 1 << 20},
			[]span{{0, 8 << 20}, {8 << 20, 8 << 20}}},
		{"a write past the mark starts all that is written", []int{5 << 20, 5 << 20, 5 << 20, 5 << 20},
			[]span{{0, 10 << 20}, {10 << 20, 10 << 20}}},
		{"one large write", []int{20 << 20}, []span{{0, 20 << 20}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var got []span
			w := &writingBack{f: f, start: func(_ *os.File, off, n int64) { got = append(got, span{off, n}) }}
			var total int64
			for _, n := range c.writes {
				k, err := w.Write(make([]byte, n))
				if err != nil || k != n {
					t.Fatalf("Write(%d) = %d, %v", n, k, err)
				}
				total += int64(k)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("writeback started for %v, want %v", got, c.want)
			}
			if fi, err := f.Stat(); err != nil || fi.Size() != total {
				t.Errorf("the file holds %v bytes (%v), want %d", fi.Size(), err, total)
			}
		})
	}
}
