// Package rebuild runs a recipe on the server's own machine, in the
// sandbox, over files handed to it rather than fetched: the sealed
// completeness check's build of a deposit that nobody outside the escrow
// may see. It is the operator's own builder and no farm job: nothing goes
// through the queue, so no community builder can lease it; the files and
// outputs stay in a workspace (a tmpfs when run as root) removed when the
// build ends, and never reach the blob store.
//
// It must not upload, sign or publish anything: what it builds is
// compared and thrown away.
package rebuild

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/relpath"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/constraint"
)

// File is one file the build may read, by its path among the files.
type File struct {
	Path   string
	SHA256 string // hex
	Open   func(ctx context.Context) (io.ReadCloser, error)
}

// Output is one of the recipe's outputs that make up the image: its
// firmware and other outputs. An SBOM or a log describes the image and is
// no part of it, so Run leaves them out of what is compared.
type Output struct {
	Path string
	Data []byte
}

// Options configure the rebuilder.
type Options struct {
	// WorkDir holds one workspace per build, removed when it ends.
	WorkDir string
	// Toolchains finds the toolchains of this machine (toolchain.Detect).
	Toolchains func(ctx context.Context) ([]toolchain.Toolchain, error)
	// Maxima bound what a recipe may ask for (timeout, memory, CPUs), as
	// for a farm build; Ceilings bound processes, bytes written and log.
	Maxima   recipes.Maxima
	Ceilings builder.Limits
	Logger   *slog.Logger
}

// Rebuilder runs recipes over handed files.
type Rebuilder struct{ o Options }

// New returns a Rebuilder. WorkDir and Toolchains are required.
func New(o Options) *Rebuilder {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Rebuilder{o: o}
}

// Run builds with the recipe at recipePath, one of files. The recipe's
// directory among files is its /build (as a recipe repository would be);
// each escrow input it names by digest is the file with that digest,
// mounted at /inputs/escrow/<as>. A recipe with git inputs is refused: the
// check builds from the deposit alone. It returns the recipe's outputs.
func (r *Rebuilder) Run(ctx context.Context, recipePath string, files []File) ([]Output, error) {
	byPath := map[string]File{}
	byDigest := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
		byDigest["sha256:"+f.SHA256] = f
	}
	if r.o.WorkDir == "" || r.o.Toolchains == nil {
		return nil, errs.E(errs.Internal, "rebuild: WorkDir and Toolchains are required")
	}
	rf, ok := byPath[recipePath]
	if !ok {
		return nil, errs.E(errs.Invalid, "rebuild: no recipe file %s", recipePath)
	}
	data, err := readAll(ctx, rf, 1<<20)
	if err != nil {
		return nil, err
	}
	rec, err := recipes.ParseFile(recipePath, data)
	if err != nil {
		return nil, err
	}
	if err := recipes.CheckMaxima(rec, r.o.Maxima); err != nil {
		return nil, err
	}
	if len(rec.Inputs.Git) > 0 {
		return nil, errs.E(errs.Invalid, "rebuild: recipe %s has git inputs; a sealed check builds from the deposit alone", recipePath)
	}
	tc, err := r.toolchain(ctx, rec.Toolchain, rec.Tools)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.o.WorkDir, 0o700); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "rebuild: work dir")
	}
	ws, err := sandbox.NewWorkspace(filepath.Join(r.o.WorkDir, ids.New("rb")))
	if err != nil {
		return nil, err
	}
	defer ws.Close()

	// The recipe's directory is the build's source, as its repository
	// would be on a farm builder.
	dir := path.Dir(recipePath)
	for _, f := range files {
		rel := f.Path
		if dir != "." {
			if !strings.HasPrefix(f.Path, dir+"/") {
				continue
			}
			rel = strings.TrimPrefix(f.Path, dir+"/")
		}
		if err := place(ctx, f, filepath.Join(ws.Build, filepath.FromSlash(rel)), 0o644); err != nil {
			return nil, err
		}
	}
	for _, in := range rec.Inputs.Escrow {
		f, ok := byDigest[in.Digest]
		if !ok {
			return nil, errs.E(errs.Invalid, "rebuild: the recipe's input %s (%s) is not in the deposit", in.As, in.Digest)
		}
		if err := relpath.Check(in.As); err != nil {
			return nil, err
		}
		if err := place(ctx, f, filepath.Join(ws.Inputs, "escrow", filepath.FromSlash(in.As)), 0o444); err != nil {
			return nil, err
		}
	}

	limits := sandbox.Limits{
		Timeout: time.Duration(rec.Limits.Timeout), MemoryBytes: int64(rec.Limits.Memory), CPUs: rec.Limits.CPUs,
		MaxProcs: r.o.Ceilings.Processes, WriteBytes: r.o.Ceilings.WriteBytes,
	}
	if limits.Timeout == 0 {
		limits.Timeout = time.Duration(recipes.DefaultTimeout)
	}
	if limits.MemoryBytes == 0 {
		limits.MemoryBytes = int64(recipes.DefaultMemory)
	}
	if limits.CPUs == 0 {
		limits.CPUs = recipes.DefaultCPUs
	}
	if _, err := ws.Limit(limits.WriteBytes); err != nil {
		return nil, err
	}
	var epoch int64
	if rec.SourceDateEpoch != nil {
		epoch = *rec.SourceDateEpoch
	}
	var log bytes.Buffer
	capped := builder.NewCappedLog(&log, max(r.o.Ceilings.LogBytes, 64<<10))
	res, err := sandbox.Run(ctx, sandbox.Spec{
		WorkDir: ws.Build, Inputs: ws.Inputs, OutDir: ws.Out, TmpDir: ws.Tmp,
		ReadOnly: tc.Paths, Path: tc.Bin, Env: tc.Env,
		Steps: rec.Steps, SourceDateEpoch: epoch, Limits: limits, Log: capped,
	})
	_ = capped.Close()
	if err != nil {
		r.o.Logger.Warn("sealed rebuild failed", "recipe", recipePath, "reason", res.Reason, "err", err)
		return nil, errs.E(errs.Invalid, "rebuild: the build failed: %s; its log ends:\n%s", res.Reason, tail(log.String(), 2000))
	}
	var out []Output
	for _, o := range rec.Outputs {
		if o.Kind == recipes.KindSBOM || o.Kind == recipes.KindLog {
			continue
		}
		b, err := os.ReadFile(filepath.Join(ws.Out, filepath.FromSlash(o.Path)))
		if err != nil {
			return nil, errs.E(errs.Invalid, "rebuild: the recipe's output %s was not written", o.Path)
		}
		out = append(out, Output{Path: o.Path, Data: b})
	}
	r.o.Logger.Info("sealed rebuild done", "recipe", recipePath, "outputs", len(out), "took", res.Duration.Round(time.Millisecond))
	return out, nil
}

