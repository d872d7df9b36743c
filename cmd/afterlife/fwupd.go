package main

import (
	"context"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
)

// wireFwupd serves the fwupd remote of the community releases. Its keys
// live under KEYS/fwupd: the first replica to serve the remote makes the
// CA (loudly, until an operator moves its key offline) and the database
// records it; a replica without a usable signing certificate, or holding
// another CA, runs without the remote and says why, so the rest of the
// registry keeps serving. One replica at a time rebuilds the remote.
func (s *system) wireFwupd(ctx context.Context, root *httpapi.Router, p *parts) (string, error) {
	if s.cfg.FwupdEvery <= 0 {
		return "", nil
	}
	log := s.log.With("part", "fwupd")
	if err := fwupd.Migrate(ctx, s.db); err != nil {
		return "", err
	}
	recorded, err := fwupd.RecordedCA(ctx, s.db)
	if err != nil {
		return "", err
	}
	signer, err := fwupd.LoadSigner(filepath.Join(s.cfg.Keys, "fwupd"), s.cfg.PublicURL, s.now(), recorded == "", log)
	if err != nil {
		log.Error("the fwupd remote is not served", "err", err)
		return "", nil
	}
	remote, err := fwupd.New(ctx, fwupd.Options{
		DB: s.db, Blobs: s.blobs, Products: p.catalog, Releases: p.reg, Signer: signer, PublicURL: s.cfg.PublicURL,
		MinInterval: s.cfg.FwupdEvery, Now: s.now, Logger: log, ReplicaID: s.cfg.ReplicaID,
	})
	if errs.Is(err, errs.Conflict) {
		log.Error("the fwupd remote is not served", "err", err)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	remote.Register(root)
	s.background = append(s.background, func(ctx context.Context) { logStop(s, "fwupd export", remote.Run(ctx, s.cfg.FwupdEvery)) })
	return remote.Branch(), nil
}
