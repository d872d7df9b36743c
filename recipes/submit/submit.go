// Package submit turns a maintainer's submission (a recipe repository URL,
// a ref and a recipe path) into a build request: it clones the repository
// with go-git, pins the ref to a full commit, reads and validates the
// recipe, checks that every escrow input exists and is released, stores the
// recipe tree and each git input as deterministic tars in the blob store,
// and asks the build farm for the build. The same repository, commit and
// path always give the same build.
//
// It talks to escrow and to the farm only through the small interfaces it
// declares (ReleasedFiles, Builds); it must not import builder, escrow or
// registry.
package submit

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/inputkind"
)

// ReleasedFiles tells whether an escrow file may be a build input: ok is
// false when no deposit has it, its deposit is still sealed, or its vendor
// keeps it private; buildOnly is true when its vendor allows it as a build
// input only (the recipe must declare it).
type ReleasedFiles interface {
	ReleasedFile(ctx context.Context, digest string) (size int64, buildOnly, ok bool, err error)
}

// Builds creates builds in the farm; created is false when the same
// repository, commit and path was submitted before.
type Builds interface {
	CreateBuild(ctx context.Context, req BuildRequest) (buildID string, created bool, err error)
}

// BuildRequest is everything the farm needs to build a recipe.
type BuildRequest struct {
	RepoURL     string
	Commit      string
	CommitTime  time.Time
	Path        string // the recipe file in the repository
	RequestedBy string
	Recipe      *recipes.Recipe
	// SourceDateEpoch is the recipe's, or the commit time.
	SourceDateEpoch int64
	// Source is the digest of the recipe repository's tree at Commit as a
	// deterministic tar (recipes.Archive), stored in the blob store.
	Source blob.Digest
	Inputs []Input
}

// Input is one blob the build reads, mounted under /inputs/<Mount>.
type Input struct {
	Digest blob.Digest
	Mount  string // "escrow/<as>" or "git/<name>"
	Kind   string // inputkind.Escrow or inputkind.GitArchive
	// BuildOnly marks an escrow file its vendor allows as a build input
	// only: builders get it through their job alone.
	BuildOnly bool
}

// Request is one submission.
type Request struct {
	RepoURL     string
	Ref         string
	Path        string // default recipes.DefaultFile
	RequestedBy string
}

// Result is the build a submission made or found.
type Result struct {
	BuildID string
	Created bool
	Commit  string
	Recipe  string
	Version string
	Source  blob.Digest
}

// Options configure a Submitter.
type Options struct {
	Store    blob.Store
	Released ReleasedFiles
	Builds   Builds
	// AllowLocal lets file:// URLs, local paths, http:// and addresses on
	// this machine or its private networks through (tests, the
	// single-machine demo). A public server must leave it false.
	AllowLocal bool
	// Maxima are the most a recipe may ask for (the server's max-build-*
	// settings); a recipe over them is refused, naming the limit. Zero
	// fields do not bound.
	Maxima recipes.Maxima
	// TempDir holds clones while a submission runs (default os.TempDir).
	TempDir string
	Logger  *slog.Logger
}

// Submitter handles submissions.
type Submitter struct{ o Options }

