package blob

import (
	"hash"
	"io"
)

// The blocks CopyHashing reads into: the first is small, so a small blob
// costs little memory; the others are large, so a large blob costs few
// system calls and hand-offs between goroutines (docs/benchmarks.md,
// "Ingest: the disk half").
const (
	firstCopyBlock = 64 << 10
	copyBlock      = 1 << 20
	copyBlocks     = 4
)

// CopyHashing copies src to dst while another goroutine writes the same
// bytes into h, so hashing and writing run on two cores. Each block read
// is handed to the hasher before dst writes it: dst must not change what
// it is given, as io.Writer promises. It holds at most copyBlocks blocks
// (about 3 MiB), whatever the size of src. It stops at the first error of
// either side and returns it with how many bytes it read; h holds those
// bytes when it returns, after an error too. h may hold a state already
// (a file resumed).
func CopyHashing(dst io.Writer, src io.Reader, h hash.Hash) (int64, error) {
	free := make(chan []byte, copyBlocks)
	full := make(chan []byte, copyBlocks)
	hashed := make(chan struct{})
	go func() {
		for b := range full {
			h.Write(b)
			free <- b[:cap(b)]
		}
		close(hashed)
	}()
	made := 0
	next := func() []byte {
		select {
		case b := <-free:
			return b
		default:
		}
		if made == copyBlocks {
			return <-free
		}
		made++
		if made == 1 {
			return make([]byte, firstCopyBlock)
		}
		return make([]byte, copyBlock)
	}
	var n int64
	var err error
	for err == nil {
		buf := next()
		k, rerr := io.ReadFull(src, buf)
		if k == 0 {
			free <- buf
		} else {
			n += int64(k)
			full <- buf[:k]
			if _, werr := dst.Write(buf[:k]); werr != nil {
				err = werr
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if err == nil {
			err = rerr
		}
	}
	close(full)
	<-hashed
	return n, err
}
