package completeness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
)

// Limits bound what Unpack reads, against archives that expand without end.
type Limits struct {
	MaxBytes   int64 // all members together, after unpacking
	MaxMembers int
	MaxDepth   int // archives inside archives
}

// DefaultLimits suit a firmware image.
var DefaultLimits = Limits{MaxBytes: 2 << 30, MaxMembers: 100_000, MaxDepth: 4}

// Unpack turns one image file into its members: a gzip stream is
// decompressed, a tar or cpio (newc) archive yields its regular files, an
// ELF file its sections with content (as "name#.text"), each unpacked in
// turn; anything else is one member. squashfs and other formats stay one
// opaque member. Member paths are checked like every relative path
// (internal/relpath); an archive with a bad path is refused.
func Unpack(name string, data []byte, lim Limits) ([]Member, error) {
	u := &unpacker{lim: lim}
	if err := u.add(name, data, 0); err != nil {
		return nil, err
	}
	return u.out, nil
}

type unpacker struct {
	lim   Limits
	out   []Member
	bytes int64
}

func (u *unpacker) leaf(name string, data []byte) error {
	u.bytes += int64(len(data))
	if u.bytes > u.lim.MaxBytes {
		return errs.E(errs.TooLarge, "completeness: the image unpacks to more than %d bytes", u.lim.MaxBytes)
	}
	if len(u.out) >= u.lim.MaxMembers {
		return errs.E(errs.TooLarge, "completeness: the image has more than %d files", u.lim.MaxMembers)
	}
	u.out = append(u.out, Member{Path: name, Data: data})
	return nil
}

func (u *unpacker) add(name string, data []byte, depth int) error {
	if depth > u.lim.MaxDepth {
		return u.leaf(name, data)
	}
	switch {
	case len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return u.leaf(name, data)
		}
		plain, err := io.ReadAll(io.LimitReader(zr, u.lim.MaxBytes-u.bytes+1))
		if err != nil {
			return u.leaf(name, data)
		}
		if int64(len(plain)) > u.lim.MaxBytes-u.bytes {
			return errs.E(errs.TooLarge, "completeness: %s decompresses to more than %d bytes", name, u.lim.MaxBytes)
		}
		return u.add(Decompressed(name), plain, depth+1)
	case isTar(data):
		return u.tar(name, data, depth)
	case bytes.HasPrefix(data, []byte("070701")):
		return u.cpio(name, data, depth)
	case bytes.HasPrefix(data, []byte(elf.ELFMAG)):
		return u.elf(name, data)
	}
	return u.leaf(name, data)
}

func isTar(data []byte) bool {
	return len(data) >= 512 && bytes.Equal(data[257:262], []byte("ustar"))
}

func (u *unpacker) member(outer, inner string) (string, error) {
	inner = strings.TrimPrefix(path.Clean("/"+inner), "/")
	if err := relpath.Check(inner); err != nil {
		return "", errs.Wrap(errs.Invalid, err, "completeness: %s holds a bad path", outer)
	}
	return outer + "/" + inner, nil
}

func (u *unpacker) tar(name string, data []byte, depth int) error {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "completeness: tar %s", name)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > u.lim.MaxBytes-u.bytes {
			return errs.E(errs.TooLarge, "completeness: %s/%s is larger than what is left of %d bytes", name, h.Name, u.lim.MaxBytes)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "completeness: tar %s", name)
		}
		p, err := u.member(name, h.Name)
		if err != nil {
			return err
		}
		if err := u.add(p, b, depth+1); err != nil {
			return err
		}
	}
}

// cpio reads the "newc" format (magic 070701): a 110-byte ASCII header,
// the name padded to 4 bytes, the data padded to 4 bytes, until the member
// named TRAILER!!!.
func (u *unpacker) cpio(name string, data []byte, depth int) error {
	hexField := func(h []byte, i int) (int64, error) {
		return strconv.ParseInt(string(h[6+8*i:6+8*i+8]), 16, 64)
	}
	pad := func(n int64) int64 { return (n + 3) &^ 3 }
	off := int64(0)
	for {
		if off+110 > int64(len(data)) || !bytes.Equal(data[off:off+6], []byte("070701")) {
			return errs.E(errs.Invalid, "completeness: cpio %s: bad header at byte %d", name, off)
		}
		h := data[off : off+110]
		mode, err1 := hexField(h, 1)
		size, err2 := hexField(h, 6)
		nameSize, err3 := hexField(h, 11)
		if err := errors.Join(err1, err2, err3); err != nil || size < 0 || nameSize < 1 {
			return errs.E(errs.Invalid, "completeness: cpio %s: bad header at byte %d", name, off)
		}
		nameEnd := off + 110 + nameSize
		dataStart := pad(nameEnd)
		dataEnd := dataStart + size
		if nameEnd > int64(len(data)) || dataEnd > int64(len(data)) {
			return errs.E(errs.Invalid, "completeness: cpio %s is cut short", name)
		}
		mname := strings.TrimRight(string(data[off+110:nameEnd]), "\x00")
		if mname == "TRAILER!!!" {
			return nil
		}
		if mode&0o170000 == 0o100000 { // a regular file
			p, err := u.member(name, mname)
			if err != nil {
				return err
			}
			if err := u.add(p, data[dataStart:dataEnd], depth+1); err != nil {
				return err
			}
		}
		off = pad(dataEnd)
	}
}

// elf splits an ELF file into its sections that have content in the file,
// so a report says which part of a binary differs.
func (u *unpacker) elf(name string, data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return u.leaf(name, data)
	}
	defer f.Close()
	n := 0
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || s.Type == elf.SHT_NULL || s.Name == "" {
			continue
		}
		b, err := s.Data()
		if err != nil {
			return u.leaf(name, data)
		}
		if err := u.leaf(name+"#"+s.Name, b); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return u.leaf(name, data)
	}
	return nil
}

// Decompressed is the name a gzip-compressed file's content takes:
// image.tar.gz and image.tgz become image.tar, x.gz becomes x.
func Decompressed(name string) string {
	if base, ok := strings.CutSuffix(name, ".tgz"); ok {
		return base + ".tar"
	}
	return strings.TrimSuffix(name, ".gz")
}

// Rebuilt unpacks the rebuilt files (each named by its path among the
// build's outputs) so that their members line up with those of the shipped
// image named shippedName: when that image is an archive, its members are
// "NAME/inner", and each rebuilt file is taken as such a member.
func Rebuilt(shippedName string, shipped []Member, files []Member, lim Limits) ([]Member, error) {
	prefix := ""
	if len(shipped) != 1 || shipped[0].Path != shippedName {
		prefix = Decompressed(shippedName) + "/"
	}
	var out []Member
	for _, f := range files {
		ms, err := Unpack(prefix+f.Path, f.Data, lim)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}