// toolchain finds the recipe's toolchain and the tools it declares (its
// SBOM generators, each at exactly its version) on this machine, as one
// toolchain to bind into the sandbox.
func (r *Rebuilder) toolchain(ctx context.Context, want recipes.Toolchain, tools []recipes.Tool) (toolchain.Toolchain, error) {
	tcs, err := r.o.Toolchains(ctx)
	if err != nil {
		return toolchain.Toolchain{}, err
	}
	pins := make([]toolchain.Pin, len(tools))
	for i, t := range tools {
		pins[i] = toolchain.Pin{Name: t.Name, Version: t.Version}
	}
	found, err := toolchain.FindTools(tcs, pins)
	if err != nil {
		return toolchain.Toolchain{}, errs.E(errs.Unavailable, "rebuild: %s (on this server)", errs.Message(err))
	}
	for _, tc := range tcs {
		if tc.Name == want.Name && constraint.Satisfies(tc.Version, want.Version) {
			return tc.With(found...), nil
		}
	}
	return toolchain.Toolchain{}, errs.E(errs.Unavailable, "rebuild: toolchain %s %q is not on this server", want.Name, want.Version)
}

func readAll(ctx context.Context, f File, most int64) ([]byte, error) {
	rc, err := f.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, most+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > most {
		return nil, errs.E(errs.TooLarge, "rebuild: %s is larger than %d bytes", f.Path, most)
	}
	return b, nil
}

// place copies f to dst, reading it through its digest check.
func place(ctx context.Context, f File, dst string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return errs.Wrap(errs.Internal, err, "rebuild: stage %s", f.Path)
	}
	rc, err := f.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "rebuild: stage %s", f.Path)
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("rebuild: stage %s: %w", f.Path, err)
	}
	return out.Close()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
