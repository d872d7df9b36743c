package recipes

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// CommitTree makes dir a git repository whose worktree is exactly the files
// of src, committed on the default branch with message at time when, and
// returns the commit id. An existing repository gets a new commit (or none,
// when nothing changed). The demo and the tests use it to turn an example
// into a repository a recipe can be submitted from.
func CommitTree(ctx context.Context, dir string, src fs.FS, message string, when time.Time) (string, error) {
	repo, err := git.PlainOpen(dir)
	if err == git.ErrRepositoryNotExists {
		repo, err = git.PlainInit(dir, false)
	}
	if err != nil {
		return "", fmt.Errorf("recipes: repository %s: %w", dir, err)
	}
	err = fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || ctx.Err() != nil {
			return err
		}
		in, err := src.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		target := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if info, err := d.Info(); err == nil && info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		out, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		return "", fmt.Errorf("recipes: write %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", fmt.Errorf("recipes: worktree %s: %w", dir, err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", fmt.Errorf("recipes: add %s: %w", dir, err)
	}
	status, err := wt.Status()
	if err != nil {
		return "", fmt.Errorf("recipes: status %s: %w", dir, err)
	}
	if status.IsClean() {
		if head, err := repo.Head(); err == nil {
			return head.Hash().String(), nil
		}
	}
	sig := &object.Signature{Name: "afterlife", Email: "afterlife@localhost", When: when}
	h, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true})
	if err != nil {
		return "", fmt.Errorf("recipes: commit %s: %w", dir, err)
	}
	return h.String(), nil
}
