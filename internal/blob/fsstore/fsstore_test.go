package fsstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/blobtest"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
)

func newStore(t *testing.T) blob.Store {
	s, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, newStore)
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("laid out by digest")
	info, err := s.Put(t.Context(), bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	h := info.Digest.Hex()
	want := filepath.Join(dir, "sha256", h[:2], h)
	if s.Path(info.Digest) != want {
		t.Errorf("Path = %s, want %s", s.Path(info.Digest), want)
	}
	if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, data) {
		t.Errorf("file %s holds %q, %v", want, got, err)
	}
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil || len(tmp) != 0 {
		t.Errorf("tmp holds %v, %v after a put; want it empty", tmp, err)
	}
}

func TestFailedPutsLeaveNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(t.Context(), bytes.NewReader([]byte("x")), blob.FromBytes([]byte("y")))
	if err == nil {
		t.Fatal("Put with the wrong digest succeeded")
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp holds %v after a rejected put", tmp)
	}
}

func TestWalkIgnoresStrayFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sha256", "ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sha256/ab/README", "sha256/notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = s.Walk(t.Context(), func(i blob.Info) error {
		t.Errorf("Walk listed %v", i)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkPut(b *testing.B) {
	s, err := fsstore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	blobtest.BenchmarkPut(b, s, 256<<20)
}
