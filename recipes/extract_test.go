package recipes

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// tarEntry describes one entry of a hand-made archive.
type tarEntry struct {
	name, link, body string
	typ              byte
	size             int64 // when not len(body)
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		if typ != tar.TypeReg {
			size = 0
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Size: size, Mode: 0o644, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil && e.size == 0 {
				t.Fatal(err)
			}
		}
	}
	tw.Flush()
	return buf.Bytes()
}

// assertConfined fails if anything exists in base besides root's subtree
// and the sentinel, or if a symlink inside root resolves outside it.
func assertConfined(t testing.TB, base string) {
	t.Helper()
	root := filepath.Join(base, "root")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case p == base, p == filepath.Join(base, "outside"), p == filepath.Join(base, "outside", "sentinel"):
			return nil
		case p != root && !strings.HasPrefix(p, root+string(filepath.Separator)):
			t.Errorf("Extract wrote outside its directory: %s", p)
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				realRoot, _ := filepath.EvalSymlinks(root)
				if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
					t.Errorf("symlink %s resolves outside: %s", p, real)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(base, "outside", "sentinel"))
	if err != nil || string(b) != "untouched" {
		t.Errorf("sentinel changed: %q, %v", b, err)
	}
}

func extractBase(t testing.TB) string {
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "outside", "sentinel"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestExtractRefusesMaliciousArchives(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		limits  ExtractLimits
		kind    errs.Kind
	}{
		{"a path with .. is refused", []tarEntry{{name: "../outside/sentinel", body: "owned"}}, ExtractLimits{}, errs.Invalid},
		{"a nested path with .. is refused", []tarEntry{{name: "a/../../outside/x", body: "owned"}}, ExtractLimits{}, errs.Invalid},
		{"an absolute path is refused", []tarEntry{{name: "/tmp/owned", body: "owned"}}, ExtractLimits{}, errs.Invalid},
		{"an absolute symlink is refused", []tarEntry{{name: "l", link: "/etc", typ: tar.TypeSymlink}}, ExtractLimits{}, errs.Invalid},
		{"a symlink climbing out is refused", []tarEntry{{name: "a/l", link: "../../outside", typ: tar.TypeSymlink}}, ExtractLimits{}, errs.Invalid},
		{"a symlink climbing after a name is refused", []tarEntry{
			{name: "sub/a", link: "..", typ: tar.TypeSymlink},
			{name: "sub/x", link: "a/..", typ: tar.TypeSymlink}, // sub/a/.. is root/.. on disk
		}, ExtractLimits{}, errs.Invalid},
		{"writing through a symlink is refused", []tarEntry{
			{name: "l", link: "d", typ: tar.TypeSymlink},
			{name: "l/f", body: "x"},
		}, ExtractLimits{}, errs.Invalid},
		{"a symlink replacing a directory is refused", []tarEntry{
			{name: "d/f", body: "x"},
			{name: "d", link: ".", typ: tar.TypeSymlink},
		}, ExtractLimits{}, errs.Invalid},
		{"a hard link to a path outside is refused", []tarEntry{{name: "h", link: "../outside/sentinel", typ: tar.TypeLink}}, ExtractLimits{}, errs.Invalid},
		{"a hard link to a file not in the archive is refused", []tarEntry{{name: "h", link: "nope", typ: tar.TypeLink}}, ExtractLimits{}, errs.Invalid},
		{"a device file is refused", []tarEntry{{name: "dev", typ: tar.TypeChar}}, ExtractLimits{}, errs.Invalid},
		{"a fifo is refused", []tarEntry{{name: "fifo", typ: tar.TypeFifo}}, ExtractLimits{}, errs.Invalid},
		{"a path given twice is refused", []tarEntry{{name: "f", body: "1"}, {name: "./f", body: "2"}}, ExtractLimits{}, errs.Invalid},
		{"too many entries are refused", []tarEntry{{name: "a"}, {name: "b"}, {name: "c"}}, ExtractLimits{MaxEntries: 2}, errs.TooLarge},
		{"too many bytes are refused", []tarEntry{{name: "a", body: "12345"}, {name: "b", body: "67890"}}, ExtractLimits{MaxBytes: 8}, errs.TooLarge},
		{"a truncated file is refused", []tarEntry{{name: "a", body: "12", size: 1000}}, ExtractLimits{}, errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := extractBase(t)
			err := Extract(bytes.NewReader(makeTar(t, tt.entries...)), filepath.Join(base, "root"), tt.limits)
			if !errs.Is(err, tt.kind) {
				t.Errorf("err = %v (%v), want %v", err, errs.KindOf(err), tt.kind)
			}
			assertConfined(t, base)
		})
	}
}

func TestExtractAcceptsLinksThatStayInside(t *testing.T) {
	base := extractBase(t)
	dir := filepath.Join(base, "root")
	data := makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir},
		tarEntry{name: "lib/libx.a", body: "archive"},
		tarEntry{name: "src/a/link", link: "../../lib/libx.a", typ: tar.TypeSymlink},
		tarEntry{name: "src/up", link: "..", typ: tar.TypeSymlink},
		tarEntry{name: "src/hard", link: "lib/libx.a", typ: tar.TypeLink},
		tarEntry{name: "empty/", typ: tar.TypeDir},
	)
	if err := Extract(bytes.NewReader(data), dir, ExtractLimits{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"src/a/link", "src/hard", "src/up/lib/libx.a"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != "archive" {
			t.Errorf("%s = %q, %v", p, b, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty dir: %v", err)
	}
	assertConfined(t, base)
}
