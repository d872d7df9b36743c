// Package relpath is the one check of a relative path that someone else
// wrote and that will be joined to a directory: a deposit's file, a
// recipe's input or output, a build spec's mount, a TUF target. Every part
// and every client asks the same question here, so a path one accepts is
// never one another refuses (or, worse, lets escape).
//
// It is plumbing without state or I/O, imported by format packages that
// clients share; it must not import a part.
package relpath

import (
	"path"
	"strings"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

const (
	// MaxLen bounds a path, in bytes.
	MaxLen = 1024
	// MaxElementLen bounds one element, in bytes: what a file name can be
	// on the file systems builders and devices use (NAME_MAX).
	MaxElementLen = 255
)

// Check accepts a clean, relative, slash-separated path that stays inside
// the directory it is joined to, and reads as what it is: not empty, at
// most MaxLen bytes, valid UTF-8, no control characters (C0, DEL, C1) and
// no bidirectional controls, no backslash, not absolute, no "..", "." or
// empty elements, no element longer than MaxElementLen. Errors have kind
// Invalid and say what to write instead where they can.
func Check(p string) error {
	switch {
	case p == "":
		return errs.E(errs.Invalid, "path is empty")
	case len(p) > MaxLen:
		return errs.E(errs.Invalid, "path %.40q…: longer than %d bytes", p, MaxLen)
	case !utf8.ValidString(p):
		return errs.E(errs.Invalid, "path %q is not UTF-8", p)
	}
	for _, r := range p {
		switch {
		case r < 0x20 || 0x7f <= r && r <= 0x9f:
			return errs.E(errs.Invalid, "path %q contains a control character", p)
		case isBidiControl(r):
			return errs.E(errs.Invalid, "path %q contains a bidirectional control character (U+%04X), which makes a name read as another", p, r)
		case r == '\\':
			return errs.E(errs.Invalid, "path %q contains a backslash; use '/'", p)
		}
	}
	if strings.HasPrefix(p, "/") {
		return errs.E(errs.Invalid, "path %q is absolute; write it relative", p)
	}
	for el := range strings.SplitSeq(p, "/") {
		if el == ".." {
			return errs.E(errs.Invalid, "path %q leaves its directory ('..')", p)
		}
	}
	if c := path.Clean(p); c != p {
		if c == "." {
			return errs.E(errs.Invalid, "path %q names the directory itself", p)
		}
		return errs.E(errs.Invalid, "path %q is not clean; write %q", p, c)
	}
	if p == "." {
		return errs.E(errs.Invalid, "path %q names the directory itself", p)
	}
	for el := range strings.SplitSeq(p, "/") {
		if len(el) > MaxElementLen {
			return errs.E(errs.Invalid, "path %.40q…: an element is longer than %d bytes", p, MaxElementLen)
		}
	}
	return nil
}

// isBidiControl reports the invisible characters that reorder text: a
// name holding them reads differently from what it is.
func isBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == 0x200E || r == 0x200F || r == 0x061C
}
