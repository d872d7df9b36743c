package cli

// afterlife recipe try: one build of a recipe on the maintainer's own
// machine, before submitting it, through the code a farm submission and a
// farm builder run (recipes/submit resolves the inputs, buildspec.For makes
// the spec, the agent's fetch and sandbox build it).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/agent"
	"github.com/afterlife-oss/afterlife/builder/buildspec"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/submit"
)

// TryCommand is "afterlife recipe try"; cf are the recipe command's
// server flags, used only to fetch released escrow inputs.
func TryCommand(cf *apicli.Flags) *cobra.Command {
	var repo, ref, path, out, work string
	var inputs []string
	cmd := &cobra.Command{
		Use:   "try",
		Short: "Build a recipe once on this machine, in the farm's sandbox, before submitting it",
		Long: `Build a recipe once on this machine, as a farm builder would, before submitting it.

The recipe is read from a git repository (--repo, default the current directory) at a
commit (--ref, default HEAD): commit what you want to try. Its inputs are resolved as a
submission resolves them: git inputs are fetched at their pinned commits, and each escrow
input is taken from --input AS=PATH (a local copy; it must have the digest the recipe
names) or, when none is given, downloaded from the registry (--server) if it is a released
file its vendor publishes. A build-only file needs a local copy: the registry gives it to
farm builders only.

The build runs in the same bubblewrap sandbox as on a farm builder (no network, fixed
paths, cleared environment, SOURCE_DATE_EPOCH, TZ=UTC, the recipe's limits), with an
empty /cache like the farm's cold witness. There is one build and no quorum: a try says
whether the recipe builds, not whether it is reproducible.

The outputs are copied into --out with the build log (build.log); their digests are
printed. On failure the end of the log is printed and the command fails.`,
		Example: `  afterlife recipe try
  afterlife recipe try --repo ~/src/cam-firmware --path boards/cam200/afterlife.yaml --out /tmp/try
  afterlife recipe try --input vendor/sdk.tar.gz=./sdk.tar.gz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sandbox.Available(); err != nil {
				return err
			}
			tmp, err := os.MkdirTemp(work, "afterlife-try-")
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "work directory")
			}
			defer sandbox.RemoveWorkspace(tmp)
			if repo == "" || recipes.IsLocalURL(repo) && !strings.HasPrefix(repo, "file://") {
				if repo == "" {
					repo = "."
				}
				if repo, err = filepath.Abs(repo); err != nil {
					return errs.Wrap(errs.Invalid, err, "--repo")
				}
			}
			tried, br, err := tryRecipe(cmd.Context(), tryOptions{
				Repo: repo, Ref: ref, Path: path, Out: out, Work: tmp, Inputs: inputs, Flags: cf,
				Live: cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if tried.Failed {
				fmt.Fprintf(w, "the build failed: %s\n--- end of the build log (whole log: %s) ---\n%s\n", tried.Reason, tried.Log, tried.LogTail)
				return errs.E(errs.Invalid, "recipe %s did not build: %s", br.Recipe.Name, tried.Reason)
			}
			fmt.Fprintf(w, "recipe %s %s built at commit %s; outputs in %s:\n", br.Recipe.Name, br.Recipe.Version, br.Commit, out)
			for _, o := range tried.Outputs {
				fmt.Fprintf(w, "  %s  %s  %d bytes\n", o.Path, o.Digest, o.Size)
			}
			fmt.Fprintf(w, "build log: %s\n", tried.Log)
			fmt.Fprintf(w, "One build, no quorum: the farm publishes only what independent builders reproduce bit for bit.\nNext, push commit %s where the farm can fetch it, and submit:\n  afterlife recipe submit --repo URL --ref %s", br.Commit, br.Commit)
			if path != "" && path != recipes.DefaultFile {
				fmt.Fprintf(w, " --path %s", path)
			}
			fmt.Fprintln(w, " --wait 30m")
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "the recipe's git repository: a directory or a URL (default the current directory)")
	cmd.Flags().StringVar(&ref, "ref", "HEAD", "branch, tag or commit to build")
	cmd.Flags().StringVar(&path, "path", "", "recipe path inside the repository (default afterlife.yaml)")
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "AS=PATH: a local copy of the escrow input the recipe mounts at /inputs/escrow/AS (repeatable)")
	cmd.Flags().StringVar(&out, "out", "try-out", "directory the outputs and build.log are copied into")
	cmd.Flags().StringVar(&work, "work", "", "where the build's workspace and caches live while it runs (default the system's temporary directory)")
	return cmd
}

type tryOptions struct {
	Repo, Ref, Path, Out, Work string
	Inputs                     []string // AS=PATH
	Flags                      *apicli.Flags
	Live                       io.Writer
	Toolchains                 []toolchain.Toolchain // default toolchain.Detect
}

// tryRecipe resolves the recipe as a submission does and builds it once.
func tryRecipe(ctx context.Context, o tryOptions) (agent.Tried, submit.BuildRequest, error) {
	store, err := fsstore.New(filepath.Join(o.Work, "blobs"))
	if err != nil {
		return agent.Tried{}, submit.BuildRequest{}, err
	}
	local, err := localInputs(o.Inputs)
	if err != nil {
		return agent.Tried{}, submit.BuildRequest{}, err
	}
	ins := &tryInputs{store: store, local: local, flags: o.Flags}
	var br submit.BuildRequest
	sub, err := submit.New(submit.Options{
		Store: store, Released: ins, Builds: captured{&br}, AllowLocal: true,
		Maxima: recipes.DefaultMaxima, TempDir: o.Work,
	})
	if err != nil {
		return agent.Tried{}, br, err
	}
	if _, err := sub.Submit(ctx, submit.Request{RepoURL: o.Repo, Ref: o.Ref, Path: o.Path, RequestedBy: "local try"}); err != nil {
		return agent.Tried{}, br, err
	}
	if err := ins.allUsed(br.Recipe); err != nil {
		return agent.Tried{}, br, err
	}
	tcs := o.Toolchains
	if tcs == nil {
		if tcs, err = toolchain.Detect(ctx); err != nil {
			return agent.Tried{}, br, err
		}
	}
	l, err := agent.NewLocal(agent.Options{
		WorkDir: filepath.Join(o.Work, "work"), CacheDir: filepath.Join(o.Work, "cache"),
		Toolchains: tcs, Extract: ExtractSource, Logger: slog.New(slog.DiscardHandler),
		MaxLimits: sandbox.Limits{
			Timeout: time.Duration(recipes.DefaultMaxima.Timeout), MemoryBytes: int64(recipes.DefaultMaxima.Memory),
			CPUs: recipes.DefaultMaxima.CPUs, MaxProcs: 1024, WriteBytes: 8 << 30,
		},
	}, storeBlobs{store})
	if err != nil {
		return agent.Tried{}, br, err
	}
	tried, err := l.Build(ctx, buildspec.For(br, builder.Limits{}), o.Out, o.Live)
	return tried, br, err
}

// captured is the farm as a try sees it: the build request is kept, and
// built here.
type captured struct{ br *submit.BuildRequest }

func (c captured) CreateBuild(_ context.Context, r submit.BuildRequest) (string, bool, error) {
	*c.br = r
	return "local", true, nil
}

// storeBlobs serves the try's blobs; a build-only input is one of them too.
type storeBlobs struct{ s blob.Store }

func (b storeBlobs) Fetch(ctx context.Context, d blob.Digest) (io.ReadCloser, error) {
	return b.s.Get(ctx, d, 0, -1)
}

func (b storeBlobs) FetchInput(ctx context.Context, _ string, d blob.Digest) (io.ReadCloser, error) {
	return b.s.Get(ctx, d, 0, -1)
}

// localInput is one --input: a file and its digest.
type localInput struct {
	as, path, digest string
}

func localInputs(specs []string) ([]localInput, error) {
	var out []localInput
	for _, s := range specs {
		as, p, ok := strings.Cut(s, "=")
		if !ok || as == "" || p == "" {
			return nil, errs.E(errs.Invalid, "--input %q: want AS=PATH", s)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "--input %s", as)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "--input %s", as)
		}
		out = append(out, localInput{as: as, path: p, digest: "sha256:" + hex.EncodeToString(h.Sum(nil))})
	}
	return out, nil
}

// tryInputs answers a submission's question about escrow inputs from the
// maintainer's --input files, else from the registry's released files,
// and keeps each in the try's store.
type tryInputs struct {
	store blob.Store
	local []localInput
	flags *apicli.Flags
}

func (t *tryInputs) ReleasedFile(ctx context.Context, digest string) (int64, bool, bool, error) {
	for _, in := range t.local {
		if in.digest != digest {
			continue
		}
		f, err := os.Open(in.path)
		if err != nil {
			return 0, false, false, errs.Wrap(errs.Invalid, err, "--input %s", in.as)
		}
		defer f.Close()
		info, err := t.store.Put(ctx, f, blob.Digest(digest))
		if err != nil {
			return 0, false, false, errs.Wrap(errs.Invalid, err, "--input %s changed while it was read", in.as)
		}
		return info.Size, false, true, nil
	}
	if t.flags == nil {
		return 0, false, false, t.missing(digest, "")
	}
	size, err := t.download(ctx, digest)
	if err != nil {
		return 0, false, false, err
	}
	return size, false, true, nil
}

func (t *tryInputs) missing(digest, why string) error {
	var have []string
	for _, in := range t.local {
		have = append(have, in.as+"="+in.digest)
	}
	msg := fmt.Sprintf("escrow input %s is not among the --input files", digest)
	if len(have) > 0 {
		msg += " (they are " + strings.Join(have, ", ") + ")"
	}
	if why != "" {
		msg += "; " + why
	}
	return errs.E(errs.NotFound, "%s: give a local copy with --input AS=PATH", msg)
}

// allUsed refuses an --input the recipe does not name, or names with
// another digest.
func (t *tryInputs) allUsed(r *recipes.Recipe) error {
	for _, in := range t.local {
		found := false
		for _, e := range r.Inputs.Escrow {
			if e.As != in.as {
				continue
			}
			found = true
			if e.Digest != in.digest {
				return errs.E(errs.Invalid, "--input %s: %s hashes to %s; the recipe names %s", in.as, in.path, in.digest, e.Digest)
			}
		}
		if !found {
			return errs.E(errs.Invalid, "--input %s: the recipe has no escrow input with as: %s", in.as, in.as)
		}
	}
	return nil
}

// released is what try reads of the escrow's public listing and deposits.
type released struct {
	Deposits []releasedID `json:"deposits"`
}

type releasedID struct {
	ID string `json:"id"`
}

type releasedManifest struct {
	Manifest []releasedEntry `json:"manifest,omitempty"`
}

type releasedEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	Rights string `json:"rights,omitempty"`
}

// download finds digest among the registry's released deposits and stores
// the file, verified.
func (t *tryInputs) download(ctx context.Context, digest string) (int64, error) {
	hexSum := strings.TrimPrefix(digest, "sha256:")
	var list released
	if err := t.flags.Call(ctx, http.MethodGet, "/v1/deposits?state=released&limit=1000", nil, &list); err != nil {
		return 0, fmt.Errorf("escrow input %s: list released deposits: %w", digest, err)
	}
	for _, d := range list.Deposits {
		var m releasedManifest
		if err := t.flags.Call(ctx, http.MethodGet, "/v1/deposits/"+url.PathEscape(d.ID), nil, &m); err != nil {
			return 0, fmt.Errorf("escrow input %s: deposit %s: %w", digest, d.ID, err)
		}
		for _, e := range m.Manifest {
			if e.SHA256 != hexSum {
				continue
			}
			if e.Rights != "" && e.Rights != "public" {
				return 0, t.missing(digest, fmt.Sprintf("%s of deposit %s is %s, which the registry gives farm builders only", e.Path, d.ID, e.Rights))
			}
			return t.fetchFile(ctx, d.ID, e.Path, digest)
		}
	}
	return 0, t.missing(digest, "no released deposit of the registry publishes it")
}

func (t *tryInputs) fetchFile(ctx context.Context, deposit, path, digest string) (int64, error) {
	base, token, err := t.flags.Server()
	if err != nil {
		return 0, err
	}
	parts := strings.Split(path, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/deposits/"+url.PathEscape(deposit)+"/files/"+strings.Join(parts, "/"), nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpclient.New(httpclient.Options{RetryMax: 4}).StandardClient().Do(req)
	if err != nil {
		return 0, errs.Wrap(errs.Unavailable, err, "escrow input %s", digest)
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode != http.StatusOK {
		return 0, httpclient.DecodeError(resp, "GET "+req.URL.Path)
	}
	info, err := t.store.Put(ctx, resp.Body, blob.Digest(digest))
	if err != nil {
		return 0, fmt.Errorf("escrow input %s from deposit %s: %w", digest, deposit, err)
	}
	return info.Size, nil
}
