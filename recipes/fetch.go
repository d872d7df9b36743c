package recipes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/revlist"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
)

// Checkout is a recipe repository cloned and checked out at one commit.
type Checkout struct {
	Commit     string    // full 40-hex commit id
	CommitTime time.Time // committer time, UTC
	Dir        string    // the worktree
}

var (
	refRe      = regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)
	hexRe      = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	fullHashRe = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// IsLocalURL reports whether Fetch would read url from this machine's
// filesystem (a file:// URL or a plain path). A server that fetches URLs
// given by users should refuse these.
func IsLocalURL(rawURL string) bool {
	scheme, _, ok := strings.Cut(rawURL, "://")
	return !ok || scheme == "file"
}

// Fetcher clones recipe repositories. Its zero value is what a server
// open to anyone needs: https:// URLs only, without credentials, of hosts
// whose every address is public; redirects are held to the same rules and
// every refusal is the same error (see refusedURL).
type Fetcher struct {
	// AllowLocal also accepts file:// URLs, local paths, http:// URLs and
	// hosts on this machine or its private networks: for tests and
	// single-machine setups, never for a server open to the public.
	AllowLocal bool
	// Resolver looks host names up (net.DefaultResolver when nil).
	Resolver Resolver

	trusted netip.AddrPort // tests: one 127.0.0.1 address treated as public
}

// Fetch clones with the zero Fetcher: public https:// repositories only.
func Fetch(ctx context.Context, rawURL, ref, dir string) (Checkout, error) {
	return Fetcher{}.Fetch(ctx, rawURL, ref, dir)
}

// Fetch clones the repository at url into dir, which must not exist or be
// empty, resolves ref (a branch, a tag, a full or abbreviated commit id, or
// "" for the default branch) to a commit and checks that commit out. It
// uses go-git only, never a git program: local repositories are copied
// object by object.
func (f Fetcher) Fetch(ctx context.Context, rawURL, ref, dir string) (Checkout, error) {
	if err := checkRef(ref); err != nil {
		return Checkout{}, err
	}
	p := &netPolicy{allowLocal: f.AllowLocal, resolver: f.Resolver, trusted: f.trusted}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	if IsLocalURL(rawURL) {
		if !f.AllowLocal {
			return Checkout{}, refusedURL()
		}
	} else if u, err := url.Parse(rawURL); err != nil || p.checkURL(u) != nil {
		return Checkout{}, refusedURL()
	}
	created, err := prepareDir(dir)
	if err != nil {
		return Checkout{}, err
	}
	co, err := fetch(withPolicy(ctx, p), rawURL, ref, dir)
	if p.refused.Load() {
		err = refusedURL()
	}
	if err != nil && created {
		_ = os.RemoveAll(dir)
	}
	return co, err
}

func fetch(ctx context.Context, rawURL, ref, dir string) (Checkout, error) {
	var repo *git.Repository
	var err error
	if IsLocalURL(rawURL) {
		repo, err = copyLocal(ctx, rawURL, dir)
	} else {
		repo, err = cloneRemote(ctx, rawURL, dir)
	}
	if err != nil {
		return Checkout{}, err
	}
	commit, err := resolve(repo, ref)
	if err != nil {
		return Checkout{}, fmt.Errorf("recipes: fetch %s: %w", rawURL, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return Checkout{}, errs.Wrap(errs.Internal, err, "recipes: worktree of %s", rawURL)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: commit.Hash, Force: true}); err != nil {
		return Checkout{}, errs.Wrap(errs.Invalid, err, "recipes: check out %s at %s", rawURL, commit.Hash)
	}
	return Checkout{Commit: commit.Hash.String(), CommitTime: commit.Committer.When.UTC(), Dir: dir}, nil
}

func checkRef(ref string) error {
	if ref == "" {
		return nil
	}
	if len(ref) > 255 || !refRe.MatchString(ref) || strings.Contains(ref, "..") ||
		strings.Contains(ref, "//") || strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "-") || strings.HasSuffix(ref, "/") {
		return errs.E(errs.Invalid, "ref %q is not a branch, tag or commit id", ref)
	}
	return nil
}

func prepareDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, errs.Wrap(errs.Internal, err, "recipes: create %s", dir)
		}
		return true, nil
	case err != nil:
		return false, errs.Wrap(errs.Internal, err, "recipes: read %s", dir)
	case len(entries) > 0:
		return false, errs.E(errs.Conflict, "recipes: %s is not empty", dir)
	}
	return false, nil
}

// cloneRemote clones over http(s) through the guarded transport, under the
// policy in ctx; Fetch has checked the URL.
func cloneRemote(ctx context.Context, rawURL, dir string) (*git.Repository, error) {
	installGuard()
	repo, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{URL: rawURL, NoCheckout: true, Tags: git.AllTags})
	if err != nil {
		return nil, classifyFetchError(ctx, rawURL, err)
	}
	return repo, nil
}

func classifyFetchError(ctx context.Context, rawURL string, err error) error {
	switch {
	case ctx.Err() != nil:
		return errs.Wrap(errs.Unavailable, ctx.Err(), "recipes: fetch %s", rawURL)
	case errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed), errors.Is(err, git.ErrRepositoryNotExists):
		return errs.Wrap(errs.NotFound, err, "recipes: no public repository at %s", rawURL)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return errs.Wrap(errs.NotFound, err, "recipes: repository %s is empty", rawURL)
	}
	return errs.Wrap(errs.Unavailable, err, "recipes: fetch %s", rawURL)
}

// copyLocal clones a repository on this machine without a git program: it
// packs every object reachable from the source's branches and tags into one
// packfile in dir, and copies those refs as a clone would name them.
func copyLocal(ctx context.Context, rawURL, dir string) (*git.Repository, error) {
	path := rawURL
	if strings.HasPrefix(rawURL, "file://") {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Host != "" && u.Host != "localhost") {
			return nil, errs.E(errs.Invalid, "recipes: %q is not a local file:// URL", rawURL)
		}
		path = u.Path
	}
	src, err := git.PlainOpenWithOptions(path, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, classifyFetchError(ctx, rawURL, err)
	}
	refs, err := src.References()
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: list refs of %s", rawURL)
	}
	var tips []plumbing.Hash
	var copied []*plumbing.Reference
	err = refs.ForEach(func(r *plumbing.Reference) error {
		if r.Type() != plumbing.HashReference {
			return nil
		}
		name := r.Name()
		switch {
		case name.IsBranch():
			copied = append(copied, plumbing.NewHashReference(plumbing.NewRemoteReferenceName("origin", name.Short()), r.Hash()))
		case name.IsTag():
			copied = append(copied, r)
		default:
			return nil
		}
		tips = append(tips, r.Hash())
		return nil
	})
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: list refs of %s", rawURL)
	}
	head, headErr := src.Reference(plumbing.HEAD, false)
	if len(tips) == 0 {
		return nil, errs.E(errs.NotFound, "recipes: repository %s is empty", rawURL)
	}
	if err := ctx.Err(); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "recipes: fetch %s", rawURL)
	}
	hashes, err := revlist.Objects(src.Storer, tips, nil)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "recipes: walk objects of %s", rawURL)
	}
	dst, err := git.PlainInit(dir, false)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: init %s", dir)
	}
	pw, ok := dst.Storer.(storer.PackfileWriter)
	if !ok {
		return nil, errs.E(errs.Internal, "recipes: storage of %s cannot take a packfile", dir)
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: write pack into %s", dir)
	}
	if _, err := packfile.NewEncoder(ctxWriter{ctx, w}, src.Storer, false).Encode(hashes, 10); err != nil {
		_ = w.Close()
		return nil, classifyFetchError(ctx, rawURL, err)
	}
	if err := w.Close(); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: index pack in %s", dir)
	}
	for _, r := range copied {
		if err := dst.Storer.SetReference(r); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "recipes: set %s in %s", r.Name(), dir)
		}
	}
	if headErr == nil && head.Type() == plumbing.SymbolicReference && head.Target().IsBranch() {
		originHead := plumbing.NewSymbolicReference(plumbing.NewRemoteHEADReferenceName("origin"),
			plumbing.NewRemoteReferenceName("origin", head.Target().Short()))
		if err := dst.Storer.SetReference(originHead); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "recipes: set origin/HEAD in %s", dir)
		}
	}
	if _, err := dst.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{rawURL}}); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: record origin in %s", dir)
	}
	return dst, nil
}

