package agent

// This file runs one build on the maintainer's own machine (afterlife
// recipe try): the farm job's fetch, sandbox and output hashing, with the
// source and inputs handed in rather than leased, and nothing uploaded or
// signed.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
)

// Local builds specs on this machine as a farm builder would, one at a
// time, with no coordinator: no lease, no quorum, no upload, no
// attestation.
type Local struct{ a *Agent }

// NewLocal returns a local builder. Of o, Coordinator, Key, Name and the
// polling settings are not used; WorkDir, CacheDir, Toolchains and
// Extract are required as for an agent. Blobs serves the spec's source and
// inputs by digest; each is verified as on a farm builder.
func NewLocal(o Options, blobs Blobs) (*Local, error) {
	if blobs == nil {
		return nil, errs.E(errs.Invalid, "agent: a local build needs its blobs")
	}
	if o.Name == "" {
		o.Name = "local"
	}
	a, err := newAgent(o)
	if err != nil {
		return nil, err
	}
	a.blobs = blobs
	return &Local{a: a}, nil
}

// Tried is what a local build left.
type Tried struct {
	// Outputs are the declared outputs with their digests, copied into the
	// output directory.
	Outputs []builder.OutputFile
	Failed  bool
	Reason  string
	// Log is the whole build log, in the output directory; LogTail its end.
	Log     string
	LogTail string
}

// Build runs spec once, with an empty /cache as the farm's cold witness
// has, writing the log to live and to build.log in outDir, and copies the
// outputs into outDir. A build that fails is a Tried with Failed set; an
// error means it could not run here.
func (l *Local) Build(ctx context.Context, sp builder.Spec, outDir string, live io.Writer) (Tried, error) {
	a := l.a
	if err := sp.Validate(); err != nil {
		return Tried{}, err
	}
	limits, maxLog, err := a.limits(sp.Limits)
	if err != nil {
		return Tried{}, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Tried{}, errs.Wrap(errs.Invalid, err, "output directory")
	}
	job := &builder.Job{ID: "job-" + ids.New("try"), Spec: sp, Cold: true}
	ws, err := sandbox.NewWorkspace(filepath.Join(a.o.WorkDir, job.ID))
	if err != nil {
		return Tried{}, err
	}
	defer ws.Close()
	logPath := filepath.Join(outDir, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return Tried{}, fmt.Errorf("agent: create log: %w", err)
	}
	defer logFile.Close()
	out := io.MultiWriter(logFile, live)
	fmt.Fprintf(out, "==> afterlife recipe try: %s %s at %s, one local build (no quorum)\n", sp.Recipe.Name, sp.Recipe.Version, sp.Recipe.Commit)
	b, err := a.fetchAndBuild(ctx, job, ws, limits, maxLog, out, logPath)
	if err != nil {
		return Tried{}, err
	}
	t := Tried{Failed: b.failed, Reason: b.reason, Log: logPath}
	if !b.failed {
		if err := copyOutputs(ws.Out, outDir, b.outputs); err != nil {
			return Tried{}, err
		}
		t.Outputs = b.outputs
	}
	if err := logFile.Sync(); err != nil {
		return Tried{}, fmt.Errorf("agent: write log: %w", err)
	}
	t.LogTail = tail(logPath, 4<<10)
	return t, nil
}

// copyOutputs copies the hashed outputs out of the workspace before it
// goes, reading them inside it only.
func copyOutputs(from, to string, outs []builder.OutputFile) error {
	root, err := os.OpenRoot(from)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, o := range outs {
		src, err := root.Open(filepath.FromSlash(o.Path))
		if err != nil {
			return fmt.Errorf("agent: output %s: %w", o.Path, err)
		}
		dst := filepath.Join(to, filepath.FromSlash(o.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			src.Close()
			return err
		}
		f, err := os.Create(dst)
		if err == nil {
			_, err = io.Copy(f, src)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		src.Close()
		if err != nil {
			return fmt.Errorf("agent: output %s: %w", o.Path, err)
		}
	}
	return nil
}
