package manifest

import (
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestValidatePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		ok   bool
	}{
		{"a nested relative path is accepted", "src/main.c", true},
		{"a single file name is accepted", "README", true},
		{"an empty path is refused", "", false},
		{"an absolute path is refused", "/etc/passwd", false},
		{"a parent element is refused", "src/../../etc", false},
		{"a leading parent is refused", "../x", false},
		{"a dot element is refused", "./x", false},
		{"a NUL byte is refused", "a\x00b", false},
		{"a backslash is refused", `a\b`, false},
		{"a double slash is refused", "a//b", false},
		{"a trailing slash is refused", "a/", false},
		{"invalid UTF-8 is refused", "a\xffb", false},
		{"a control character is refused", "a\nb", false},
		{"an overlong element is refused", strings.Repeat("x", 256), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePath(tt.path)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidatePath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
			}
			if err != nil && !errs.Is(err, errs.Invalid) {
				t.Fatalf("kind = %v, want invalid", errs.KindOf(err))
			}
		})
	}
}

func TestValidateLink(t *testing.T) {
	tests := []struct {
		name, link, target string
		ok                 bool
	}{
		{"a sibling target is accepted", "a/b", "c", true},
		{"a target one level up inside the tree is accepted", "a/b", "../c", true},
		{"a target escaping the tree is refused", "a/b", "../../c", false},
		{"an absolute target is refused", "a/b", "/etc/passwd", false},
		{"a target resolving to the root is refused", "a/b", "..", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateLink(tt.link, tt.target); (err == nil) != tt.ok {
				t.Fatalf("ValidateLink(%q, %q) = %v, want ok=%v", tt.link, tt.target, err, tt.ok)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	lim := Limits{MaxFileSize: 100, MaxDepositSize: 150, MaxFiles: 3}
	file := func(p string, size int64) Entry { return Entry{Path: p, Size: size, SHA256: hexA, Kind: Other} }
	t.Run("files within limits are accepted and sorted", func(t *testing.T) {
		out, err := Validate([]Entry{file("b", 10), file("a", 10)}, lim)
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Path != "a" || out[1].Path != "b" {
			t.Fatalf("entries not sorted: %v", out)
		}
	})
	tests := []struct {
		name    string
		entries []Entry
		kind    errs.Kind
	}{
		{"an empty manifest is refused", nil, errs.Invalid},
		{"a file over the per-file limit is refused", []Entry{file("a", 101)}, errs.TooLarge},
		{"files over the per-deposit limit are refused", []Entry{file("a", 100), file("b", 60)}, errs.TooLarge},
		{"too many files are refused", []Entry{file("a", 1), file("b", 1), file("c", 1), file("d", 1)}, errs.TooLarge},
		{"a duplicate path is refused", []Entry{file("a", 1), file("a", 1)}, errs.Invalid},
		{"a file that is also a directory is refused", []Entry{file("a", 1), file("a/b", 1)}, errs.Invalid},
		{"a bad digest is refused", []Entry{{Path: "a", SHA256: "xyz", Kind: Other}}, errs.Invalid},
		{"an unknown kind is refused", []Entry{{Path: "a", SHA256: hexA, Kind: "secret"}}, errs.Invalid},
		{"a link with a digest is refused", []Entry{{Path: "a", SHA256: hexA, Kind: Other, Link: "b"}}, errs.Invalid},
		{"an escaping link is refused", []Entry{{Path: "a", Kind: Other, Link: "../b"}}, errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate(tt.entries, lim)
			if !errs.Is(err, tt.kind) {
				t.Fatalf("err = %v, want kind %v", err, tt.kind)
			}
		})
	}
}

func TestDigestIgnoresOrder(t *testing.T) {
	a := []Entry{{Path: "a", SHA256: hexA, Kind: Other}, {Path: "b", SHA256: hexA, Kind: Spec}}
	b := []Entry{a[1], a[0]}
	if Digest(a) != Digest(b) {
		t.Fatal("digest depends on entry order")
	}
	b[0].Kind = Other
	if Digest(a) == Digest(b) {
		t.Fatal("digest ignores a kind change")
	}
}

func TestInferKind(t *testing.T) {
	tests := []struct {
		path string
		want Kind
	}{
		{"docs/board.pdf", Spec},
		{"datasheet.PDF", Spec},
		{"src/main.c", Source},
		{"firmware/Makefile", Source},
		{"include/cam.h", Source},
		{"toolchain/gcc.tar.xz", Toolchain},
		{"keys/signing.pem", Keys},
		{"unlock.key", Keys},
		{"blob.bin", Other},
	}
	for _, tt := range tests {
		t.Run(tt.path+" is "+string(tt.want), func(t *testing.T) {
			if got := InferKind(tt.path); got != tt.want {
				t.Fatalf("InferKind(%q) = %s, want %s", tt.path, got, tt.want)
			}
		})
	}
}

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs", "a\x00", "a//b", "ok.txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePath(p) != nil {
			return
		}
		// An accepted path never escapes and never carries NUL.
		if strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
			t.Fatalf("accepted %q", p)
		}
		for _, el := range strings.Split(p, "/") {
			if el == ".." || el == "." || el == "" {
				t.Fatalf("accepted %q with element %q", p, el)
			}
		}
	})
}
