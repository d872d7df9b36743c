package recipes

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// ExtractLimits bound what Extract unpacks. Zero fields take the defaults.
type ExtractLimits struct {
	MaxBytes   int64 // total size of regular files; default 2 GiB
	MaxEntries int   // number of entries; default 100000
}

// Default extract limits.
const (
	DefaultExtractBytes   = 2 << 30
	DefaultExtractEntries = 100_000
)

// Extract unpacks a tar stream (such as Archive writes) into dir, creating
// dir if needed. It writes nothing outside dir: every operation goes through
// an os.Root, and it refuses, before writing them, entries with absolute or
// ".." paths, symlinks whose target could leave dir, hard links to anything
// but a file already extracted, device files and fifos, entries below a
// symlink, and a path given twice. Files get mode 0755 when any execute bit
// is set and 0644 otherwise; directories 0755; mtimes come from the archive.
// On error, what was already extracted stays: callers extract into a fresh
// directory and discard it.
func Extract(r io.Reader, dir string, limits ExtractLimits) error {
	if limits.MaxBytes <= 0 {
		limits.MaxBytes = DefaultExtractBytes
	}
	if limits.MaxEntries <= 0 {
		limits.MaxEntries = DefaultExtractEntries
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return errs.Wrap(errs.Internal, err, "recipes: extract: create %s", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "recipes: extract: open %s", dir)
	}
	defer root.Close()
	x := extractor{root: root, limits: limits, dirs: map[string]bool{".": true}, seen: map[string]bool{}}
	tr := tar.NewReader(r)
	for n := 1; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "recipes: extract: read entry %d", n)
		}
		if n > limits.MaxEntries {
			return errs.E(errs.TooLarge, "recipes: extract: more than %d entries", limits.MaxEntries)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	// Directory mtimes last: creating their contents changed them.
	for _, d := range slices.Backward(x.dirTimes) {
		if err := root.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return errs.Wrap(errs.Internal, err, "recipes: extract: set time of %s", d.path)
		}
	}
	return nil
}

type extractor struct {
	root     *os.Root
	limits   ExtractLimits
	total    int64
	dirs     map[string]bool // real directories made or checked
	seen     map[string]bool // paths of extracted entries
	dirTimes []dirTime
}

type dirTime struct {
	path  string
	mtime time.Time
}

func invalid(name, format string, args ...any) error {
	return errs.E(errs.Invalid, "recipes: extract: %q: "+format, append([]any{name}, args...)...)
}

// cleanEntryName turns an archive path into a clean relative path or fails.
func cleanEntryName(name string) (string, error) {
	n := strings.TrimPrefix(name, "./")
	if strings.HasSuffix(n, "/") {
		n = strings.TrimRight(n, "/")
	}
	if n == "" || n == "." {
		return ".", nil
	}
	if len(n) > 4096 || strings.ContainsRune(n, 0) || strings.HasPrefix(n, "/") {
		return "", invalid(name, "absolute or unusable path")
	}
	for part := range strings.SplitSeq(n, "/") {
		if part == ".." {
			return "", invalid(name, "path leaves the directory")
		}
	}
	return path.Clean(n), nil
}

func (x *extractor) entry(hdr *tar.Header, tr io.Reader) error {
	name, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return invalid(hdr.Name, "only a directory may name the top")
	}
	if x.seen[name] {
		return invalid(hdr.Name, "given twice")
	}
	if err := x.parents(name); err != nil {
		return err
	}
	x.seen[name] = true
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(name, hdr)
	case tar.TypeReg:
		return x.file(name, hdr, tr)
	case tar.TypeSymlink:
		return x.symlink(name, hdr)
	case tar.TypeLink:
		return x.hardlink(name, hdr)
	default:
		return invalid(hdr.Name, "entry type %q is not allowed (devices, fifos and the like)", hdr.Typeflag)
	}
}