// New returns a Submitter.
func New(o Options) (*Submitter, error) {
	if o.Store == nil || o.Released == nil || o.Builds == nil {
		return nil, errs.E(errs.Internal, "submit: Store, Released and Builds are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Submitter{o: o}, nil
}

// Submit clones, pins, validates, checks, archives and asks for the build.
func (s *Submitter) Submit(ctx context.Context, req Request) (Result, error) {
	if req.Path == "" {
		req.Path = recipes.DefaultFile
	}
	if err := relpath.Check(req.Path); err != nil {
		return Result{}, errs.Wrap(errs.Invalid, err, "recipe path %q", req.Path)
	}
	if err := s.checkURL(req.RepoURL); err != nil {
		return Result{}, err
	}
	tmp, err := os.MkdirTemp(s.o.TempDir, "afterlife-submit-")
	if err != nil {
		return Result{}, errs.Wrap(errs.Unavailable, err, "submit: temporary directory")
	}
	defer os.RemoveAll(tmp)

	fetcher := recipes.Fetcher{AllowLocal: s.o.AllowLocal}
	co, err := fetcher.Fetch(ctx, req.RepoURL, req.Ref, filepath.Join(tmp, "recipe"))
	if err != nil {
		return Result{}, err
	}
	r, err := recipes.ReadRecipe(co, req.Path)
	if err != nil {
		return Result{}, err
	}
	if err := recipes.CheckMaxima(r, s.o.Maxima); err != nil {
		return Result{}, err
	}
	if err := checkTools(co.Dir, r); err != nil {
		return Result{}, err
	}
	buildOnly := map[string]bool{}
	for _, in := range r.Inputs.Escrow {
		_, restricted, ok, err := s.o.Released.ReleasedFile(ctx, in.Digest)
		if err != nil {
			return Result{}, fmt.Errorf("submit: check escrow input %s: %w", in.Digest, err)
		}
		if !ok {
			return Result{}, errs.E(errs.Conflict, "escrow input %s (%s) is not a released escrow file its vendor allows builds to use: no deposit has it, its deposit is still sealed, or it is private", in.As, in.Digest)
		}
		if restricted && in.Rights != recipes.BuildOnly {
			return Result{}, errs.E(errs.Conflict, "escrow input %s (%s) is build-only: its vendor allows it as a build input, never published; declare it with rights: build-only", in.As, in.Digest)
		}
		buildOnly[in.Digest] = restricted
	}
	src, err := s.archive(ctx, co.Dir, co.Commit, tmp)
	if err != nil {
		return Result{}, fmt.Errorf("submit: archive %s at %s: %w", req.RepoURL, co.Commit, err)
	}
	br := BuildRequest{
		RepoURL: req.RepoURL, Commit: co.Commit, CommitTime: co.CommitTime, Path: req.Path,
		RequestedBy: req.RequestedBy, Recipe: r, SourceDateEpoch: r.Epoch(co.CommitTime), Source: src,
	}
	for _, in := range r.Inputs.Escrow {
		d, err := blob.ParseDigest(in.Digest)
		if err != nil {
			return Result{}, err
		}
		br.Inputs = append(br.Inputs, Input{Digest: d, Mount: "escrow/" + in.As, Kind: inputkind.Escrow, BuildOnly: buildOnly[in.Digest]})
	}
	for i, g := range r.Inputs.Git {
		if err := s.checkURL(g.URL); err != nil {
			return Result{}, fmt.Errorf("submit: git input %s: %w", g.Name, err)
		}
		gco, err := fetcher.Fetch(ctx, g.URL, g.Commit, filepath.Join(tmp, fmt.Sprintf("git-%d", i)))
		if err != nil {
			return Result{}, fmt.Errorf("submit: git input %s: %w", g.Name, err)
		}
		if gco.Commit != g.Commit {
			return Result{}, errs.E(errs.Invalid, "git input %s: %s resolved to %s", g.Name, g.Commit, gco.Commit)
		}
		d, err := s.archive(ctx, gco.Dir, gco.Commit, tmp)
		if err != nil {
			return Result{}, fmt.Errorf("submit: archive git input %s: %w", g.Name, err)
		}
		br.Inputs = append(br.Inputs, Input{Digest: d, Mount: "git/" + g.Name, Kind: inputkind.GitArchive})
	}
	id, created, err := s.o.Builds.CreateBuild(ctx, br)
	if err != nil {
		return Result{}, err
	}
	s.o.Logger.Info("recipe submitted", "repo", req.RepoURL, "ref", req.Ref, "commit", co.Commit, "recipe", r.Name, "build", id, "created", created)
	return Result{BuildID: id, Created: created, Commit: co.Commit, Recipe: r.Name, Version: r.Version, Source: src}, nil
}

// checkURL asks for a URL; what a URL may name is the fetcher's rule.
func (s *Submitter) checkURL(u string) error {
	if u == "" {
		return errs.E(errs.Invalid, "a repository URL is required")
	}
	return nil
}

// archive writes the tree of commit as a deterministic tar into a
// temporary file and stores it.
func (s *Submitter) archive(ctx context.Context, repoDir, commit, tmp string) (blob.Digest, error) {
	f, err := os.CreateTemp(tmp, "archive-*.tar")
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "temporary archive")
	}
	defer f.Close()
	if err := recipes.Archive(ctx, repoDir, commit, f); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return "", err
	}
	info, err := s.o.Store.Put(ctx, f, "")
	if err != nil {
		return "", err
	}
	return info.Digest, nil
}

// checkTools refuses a recipe whose steps run an SBOM generator it does not
// declare, reading the scripts they name from the checkout's root, where
// steps run, and from nowhere else (os.Root: links cannot lead out of it).
func checkTools(checkout string, r *recipes.Recipe) error {
	root, err := os.OpenRoot(checkout)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "submit: open checkout")
	}
	defer root.Close()
	return recipes.CheckTools(r, root.FS())
}
