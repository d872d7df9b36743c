package manifest

import (
	"os"
	"path/filepath"
	"slices"
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

func TestCheckTree(t *testing.T) {
	file := func(p string) Entry { return Entry{Path: p, Size: 1, SHA256: hexA, Kind: Other} }
	link := func(p, target string) Entry { return Entry{Path: p, Link: target, Kind: Other} }
	tests := []struct {
		name    string
		entries []Entry
		ok      bool
	}{
		{"links within the tree are accepted", []Entry{file("c"), link("a/b/m", "../../c"), link("a/n", "b/m")}, true},
		{"a link through a link to a directory inside the tree is accepted", []Entry{file("d/x"), link("a/dl", "../d"), link("a/b/l", "../dl/x")}, true},
		{"a link escaping through another link is refused", []Entry{file("c"), link("a/b/m", "../../c"), link("a/b/l", "m/../../../x")}, false},
		{"a link escaping through a chain of links is refused", []Entry{link("a/b/c/up", "../.."), link("a/b/c/d/up2", "../up"), link("a/b/c/d/l", "up2/../../x")}, false},
		{"a loop of links is refused", []Entry{link("a", "b"), link("b", "a")}, false},
		{"a link to itself is refused", []Entry{link("a/self", "self")}, false},
		{"names equal after case folding are refused", []Entry{file("README"), file("readme")}, false},
		{"directory names equal after case folding are refused", []Entry{file("Src/a.c"), file("src/b.c")}, false},
		{"a file and a directory equal after case folding are refused", []Entry{file("keys"), file("KEYS/signing.key")}, false},
		{"names equal after NFC normalisation are refused", []Entry{file("caf\u00e9.txt"), file("cafe\u0301.txt")}, false},
		{"names equal after folding ß are refused", []Entry{file("stra\u00dfe"), file("STRASSE")}, false},
		{"distinct names in one directory are accepted", []Entry{file("src/a.c"), file("src/b.c"), file("docs/a.c")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTree(tt.entries)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckTree = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errs.Is(err, errs.Invalid) {
				t.Fatalf("kind = %v, want invalid", errs.KindOf(err))
			}
			if _, verr := Validate(tt.entries, DefaultLimits); (verr == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", verr, tt.ok)
			}
		})
	}
}

func TestValidatePathRefusesBidiControls(t *testing.T) {
	for _, r := range []rune{0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C} {
		p := "keys/invoice" + string(r) + "fdp.key"
		if err := ValidatePath(p); !errs.Is(err, errs.Invalid) {
			t.Errorf("ValidatePath(%q) = %v, want invalid", p, err)
		}
	}
}

// FuzzCheckTree lays every accepted manifest out as real files and links
// and asks the kernel's view (os.Root, which refuses a path that escapes
// through links) whether any link leads out.
func FuzzCheckTree(f *testing.F) {
	f.Add("a/b/m ../../c\na/b/l m/../../../x")
	f.Add("a b\nb a")
	f.Add("d/x\na/dl ../d\na/b/l ../dl/x")
	f.Add("c\na/b/m ../../c\na/n b/m")
	f.Add("c/f\na/b/m ../../c\na/b/l m/../../../x")
	parent := f.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "afterlife-fuzz-"); err == nil {
			f.Cleanup(func() { _ = os.RemoveAll(dir) })
			parent = dir
		}
	}
	top := filepath.Join(parent, "tree")
	f.Fuzz(func(t *testing.T, spec string) {
		var entries []Entry
		for line := range strings.SplitSeq(spec, "\n") {
			p, target, _ := strings.Cut(line, " ")
			e := Entry{Path: p, Link: target, Kind: Other}
			if target == "" {
				e.Size, e.SHA256 = 1, hexA
			}
			entries = append(entries, e)
			if len(entries) == 50 {
				break
			}
		}
		out, err := Validate(entries, DefaultLimits)
		if err != nil || !slices.ContainsFunc(out, Entry.IsLink) {
			return // nothing that could escape
		}
		if err := os.RemoveAll(top); err != nil {
			t.Fatal(err)
		}
		// The deposit sits two levels down, so that an escape lands on
		// directories that exist.
		root := filepath.Join(top, "x", "y", "root")
		for _, e := range out {
			p := filepath.Join(root, filepath.FromSlash(e.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return // a case-insensitive or odd name the file system refuses
			}
			if e.IsLink() {
				err = os.Symlink(e.Link, p)
			} else {
				err = os.WriteFile(p, nil, 0o644)
			}
			if err != nil {
				return
			}
		}
		r, err := os.OpenRoot(root)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for _, e := range out {
			if !e.IsLink() {
				continue
			}
			if _, err := r.Stat(e.Path); err != nil && strings.Contains(err.Error(), "escapes") {
				t.Fatalf("accepted %q → %q, which escapes: %v", e.Path, e.Link, err)
			}
			if _, err := r.Stat(e.Path + "/x"); err != nil && strings.Contains(err.Error(), "escapes") {
				t.Fatalf("accepted %q → %q, through which a path escapes: %v", e.Path, e.Link, err)
			}
		}
	})
}
