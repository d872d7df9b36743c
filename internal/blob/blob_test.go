package blob_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestParseDigest(t *testing.T) {
	good := "sha256:" + strings.Repeat("0a", 32)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"a sha256 digest in lowercase hex is accepted", good, true},
		{"the digest of nothing is accepted", string(blob.FromBytes(nil)), true},
		{"uppercase hex is refused", strings.ToUpper(good[:7]) + strings.ToUpper(good[7:]), false},
		{"uppercase hex after the prefix is refused", "sha256:" + strings.Repeat("0A", 32), false},
		{"a missing prefix is refused", strings.Repeat("0a", 32), false},
		{"another algorithm is refused", "sha512:" + strings.Repeat("0a", 32), false},
		{"a short digest is refused", good[:len(good)-1], false},
		{"a long digest is refused", good + "0", false},
		{"a path is refused", "sha256:../../../../etc/passwd" + strings.Repeat("a", 35), false},
		{"the empty string is refused", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := blob.ParseDigest(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseDigest(%q) = %q, %v; want ok=%v", tt.in, d, err, tt.ok)
			}
			if err != nil && !errs.Is(err, errs.Invalid) {
				t.Fatalf("ParseDigest(%q): kind %s, want invalid", tt.in, errs.KindOf(err))
			}
		})
	}
}

func TestFromBytesIsTheKnownSHA256(t *testing.T) {
	const empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := blob.FromBytes(nil); got != empty {
		t.Fatalf("FromBytes(nil) = %s, want %s", got, empty)
	}
	if got := blob.FromBytes(nil).Hex(); got != empty[7:] {
		t.Fatalf("Hex = %s", got)
	}
}

func TestReadVerifiedFailsOnlyAtTheEndOfCorruptContent(t *testing.T) {
	s, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("what the vendor deposited")
	info, err := s.Put(t.Context(), bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	// Claim the content belongs to another digest: the store serves those
	// bytes, and ReadVerified must refuse them.
	other := blob.FromBytes([]byte("something else"))
	if err := copyFile(s.Path(info.Digest), s, other); err != nil {
		t.Fatal(err)
	}
	rc, err := blob.ReadVerified(t.Context(), s, other)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, blob.ErrCorrupt) || errs.KindOf(err) != errs.Internal {
		t.Fatalf("read = %v, want ErrCorrupt of kind internal", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %q before the check, want %q", got, data)
	}
}

// copyFile stores the file at src as if its digest were d.
func copyFile(src string, s *fsstore.Store, d blob.Digest) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.Path(d)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(s.Path(d), b, 0o444)
}
