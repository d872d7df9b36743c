package agent

// This file fetches a job's inputs: every blob by digest, verified before
// it is kept, then unpacked or placed where the build sees it.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes/inputkind"
)

// Blobs is where a build's source and inputs come from, by digest: the
// coordinator for a farm job, the maintainer's own files for a local try.
type Blobs interface {
	Fetch(ctx context.Context, d blob.Digest) (io.ReadCloser, error)
	FetchInput(ctx context.Context, jobID string, d blob.Digest) (io.ReadCloser, error)
}

// fetchInputs unpacks the recipe source into the build directory and puts
// every input under the inputs directory, each fetched by digest and
// verified.
func (a *Agent) fetchInputs(ctx context.Context, jobID string, sp builder.Spec, ws *sandbox.Workspace, live io.Writer) error {
	if err := a.unpack(ctx, sp.Source, ws.Build); err != nil {
		return fmt.Errorf("agent: source %s: %w", sp.Source, err)
	}
	fmt.Fprintf(live, "==> source %s unpacked\n", sp.Source)
	for _, in := range sp.Inputs {
		dst := filepath.Join(ws.Inputs, filepath.FromSlash(in.Mount))
		var err error
		switch {
		case in.Kind == inputkind.GitArchive:
			err = a.unpack(ctx, in.Digest, dst)
		case in.BuildOnly:
			// A build-only file comes through this job alone and is not
			// kept in the agent's cache for other jobs.
			err = a.placeJobInput(ctx, jobID, in.Digest, dst)
		default:
			err = a.place(ctx, in.Digest, dst)
		}
		if err != nil {
			return fmt.Errorf("agent: input %s (%s): %w", in.Mount, in.Digest, err)
		}
		fmt.Fprintf(live, "==> input %s verified: %s\n", in.Mount, in.Digest)
	}
	return nil
}

// cached returns the path of a verified copy of blob d, fetching it first
// when this agent has not seen it.
func (a *Agent) cached(ctx context.Context, d blob.Digest) (string, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return "", err
	}
	p := filepath.Join(a.o.CacheDir, "blobs", d.Hex())
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	rc, err := a.blobs.Fetch(ctx, d)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".fetch-*")
	if err != nil {
		return "", fmt.Errorf("agent: cache %s: %w", d, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), rc); err != nil {
		tmp.Close()
		return "", errs.Wrap(errs.Unavailable, err, "agent: fetch %s", d)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("agent: cache %s: %w", d, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != string(d) {
		return "", errs.E(errs.Invalid, "agent: blob %s arrived with content %s; refusing it", d, got)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("agent: cache %s: %w", d, err)
	}
	return p, nil
}

func (a *Agent) unpack(ctx context.Context, d blob.Digest, dir string) error {
	p, err := a.cached(ctx, d)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.o.Extract(f, dir)
}

func (a *Agent) place(ctx context.Context, d blob.Digest, dst string) error {
	p, err := a.cached(ctx, d)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// placeJobInput fetches input d through job jobID (a build-only escrow
// file), verifying its digest, straight to dst: nothing stays in the cache.
func (a *Agent) placeJobInput(ctx context.Context, jobID string, d blob.Digest, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rc, err := a.blobs.FetchInput(ctx, jobID, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), rc); err != nil {
		out.Close()
		os.Remove(dst)
		return errs.Wrap(errs.Unavailable, err, "agent: fetch %s", d)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != string(d) {
		os.Remove(dst)
		return errs.E(errs.Invalid, "agent: input %s arrived with content %s; refusing it", d, got)
	}
	return nil
}
