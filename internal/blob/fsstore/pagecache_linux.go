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

// startWriteback asks the kernel to start writing f's bytes from off on,
// n of them, to disk without waiting for it: the fsync at the end of a
// large blob then waits for the last few MiB, not for all of it.
// It is advice: an error changes nothing stored (the fsync still syncs).
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
