package blob

import (
	"hash"
	"io"
	"sync/atomic"
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
// bytes into h: the caller's goroutine reads, one goroutine hashes and
// another writes, so reading, hashing and writing a large blob run on
// separate cores, and a write that waits on the disk does not stop the
// reading. Each block read goes to the hasher and to dst at once: dst
// must not change what it is given, as io.Writer promises, and is called
// from a goroutine of its own (one at a time, in order). It holds at most
// copyBlocks blocks (about 3 MiB), whatever the size of src. It stops at
// the first error of either side and returns it with how many bytes it
// read; h holds those bytes when it returns, after an error too. h may
// hold a state already (a file resumed).
func CopyHashing(dst io.Writer, src io.Reader, h hash.Hash) (int64, error) {
	free := make(chan *copyBuf, copyBlocks)
	toHash := make(chan *copyBuf, copyBlocks)
	toWrite := make(chan *copyBuf, copyBlocks)
	hashed, written := make(chan struct{}), make(chan struct{})
	go func() {
		for b := range toHash {
			h.Write(b.p)
			b.release(free)
		}
		close(hashed)
	}()
	var werr error // the writer's, read once written is closed
	var stopped atomic.Bool
	go func() {
		for b := range toWrite {
			if werr == nil {
				if _, err := dst.Write(b.p); err != nil {
					werr = err
					stopped.Store(true)
				}
			}
			b.release(free)
		}
		close(written)
	}()
	made := 0
	next := func() *copyBuf {
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
			return &copyBuf{p: make([]byte, firstCopyBlock)}
		}
		return &copyBuf{p: make([]byte, copyBlock)}
	}
	var n int64
	var err error
	for !stopped.Load() {
		b := next()
		k, rerr := io.ReadFull(src, b.p[:cap(b.p)])
		if k == 0 {
			free <- b
		} else {
			n += int64(k)
			b.p = b.p[:k]
			b.refs.Store(2)
			toHash <- b
			toWrite <- b
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(toHash)
	close(toWrite)
	<-hashed
	<-written
	if werr != nil {
		err = werr
	}
	return n, err
}

// copyBuf is a block of CopyHashing, free again once both the hasher and
// the writer are done with it.
type copyBuf struct {
	p    []byte
	refs atomic.Int32
}

func (b *copyBuf) release(free chan<- *copyBuf) {
	if b.refs.Add(-1) == 0 {
		free <- b
	}
}
