package cab_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/fwupd/cab"
)

func member(name string, b []byte) cab.File {
	return cab.File{Name: name, Size: int64(len(b)), Modified: time.Date(2026, 12, 7, 10, 11, 12, 0, time.UTC),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

// pattern is n bytes that differ from block to block, so a misplaced block
// shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

// gcab checks every data block's checksum when it extracts, so extracting
// what we wrote checks them too.
func TestGcabListsAndExtractsWhatWeWrite(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string][]byte
	}{
		{"one small file", map[string][]byte{"firmware.bin": []byte("hello")}},
		{"a file over several data blocks with a ragged tail", map[string][]byte{"firmware.bin": pattern(3*0x8000 + 3), "firmware.metainfo.xml": []byte("<component/>\n")}},
		{"files that share a block, one empty, one with a UTF-8 name", map[string][]byte{"a.bin": pattern(100), "empty": {}, "notes-é.txt": pattern(0x8000 - 1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var files []cab.File
			var names []string
			for n := range c.files {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				files = append(files, member(n, c.files[n]))
			}
			var buf bytes.Buffer
			n, err := cab.Write(&buf, files)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(buf.Len()) || n != cab.Size(files) {
				t.Fatalf("wrote %d bytes, buffer %d, Size says %d", n, buf.Len(), cab.Size(files))
			}
			archive := filepath.Join(dir, "x.cab")
			if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("gcab", "--list", archive).CombinedOutput()
			if err != nil {
				t.Fatalf("gcab --list: %v\n%s", err, out)
			}
			for _, name := range names {
				if !strings.Contains(string(out), name) {
					t.Fatalf("gcab --list does not name %s:\n%s", name, out)
				}
			}
			into := filepath.Join(dir, "out")
			if out, err := exec.Command("gcab", "--extract", "--directory", into, archive).CombinedOutput(); err != nil {
				t.Fatalf("gcab --extract: %v\n%s", err, out)
			}
			for name, want := range c.files {
				got, err := os.ReadFile(filepath.Join(into, name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: extracted %d bytes differ from the %d written", name, len(got), len(want))
				}
			}
		})
	}
}

func TestAMemberThatIsNotItsDeclaredSizeIsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		f    cab.File
	}{
		{"a shorter member", cab.File{Name: "a", Size: 10, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("abc")), nil }}},
		{"a longer member", cab.File{Name: "a", Size: 2, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("abc")), nil }}},
		{"a name with a NUL", member("a\x00b", []byte("x"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := cab.Write(io.Discard, []cab.File{c.f}); !errs.Is(err, errs.Invalid) {
				t.Fatalf("err = %v, want Invalid", err)
			}
		})
	}
}
