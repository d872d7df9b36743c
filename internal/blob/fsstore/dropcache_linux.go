package fsstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCached asks the kernel to forget f's pages, which fsync made clean.
// It is advice: an error changes nothing stored.
func dropCached(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
