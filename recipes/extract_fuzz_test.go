package recipes

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzBase is one extraction base per fuzzing process, on a memory
// filesystem when the machine has one (/dev/shm): making and removing a
// directory on disk cost milliseconds, more than the extraction, and held
// the fuzzer to a few inputs a second. Each input gets an empty root inside
// the base; outside/sentinel must survive every input.
func fuzzBase(f *testing.F) (base string, reset func(t *testing.T)) {
	parent := f.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "afterlife-fuzz-"); err == nil {
			f.Cleanup(func() { _ = os.RemoveAll(dir) })
			parent = dir
		}
	}
	base = filepath.Join(parent, "base")
	for _, d := range []string{base, filepath.Join(base, "outside")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "outside", "sentinel"), []byte("untouched"), 0o644); err != nil {
		f.Fatal(err)
	}
	root := filepath.Join(base, "root")
	return base, func(t *testing.T) {
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(makeTar(f,
		tarEntry{name: "a/b.txt", body: "hello"},
		tarEntry{name: "a/l", link: "b.txt", typ: tar.TypeSymlink},
		tarEntry{name: "h", link: "a/b.txt", typ: tar.TypeLink},
		tarEntry{name: "d/", typ: tar.TypeDir},
	))
	f.Add(makeTar(f, tarEntry{name: "../x", body: "x"}))
	f.Add(makeTar(f, tarEntry{name: "l", link: "..", typ: tar.TypeSymlink}, tarEntry{name: "l/x", body: "x"}))
	f.Add(makeTar(f, tarEntry{name: "s/a", link: "..", typ: tar.TypeSymlink}, tarEntry{name: "s/b", link: "a/..", typ: tar.TypeSymlink}))
	f.Add(makeTar(f, tarEntry{name: "h", link: "../outside/sentinel", typ: tar.TypeLink}))
	f.Add([]byte{})
	base, reset := fuzzBase(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		reset(t)
		_ = Extract(bytes.NewReader(data), filepath.Join(base, "root"), ExtractLimits{MaxBytes: 1 << 20, MaxEntries: 100})
		assertConfined(t, base)
	})
}

// FuzzExtractEntries fuzzes the archive's entries rather than its bytes:
// most byte mutations of a tar only break a header checksum, so
// FuzzExtract rarely reaches the path and link rules. Each line of spec is
// "KIND NAME [TARGET]" with KIND one of f (file), d (directory), s
// (symlink) or h (hard link).
func FuzzExtractEntries(f *testing.F) {
	for _, seed := range []string{
		"f a/b.txt\ns a/l b.txt\nh h a/b.txt\nd d/",
		"s l ..\nf l/x",
		"s s/a ..\ns s/b a/..\nf s/b/x",
		"d a\nd a/b\ns a/b/m ../../c\ns a/b/l m/../../../x\nf a/b/l/y",
		"s a .\ns a/b ..\nf a/b/outside/sentinel",
		"h h ../outside/sentinel",
		"s x ./../outside\nf x/sentinel",
	} {
		f.Add(seed)
	}
	base, reset := fuzzBase(f)
	f.Fuzz(func(t *testing.T, spec string) {
		var entries []tarEntry
		for line := range strings.SplitSeq(spec, "\n") {
			kind, rest, _ := strings.Cut(line, " ")
			name, target, _ := strings.Cut(rest, " ")
			e := tarEntry{name: name, link: target, body: "x"}
			switch kind {
			case "f":
				e.link = ""
			case "d":
				e.typ = tar.TypeDir
			case "s":
				e.typ = tar.TypeSymlink
			case "h":
				e.typ = tar.TypeLink
			default:
				continue
			}
			if len(entries) == 100 {
				break
			}
			entries = append(entries, e)
		}
		data, ok := tarOf(entries)
		if !ok {
			return
		}
		reset(t)
		_ = Extract(bytes.NewReader(data), filepath.Join(base, "root"), ExtractLimits{MaxBytes: 1 << 20, MaxEntries: 100})
		assertConfined(t, base)
	})
}

// tarOf is makeTar for inputs that may not form a tar at all.
func tarOf(entries []tarEntry) ([]byte, bool) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX}
		if e.typ != 0 {
			hdr.Typeflag = e.typ
		} else {
			hdr.Size = int64(len(e.body))
		}
		if tw.WriteHeader(hdr) != nil {
			return nil, false
		}
		if hdr.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				return nil, false
			}
		}
	}
	return buf.Bytes(), tw.Close() == nil
}
