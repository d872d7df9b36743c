package agent

// This file reports a job: it uploads the outputs and the log, and the
// buildinfo and attestation it signs for a build that succeeded.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/internal/blob"
)

// report uploads what a build left and says how it went: the outputs and
// the log always; for a build that succeeded, the buildinfo and the in-toto
// attestation signed with the builder's key.
func (a *Agent) report(ctx context.Context, job *builder.Job, b built, outDir, logPath string, started, finished time.Time) (builder.Report, error) {
	sp := job.Spec
	rep := builder.Report{Failed: b.failed, Reason: b.reason}
	for _, o := range b.outputs {
		if err := a.uploadFile(ctx, job.ID, filepath.Join(outDir, filepath.FromSlash(o.Path)), o.Digest, o.Size); err != nil {
			return builder.Report{}, fmt.Errorf("agent: upload %s: %w", o.Path, err)
		}
	}
	logD, logSize, err := hashFile(logPath)
	if err != nil {
		return builder.Report{}, err
	}
	if err := a.uploadFile(ctx, job.ID, logPath, logD, logSize); err != nil {
		return builder.Report{}, fmt.Errorf("agent: upload log: %w", err)
	}
	rep.Log = logD
	if rep.Failed {
		return rep, nil
	}
	rep.Outputs = b.outputs

	bi := attest.BuildInfo{
		BuildID: job.BuildID, JobID: job.ID,
		Recipe:          attest.Recipe{Name: sp.Recipe.Name, Version: sp.Recipe.Version, RepoURL: sp.Recipe.RepoURL, Commit: sp.Recipe.Commit, Path: sp.Recipe.Path},
		Toolchains:      []attest.Toolchain{{Name: b.tc.Name, Version: b.tc.Version}},
		Inputs:          []attest.Input{{Name: "source", Digest: string(sp.Source)}},
		Env:             sandboxEnv(b.env, b.tc.With(b.tools...), sp.SourceDateEpoch),
		SourceDateEpoch: sp.SourceDateEpoch,
		Builder:         attest.Builder{ID: a.me.ID, Operator: a.me.Operator, KeyID: keys.KeyID(a.o.Key.Public().(ed25519.PublicKey)), Arch: a.o.Arch, AgentVersion: a.o.Version},
		Cache:           b.cache,
		Started:         started, Finished: finished,
	}
	for _, t := range b.tools {
		bi.Toolchains = append(bi.Toolchains, attest.Toolchain{Name: t.Name, Version: t.Version})
	}
	for _, in := range sp.Inputs {
		bi.Inputs = append(bi.Inputs, attest.Input{Name: in.Mount, Digest: string(in.Digest)})
	}
	for _, o := range b.outputs {
		bi.Outputs = append(bi.Outputs, attest.Output{Path: o.Path, Kind: o.Kind, Digest: string(o.Digest), Size: o.Size})
	}
	biJSON, err := json.MarshalIndent(bi, "", "  ")
	if err != nil {
		return builder.Report{}, fmt.Errorf("agent: encode buildinfo: %w", err)
	}
	st, err := attest.Statement(bi)
	if err != nil {
		return builder.Report{}, err
	}
	envelope, err := attest.Sign(ctx, a.o.Key, st)
	if err != nil {
		return builder.Report{}, err
	}
	if rep.BuildInfo, err = a.uploadBytes(ctx, job.ID, biJSON); err != nil {
		return builder.Report{}, fmt.Errorf("agent: upload buildinfo: %w", err)
	}
	if rep.Attestation, err = a.uploadBytes(ctx, job.ID, envelope); err != nil {
		return builder.Report{}, fmt.Errorf("agent: upload attestation: %w", err)
	}
	return rep, nil
}

func hashFile(p string) (blob.Digest, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("agent: hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("agent: hash %s: %w", p, err)
	}
	return blob.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), n, nil
}

func (a *Agent) uploadFile(ctx context.Context, jobID, p string, d blob.Digest, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.o.Coordinator.Upload(ctx, jobID, d, size, f)
}

func (a *Agent) uploadBytes(ctx context.Context, jobID string, b []byte) (blob.Digest, error) {
	d := blob.FromBytes(b)
	return d, a.o.Coordinator.Upload(ctx, jobID, d, int64(len(b)), bytesReader(b))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
