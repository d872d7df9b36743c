package recipes

import (
	"archive/tar"
	"bytes"
	"path/filepath"
	"testing"
)

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
	f.Fuzz(func(t *testing.T, data []byte) {
		base := extractBase(t)
		_ = Extract(bytes.NewReader(data), filepath.Join(base, "root"), ExtractLimits{MaxBytes: 1 << 20, MaxEntries: 100})
		assertConfined(t, base)
	})
}
