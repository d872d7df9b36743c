package client

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// LocalFile is a manifest entry and where its content is on disk.
type LocalFile struct {
	manifest.Entry
	Source string // empty for links
}

// Scan walks paths and describes them as a manifest. A directory
// contributes its contents (its own name is not part of the paths); a file
// contributes itself under its base name. Directories are walked in sorted
// order; symbolic links inside them are recorded as links, never followed,
// and refused when their target leaves the tree, also through other links
// (manifest.CheckTree), as are names that collide once normalised or
// case-folded. Kinds are inferred from
// paths unless overrides (deposit path → kind) say otherwise.
func Scan(paths []string, overrides map[string]manifest.Kind) ([]LocalFile, error) {
	if len(paths) == 0 {
		return nil, errs.E(errs.Invalid, "nothing to deposit: give files or directories")
	}
	byPath := map[string]LocalFile{}
	add := func(f LocalFile) error {
		if err := manifest.ValidatePath(f.Path); err != nil {
			return err
		}
		if prev, ok := byPath[f.Path]; ok {
			return errs.E(errs.Invalid, "%s and %s both become %q in the deposit", prev.Source, f.Source, f.Path)
		}
		f.Kind = manifest.InferKind(f.Path)
		byPath[f.Path] = f
		return nil
	}
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "deposit path %s", root)
		}
		if !st.IsDir() {
			if !st.Mode().IsRegular() {
				return nil, errs.E(errs.Invalid, "%s is not a regular file or directory", root)
			}
			if err := add(LocalFile{Entry: manifest.Entry{Path: filepath.Base(root), Size: st.Size()}, Source: root}); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == root || de.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			switch {
			case de.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				target = filepath.ToSlash(target)
				if err := manifest.ValidateLink(rel, target); err != nil {
					return err
				}
				return add(LocalFile{Entry: manifest.Entry{Path: rel, Link: target}, Source: p})
			case de.Type().IsRegular():
				info, err := de.Info()
				if err != nil {
					return err
				}
				return add(LocalFile{Entry: manifest.Entry{Path: rel, Size: info.Size()}, Source: p})
			default:
				return errs.E(errs.Invalid, "%s is not a regular file, directory or symbolic link", p)
			}
		})
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				err = errs.Wrap(errs.Invalid, err, "walking %s", root)
			}
			return nil, err
		}
	}
	for p, k := range overrides {
		f, ok := byPath[p]
		if !ok {
			return nil, errs.E(errs.Invalid, "the kinds file names %q, which is not in the deposit", p)
		}
		f.Kind = k
		byPath[p] = f
	}
	out := make([]LocalFile, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	// The server checks the same; refusing here saves hashing and sending.
	if err := manifest.CheckTree(Entries(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// Hash fills in the sha256 of every file (and re-reads the size, so the
// manifest says what will be sent). progress, when set, is told each file's
// bytes as they are read.
func Hash(files []LocalFile, progress func(n int64)) error {
	for i := range files {
		f := &files[i]
		if f.IsLink() {
			continue
		}
		fh, err := os.Open(f.Source)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "open %s", f.Source)
		}
		h := sha256.New()
		var w io.Writer = h
		if progress != nil {
			w = io.MultiWriter(h, progressWriter(progress))
		}
		n, err := io.Copy(w, fh)
		fh.Close()
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "read %s", f.Source)
		}
		f.Size, f.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	}
	return nil
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) { p(int64(len(b))); return len(b), nil }

// Entries is the manifest of files.
func Entries(files []LocalFile) []manifest.Entry {
	out := make([]manifest.Entry, len(files))
	for i, f := range files {
		out[i] = f.Entry
	}
	return out
}

// LoadKinds reads a kinds file: YAML mapping deposit paths to kinds, e.g.
//
//	docs/notes.txt: spec
//	vendor/sdk.tar.xz: toolchain
func LoadKinds(path string) (map[string]manifest.Kind, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.E(errs.Invalid, "kinds file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("client: kinds file: %w", err)
	}
	var raw map[string]string
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "kinds file %s: want a YAML mapping of path: kind", path)
	}
	out := make(map[string]manifest.Kind, len(raw))
	for p, k := range raw {
		kind, err := manifest.ParseKind(strings.TrimSpace(k))
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "kinds file %s: %s", path, p)
		}
		out[strings.TrimPrefix(p, "./")] = kind
	}
	return out, nil
}
