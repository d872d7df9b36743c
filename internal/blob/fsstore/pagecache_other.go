//go:build !linux

package fsstore

import "os"

// dropCached does nothing where the kernel takes no such advice.
func dropCached(*os.File) {}

// startWriteback does nothing where the kernel has no sync_file_range;
// the fsync at the end syncs the whole blob.
func startWriteback(*os.File, int64, int64) {}
