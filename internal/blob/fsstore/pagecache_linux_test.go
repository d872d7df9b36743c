package fsstore_test

import (
	"bytes"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
)

// residentPages counts the pages of the file at path that are in the page
// cache.
func residentPages(t *testing.T, path string) (resident, total int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	pages := (len(m) + os.Getpagesize() - 1) / os.Getpagesize()
	vec := make([]byte, pages)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, pages
}

func TestALargeBlobLeavesThePageCacheOnceOnDisk(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	// On tmpfs the page cache is the file itself: nothing can be dropped.
	onTmpfs := fs.Type == unix.TMPFS_MAGIC
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		size     int
		resident bool
	}{
		{"a blob of 16 MiB is dropped from the page cache", 16 << 20, onTmpfs},
		{"a blob of 1 MiB stays in the page cache", 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte(tc.name), tc.size/len(tc.name)+1)[:tc.size]
			info, err := s.Put(t.Context(), bytes.NewReader(data), "")
			if err != nil {
				t.Fatal(err)
			}
			resident, total := residentPages(t, s.Path(info.Digest))
			if tc.resident && resident < total || !tc.resident && resident > total/8 {
				t.Fatalf("%d of its %d pages are in the page cache (on tmpfs: %v)", resident, total, onTmpfs)
			}
			got, err := os.ReadFile(s.Path(info.Digest))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
			}
		})
	}
}
