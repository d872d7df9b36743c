package recipes

import (
	"archive/tar"
	"context"
	"io"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Archive writes the tree of commit (a full commit id) in the repository at
// repoDir as a tar stream that depends on nothing but that tree: entries in
// byte order of their paths, directories before what they hold, uid and gid
// 0 with no names, mode 0755 for directories and executables and 0644 for
// other files, symlinks as symlinks, every mtime the commit's committer time,
// and no extended records beyond what a long path needs. .git is not in a
// tree, so it is never archived; submodules are left out.
func Archive(ctx context.Context, repoDir, commit string, w io.Writer) error {
	if !fullHashRe.MatchString(commit) {
		return errs.E(errs.Invalid, "recipes: archive: %q is not a full commit id", commit)
	}
	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		return errs.Wrap(errs.NotFound, err, "recipes: archive: open %s", repoDir)
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return errs.Wrap(errs.NotFound, err, "recipes: archive: commit %s", commit)
	}
	tree, err := c.Tree()
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "recipes: archive: tree of %s", commit)
	}
	type entry struct {
		path string
		mode filemode.FileMode
		hash plumbing.Hash
	}
	var entries []entry
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "recipes: archive: walk %s", commit)
		}
		entries = append(entries, entry{name, e.Mode, e.Hash})
	}
	// A parent's path is a prefix of its children's, so byte order puts
	// directories first.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.path, b.path) })

	mtime := c.Committer.When.UTC().Truncate(1e9)
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return errs.Wrap(errs.Unavailable, err, "recipes: archive %s", commit)
		}
		hdr := &tar.Header{Name: e.path, ModTime: mtime, Format: tar.FormatUnknown}
		var content io.ReadCloser
		switch e.mode {
		case filemode.Dir:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, e.path+"/", 0o755
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			b, err := repo.BlobObject(e.hash)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "recipes: archive: blob %s", e.path)
			}
			r, err := b.Reader()
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "recipes: archive: read %s", e.path)
			}
			hdr.Typeflag, hdr.Size, hdr.Mode, content = tar.TypeReg, b.Size, 0o644, r
			if e.mode == filemode.Executable {
				hdr.Mode = 0o755
			}
		case filemode.Symlink:
			b, err := repo.BlobObject(e.hash)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "recipes: archive: link %s", e.path)
			}
			if b.Size > 4096 {
				return errs.E(errs.Invalid, "recipes: archive: symlink %s has a %d-byte target", e.path, b.Size)
			}
			target, err := readBlob(b)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "recipes: archive: read link %s", e.path)
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		default: // submodules (gitlinks) have no content in this repository
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			if content != nil {
				content.Close()
			}
			return errs.Wrap(errs.Internal, err, "recipes: archive: header of %s", e.path)
		}
		if content != nil {
			_, err := io.Copy(tw, content)
			content.Close()
			if err != nil {
				return errs.Wrap(errs.Internal, err, "recipes: archive: write %s", e.path)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return errs.Wrap(errs.Internal, err, "recipes: archive %s", commit)
	}
	return nil
}

func readBlob(b *object.Blob) (string, error) {
	r, err := b.Reader()
	if err != nil {
		return "", err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	return string(data), err
}