// ctxWriter stops a long copy when ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// resolve finds the commit that ref names, in git's order of precedence
// for the names a clone has: the default branch for "", a full commit id,
// a tag, a branch, a full ref name, and last an abbreviated commit id.
func resolve(repo *git.Repository, ref string) (*object.Commit, error) {
	if ref == "" || ref == "HEAD" {
		for _, name := range []plumbing.ReferenceName{plumbing.NewRemoteHEADReferenceName("origin"), plumbing.HEAD} {
			if r, err := repo.Reference(name, true); err == nil {
				return peel(repo, r.Hash(), ref)
			}
		}
		return nil, errs.E(errs.NotFound, "repository has no default branch; name a branch, tag or commit")
	}
	if fullHashRe.MatchString(ref) {
		return peel(repo, plumbing.NewHash(ref), ref)
	}
	names := []plumbing.ReferenceName{
		plumbing.NewTagReferenceName(ref),
		plumbing.NewRemoteReferenceName("origin", ref),
		plumbing.NewBranchReferenceName(ref),
	}
	if strings.HasPrefix(ref, "refs/") {
		names = append([]plumbing.ReferenceName{plumbing.ReferenceName(ref)}, names...)
	}
	for _, name := range names {
		if r, err := repo.Reference(name, true); err == nil {
			return peel(repo, r.Hash(), ref)
		}
	}
	if hexRe.MatchString(ref) {
		return abbreviated(repo, ref)
	}
	return nil, errs.E(errs.NotFound, "no branch, tag or commit %q", ref)
}

// peel follows annotated tags to the commit they name.
func peel(repo *git.Repository, h plumbing.Hash, ref string) (*object.Commit, error) {
	for range 10 {
		if tag, err := repo.TagObject(h); err == nil {
			h = tag.Target
			continue
		}
		c, err := repo.CommitObject(h)
		if err != nil {
			return nil, errs.Wrap(errs.NotFound, err, "%q does not name a commit", ref)
		}
		return c, nil
	}
	return nil, errs.E(errs.Invalid, "%q: tags nested too deeply", ref)
}

func abbreviated(repo *git.Repository, prefix string) (*object.Commit, error) {
	iter, err := repo.CommitObjects()
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "list commits")
	}
	defer iter.Close()
	var found []*object.Commit
	err = iter.ForEach(func(c *object.Commit) error {
		if strings.HasPrefix(c.Hash.String(), prefix) {
			found = append(found, c)
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, errs.Wrap(errs.Internal, err, "list commits")
	case len(found) == 0:
		return nil, errs.E(errs.NotFound, "no branch, tag or commit %q", prefix)
	case len(found) > 1:
		return nil, errs.E(errs.Invalid, "commit id %q is ambiguous (%d commits); give more digits", prefix, len(found))
	}
	return found[0], nil
}

// ReadRecipe reads and parses the recipe at path (DefaultFile when empty)
// inside a checkout. The path must stay inside the checkout, and so must
// any symlink on the way.
func ReadRecipe(co Checkout, path string) (*Recipe, error) {
	if path == "" {
		path = DefaultFile
	}
	if err := relpath.Check(path); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "recipes: recipe path")
	}
	root, err := os.OpenRoot(co.Dir)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "recipes: open checkout %s", co.Dir)
	}
	defer root.Close()
	f, err := root.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errs.E(errs.NotFound, "recipes: no %s in commit %s", path, co.Commit)
		}
		return nil, errs.Wrap(errs.Invalid, err, "recipes: open %s in commit %s", path, co.Commit)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRecipeSize+1))
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "recipes: read %s", path)
	}
	if len(data) > MaxRecipeSize {
		return nil, errs.E(errs.TooLarge, "recipes: %s is larger than %d bytes", path, MaxRecipeSize)
	}
	return ParseFile(path, data)
}
