// Package cab writes Microsoft Cabinet archives, the container fwupd and
// the LVFS carry firmware in: one folder, stored uncompressed, with each
// data block's checksum, as the format's specification ([MS-CAB]) lays
// out. It writes archives only; fwupd, gcab and the tests read them.
package cab

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// File is one member of an archive. Open is called once, when the
// archive's bytes reach the file, and must yield exactly Size bytes.
type File struct {
	Name     string // relative, '\' or '/' separated; at most 255 bytes
	Size     int64
	Modified time.Time
	Open     func() (io.ReadCloser, error)
}

const (
	headerSize = 36
	folderSize = 8
	fileSize   = 16
	dataSize   = 8
	blockMax   = 0x8000 // uncompressed bytes per data block
	maxBlocks  = 0xffff
	nameIsUTF8 = 0x80 // _A_NAME_IS_UTF
	archive    = 0x20 // _A_ARCH
)

// Size is the length of the archive Write makes of files.
func Size(files []File) int64 {
	n := int64(headerSize + folderSize)
	var total int64
	for _, f := range files {
		n += fileSize + int64(len(f.Name)) + 1
		total += f.Size
	}
	blocks := (total + blockMax - 1) / blockMax
	return n + blocks*dataSize + total
}

// Write writes files to w as one cabinet and returns the bytes written.
func Write(w io.Writer, files []File) (int64, error) {
	if len(files) == 0 || len(files) > 0xffff {
		return 0, errs.E(errs.Invalid, "cab: want 1 to 65535 files, have %d", len(files))
	}
	var total int64
	for _, f := range files {
		if f.Name == "" || len(f.Name) > 255 {
			return 0, errs.E(errs.Invalid, "cab: file name %.32q: want 1 to 255 bytes", f.Name)
		}
		for _, c := range []byte(f.Name) {
			if c == 0 {
				return 0, errs.E(errs.Invalid, "cab: file name %q holds a NUL", f.Name)
			}
		}
		if f.Size < 0 || f.Size > 0xffffffff {
			return 0, errs.E(errs.TooLarge, "cab: %s: %d bytes, at most 4 GiB", f.Name, f.Size)
		}
		total += f.Size
	}
	blocks := (total + blockMax - 1) / blockMax
	if blocks > maxBlocks || Size(files) > 0xffffffff {
		return 0, errs.E(errs.TooLarge, "cab: %d bytes do not fit one uncompressed cabinet folder", total)
	}
	bw := bufio.NewWriter(w)
	cw := &countWriter{w: bw}
	le := binary.LittleEndian

	// CFHEADER
	h := make([]byte, headerSize)
	copy(h, "MSCF")
	le.PutUint32(h[8:], uint32(Size(files)))
	le.PutUint32(h[16:], headerSize+folderSize) // first CFFILE
	h[24], h[25] = 3, 1                         // version 1.3
	le.PutUint16(h[26:], 1)                     // folders
	le.PutUint16(h[28:], uint16(len(files)))
	cw.Write(h)

	// CFFOLDER: where the data blocks start, how many, stored (0).
	dataStart := int64(headerSize + folderSize)
	for _, f := range files {
		dataStart += fileSize + int64(len(f.Name)) + 1
	}
	fo := make([]byte, folderSize)
	le.PutUint32(fo[0:], uint32(dataStart))
	le.PutUint16(fo[4:], uint16(blocks))
	cw.Write(fo)

	// CFFILE entries.
	var off int64
	for _, f := range files {
		e := make([]byte, fileSize)
		le.PutUint32(e[0:], uint32(f.Size))
		le.PutUint32(e[4:], uint32(off))
		d, t := dosTime(f.Modified)
		le.PutUint16(e[10:], d)
		le.PutUint16(e[12:], t)
		attr := uint16(archive)
		if !isASCII(f.Name) {
			attr |= nameIsUTF8
		}
		le.PutUint16(e[14:], attr)
		cw.Write(e)
		cw.Write(append([]byte(f.Name), 0))
		off += f.Size
	}

	// CFDATA blocks over the files' bytes, in order.
	src := &members{files: files}
	defer src.close()
	buf := make([]byte, blockMax)
	for i := int64(0); i < blocks; i++ {
		n, err := io.ReadFull(src, buf[:min(blockMax, total-i*blockMax)])
		if err != nil {
			return cw.n, fmt.Errorf("cab: read members: %w", err)
		}
		hd := make([]byte, dataSize)
		le.PutUint16(hd[4:], uint16(n))
		le.PutUint16(hd[6:], uint16(n))
		le.PutUint32(hd[0:], checksum(hd[4:8], checksum(buf[:n], 0)))
		cw.Write(hd)
		cw.Write(buf[:n])
	}
	if src.extra() {
		return cw.n, errs.E(errs.Invalid, "cab: a member is longer than its declared size")
	}
	if cw.err != nil {
		return cw.n, fmt.Errorf("cab: write: %w", cw.err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("cab: write: %w", err)
	}
	return cw.n, nil
}

// checksum is the CFDATA checksum: the block's bytes XORed as
// little-endian 32-bit words, a short tail folded in the format's own
// order, seeded with the checksum of the sizes that follow it.
func checksum(b []byte, seed uint32) uint32 {
	c := seed
	for len(b) >= 4 {
		c ^= binary.LittleEndian.Uint32(b)
		b = b[4:]
	}
	var t uint32
	switch len(b) {
	case 3:
		t = uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	case 2:
		t = uint32(b[0])<<8 | uint32(b[1])
	case 1:
		t = uint32(b[0])
	}
	return c ^ t
}

func dosTime(t time.Time) (date, clock uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	clock = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, clock
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// members reads the files one after another, each limited to its size.
type members struct {
	files []File
	cur   io.ReadCloser
	left  int64
	i     int
}

func (m *members) Read(p []byte) (int, error) {
	for m.left == 0 {
		if m.cur != nil {
			if m.extra() {
				return 0, errs.E(errs.Invalid, "cab: %s is longer than its declared size", m.files[m.i-1].Name)
			}
			m.cur.Close()
			m.cur = nil
		}
		if m.i == len(m.files) {
			return 0, io.EOF
		}
		f := m.files[m.i]
		m.i++
		if f.Size == 0 {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return 0, fmt.Errorf("cab: open %s: %w", f.Name, err)
		}
		m.cur, m.left = rc, f.Size
	}
	if int64(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := m.cur.Read(p)
	m.left -= int64(n)
	if err == io.EOF && m.left > 0 {
		return n, errs.E(errs.Invalid, "cab: %s is shorter than its declared size", m.files[m.i-1].Name)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// extra reports whether the current member has bytes beyond its size.
func (m *members) extra() bool {
	if m.cur == nil {
		return false
	}
	var b [1]byte
	n, _ := m.cur.Read(b[:])
	return n > 0
}

func (m *members) close() {
	if m.cur != nil {
		m.cur.Close()
	}
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}
