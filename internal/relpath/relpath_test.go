package relpath_test

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name, path string
		ok         bool
		says       string
	}{
		{"a nested relative path is accepted", "src/main.c", true, ""},
		{"a single file name is accepted", "README", true, ""},
		{"a name with dots inside is accepted", "a/..b/c..", true, ""},
		{"non-ASCII letters are accepted", "spec/Übersicht.pdf", true, ""},
		{"an element of 255 bytes is accepted", strings.Repeat("x", 255), true, ""},
		{"a path of 1024 bytes is accepted", strings.Repeat("abcdefg/", 127) + "abcdefgh", true, ""},
		{"an empty path is refused", "", false, "empty"},
		{"a longer path is refused", strings.Repeat("abcdefg/", 128) + "x", false, "longer than 1024"},
		{"an overlong element is refused", strings.Repeat("x", 256), false, "longer than 255"},
		{"invalid UTF-8 is refused", "a\xffb", false, "not UTF-8"},
		{"a NUL byte is refused", "a\x00b", false, "control character"},
		{"a newline is refused", "a\nb", false, "control character"},
		{"DEL is refused", "a\x7fb", false, "control character"},
		{"a C1 control is refused", "a\u009bb", false, "control character"},
		{"a right-to-left override is refused", "invoice\u202Efdp.key", false, "bidirectional"},
		{"a backslash is refused", `a\b`, false, "backslash"},
		{"an absolute path is refused", "/etc/passwd", false, "absolute"},
		{"a leading parent is refused", "../x", false, "leaves its directory"},
		{"a parent inside is refused", "src/../../etc", false, "leaves its directory"},
		{"a parent alone is refused", "..", false, "leaves its directory"},
		{"a dot element is refused", "./x", false, `write "x"`},
		{"a double slash is refused", "a//b", false, `write "a/b"`},
		{"a trailing slash is refused", "a/", false, `write "a"`},
		{"the directory itself is refused", ".", false, "directory itself"},
		{"a dot and a slash are refused", "./", false, "directory itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := relpath.Check(tt.path)
			if (err == nil) != tt.ok {
				t.Fatalf("Check(%q) = %v, want ok=%v", tt.path, err, tt.ok)
			}
			if err == nil {
				return
			}
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("kind = %v, want invalid", errs.KindOf(err))
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Check(%q) = %q, want it to say %q", tt.path, err, tt.says)
			}
		})
	}
}

// FuzzCheck holds every accepted path to what the callers rely on: joined
// to a directory it stays inside, it is already clean, and it names a file
// that reads as written.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs", "a\x00", "a//b", "ok.txt", "a/./b", ".", "a\\b", "x/\u202e", "a/..b", strings.Repeat("y", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if relpath.Check(p) != nil {
			return
		}
		if !filepath.IsLocal(p) || path.Clean(p) != p || path.IsAbs(p) {
			t.Fatalf("accepted %q, which is not a clean local path", p)
		}
		if j := path.Join("/root", p); !strings.HasPrefix(j, "/root/") {
			t.Fatalf("accepted %q, which joins to %q", p, j)
		}
		if len(p) > relpath.MaxLen || !utf8.ValidString(p) || strings.ContainsAny(p, "\\\x00") {
			t.Fatalf("accepted %q", p)
		}
		for _, el := range strings.Split(p, "/") {
			if el == "" || el == "." || el == ".." || len(el) > relpath.MaxElementLen {
				t.Fatalf("accepted %q with element %q", p, el)
			}
		}
		for _, r := range p {
			if r < 0x20 || 0x7f <= r && r <= 0x9f || r == 0x202E || r == 0x2067 {
				t.Fatalf("accepted %q with control %U", p, r)
			}
		}
	})
}
