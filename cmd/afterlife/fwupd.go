package main

import (
	"context"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
)

// wireFwupd serves the fwupd remote of the community releases: its keys
// live under KEYS/fwupd (the CA made on first start, loudly, until an
// operator moves it offline), and one replica at a time rebuilds it.
// Without a usable signing certificate the server runs without the remote
// and says why.
func (s *system) wireFwupd(ctx context.Context, root *httpapi.Router, p *parts) (string, error) {
	if s.cfg.FwupdEvery <= 0 {
		return "", nil
	}
	log := s.log.With("part", "fwupd")
	signer, err := fwupd.LoadSigner(filepath.Join(s.cfg.Keys, "fwupd"), s.cfg.PublicURL, s.now(), true, log)
	if err != nil {
		log.Error("the fwupd remote is not served", "err", err)
		return "", nil
	}
	remote, err := fwupd.New(ctx, fwupd.Options{
		DB: s.db, Blobs: s.blobs, Products: p.catalog, Releases: p.reg, Signer: signer, PublicURL: s.cfg.PublicURL,
		MinInterval: s.cfg.FwupdEvery, Now: s.now, Logger: log, ReplicaID: s.cfg.ReplicaID,
	})
	if err != nil {
		return "", err
	}
	remote.Register(root)
	s.background = append(s.background, func(ctx context.Context) { logStop(s, "fwupd export", remote.Run(ctx, s.cfg.FwupdEvery)) })
	return remote.Branch(), nil
}