// parents makes sure every directory above name is a real directory inside
// the root (not a symlink), creating missing ones. Refusing to go through
// symlinks means an entry's place is what its path says.
func (x *extractor) parents(name string) error {
	dir := path.Dir(name)
	if x.dirs[dir] {
		return nil
	}
	var chain []string
	for d := dir; d != "." && !x.dirs[d]; d = path.Dir(d) {
		chain = append(chain, d)
	}
	for _, d := range slices.Backward(chain) {
		fi, err := x.root.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(d, 0o755); err != nil {
				return errs.Wrap(errs.Invalid, err, "recipes: extract: create %s", d)
			}
		case err != nil:
			return errs.Wrap(errs.Invalid, err, "recipes: extract: %s", d)
		case !fi.IsDir():
			return invalid(name, "%s on the way is not a directory", d)
		}
		x.dirs[d] = true
	}
	return nil
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(name, 0o755); err != nil {
			return errs.Wrap(errs.Invalid, err, "recipes: extract: create %s", name)
		}
	case err != nil:
		return errs.Wrap(errs.Invalid, err, "recipes: extract: %s", name)
	case !fi.IsDir():
		return invalid(hdr.Name, "exists and is not a directory")
	}
	x.dirs[name] = true
	x.dirTimes = append(x.dirTimes, dirTime{name, hdr.ModTime})
	return nil
}

func (x *extractor) file(name string, hdr *tar.Header, tr io.Reader) error {
	if hdr.Size > x.limits.MaxBytes-x.total {
		return errs.E(errs.TooLarge, "recipes: extract: files add up to more than %d bytes", x.limits.MaxBytes)
	}
	x.total += hdr.Size
	mode := os.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "recipes: extract: create %s", name)
	}
	n, err := io.Copy(f, tr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "recipes: extract: write %s", name)
	}
	if n != hdr.Size {
		return invalid(hdr.Name, "archive ends inside the file")
	}
	// The umask may have cleared bits; the mode is part of the result.
	if err := x.root.Chmod(name, mode); err != nil {
		return errs.Wrap(errs.Internal, err, "recipes: extract: chmod %s", name)
	}
	if err := x.root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
		return errs.Wrap(errs.Internal, err, "recipes: extract: set time of %s", name)
	}
	return nil
}

// symlink accepts a relative target made of leading ".." steps that stay
// inside the root, followed by plain names. A ".." after a name is refused:
// that name could itself be a symlink, and lexical cleaning would then lie
// about where the link leads.
func (x *extractor) symlink(name string, hdr *tar.Header) error {
	target := hdr.Linkname
	if target == "" || len(target) > 4096 || strings.ContainsRune(target, 0) || strings.HasPrefix(target, "/") {
		return invalid(hdr.Name, "symlink target %q is absolute or unusable", target)
	}
	depth := strings.Count(name, "/") // directories above the link
	named := false
	for part := range strings.SplitSeq(target, "/") {
		switch {
		case part == "" || part == ".":
		case part == "..":
			if named {
				return invalid(hdr.Name, "symlink target %q climbs after a name", target)
			}
			depth--
			if depth < 0 {
				return invalid(hdr.Name, "symlink target %q leaves the directory", target)
			}
		default:
			named = true
		}
	}
	if err := x.root.Symlink(target, name); err != nil {
		return errs.Wrap(errs.Invalid, err, "recipes: extract: symlink %s", name)
	}
	return nil
}

func (x *extractor) hardlink(name string, hdr *tar.Header) error {
	old, err := cleanEntryName(hdr.Linkname)
	if err != nil || old == "." || !x.seen[old] {
		return invalid(hdr.Name, "hard link to %q, which is not an extracted file", hdr.Linkname)
	}
	fi, err := x.root.Lstat(old)
	if err != nil || !fi.Mode().IsRegular() {
		return invalid(hdr.Name, "hard link to %q, which is not a regular file", hdr.Linkname)
	}
	if err := x.root.Link(old, name); err != nil {
		return errs.Wrap(errs.Invalid, err, "recipes: extract: link %s", name)
	}
	return nil
}
