package coord

import (
	"context"
	"io"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Build-only inputs: escrow files whose vendor allows them as build inputs
// and never publishes them. A builder gets one only through a job it holds
// whose spec declares it (JobInput), never by digest alone (Fetchable).

// RestrictedInputs tells which blobs are build-only escrow files; the
// escrow answers it through an adapter in cmd/afterlife.
type RestrictedInputs interface {
	BuildOnly(ctx context.Context, d blob.Digest) (bool, error)
}

// Fetchable refuses a blob that a builder may get only through a job: a
// build-only escrow file.
func (s *Service) Fetchable(ctx context.Context, d blob.Digest) error {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return err
	}
	if s.opts.Restricted == nil {
		return nil
	}
	restricted, err := s.opts.Restricted.BuildOnly(ctx, d)
	if err != nil {
		return err
	}
	if restricted {
		return errs.E(errs.NotFound, "blob %s is a build-only escrow file: a builder gets it only through a job that declares it (GET /v1/jobs/<job>/inputs/<digest>)", d)
	}
	return nil
}

// CheckJobInput returns nil when builderID holds the lease on jobID and the
// job's spec declares d as an input.
func (s *Service) CheckJobInput(ctx context.Context, jobID, builderID string, d blob.Digest) error {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return err
	}
	j, err := s.jobRow(ctx, s.db, jobID)
	if err != nil {
		return err
	}
	if err := s.holding(j, builderID, s.now()); err != nil {
		return err
	}
	sp, err := s.spec(ctx, s.db, j.buildID)
	if err != nil {
		return err
	}
	for _, in := range sp.Inputs {
		if in.Digest == d {
			return nil
		}
	}
	return errs.E(errs.NotFound, "job %s declares no input %s", jobID, d)
}

// CheckInput implements the check of FetchInput for the HTTP server, which
// then serves the blob itself (with Range).
func (l *Local) CheckInput(ctx context.Context, jobID string, d blob.Digest) error {
	id, err := l.id(ctx)
	if err != nil {
		return err
	}
	return l.s.CheckJobInput(ctx, jobID, id, d)
}

// FetchInput implements builder.Coordinator.
func (l *Local) FetchInput(ctx context.Context, jobID string, d blob.Digest) (io.ReadCloser, error) {
	if err := l.CheckInput(ctx, jobID, d); err != nil {
		return nil, err
	}
	return l.s.store.Get(ctx, d, 0, -1)
}
