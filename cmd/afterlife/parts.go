package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/recipes/submit"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/translog"
	"github.com/afterlife-oss/afterlife/registry/tuf"
	"github.com/afterlife-oss/afterlife/registry/tufdb"
)

// parts are the built parts of a running server.
type parts struct {
	auth      *auth.Service
	catalog   *catalog.Catalog
	escrow    *escrow.Service
	tuf       *tuf.Repo
	reg       *registry.Service
	coord     *coord.Service
	submitter *submit.Submitter
	translog  *translog.Log
}

// wireParts builds escrow, the build farm, the registry and the web pages
// on the shared system, and connects them through the adapters in
// adapters.go. Each part gets only the small interfaces it declares.
func (s *system) wireParts(ctx context.Context, root, v1 *httpapi.Router) error {
	p := parts{auth: s.auth}
	var err error

	// Products: registered by vendors, read by everyone.
	if p.catalog, err = catalog.New(ctx, s.db, s.now); err != nil {
		return err
	}
	p.catalog.RegisterRoutes(v1)
	// Search finds products by their vendor's display name: the catalog
	// keeps a copy, caught up here and told of every new name.
	if err := syncVendorNames(ctx, s.auth, p.catalog); err != nil {
		return err
	}
	s.auth.OnOrgNamed(p.catalog.SetVendorName)
	for _, d := range p.catalog.DroppedAtUpgrade() {
		s.log.Warn("device id left to the product that claimed it first; a device id belongs to one product",
			"device_id", d.DeviceID, "dropped_from", d.Product, "holder", d.Holder,
			"fix", fmt.Sprintf("afterlife admin device-ids reassign %s --to %s", d.DeviceID, d.Product))
	}

	// Escrow: sealed deposits, release policies, receipts, scrubs.
	handovers := &escrow.PublishHandovers{Publisher: publishHandover{p.catalog}}
	p.escrow, err = escrow.New(ctx, escrow.Options{
		DB: s.db, Blobs: s.blobs, Products: escrowProducts{p.catalog}, Identity: s.keys.escrow, ReceiptKey: s.keys.receipt,
		Logger: s.log.With("part", "escrow"), Now: s.now, BaseURL: s.cfg.PublicURL, Retention: s.cfg.Retention,
		Limits:    manifest.Limits{MaxFileSize: s.cfg.MaxFileSize, MaxDepositSize: s.cfg.MaxDepositSize},
		Metrics:   escrowMetrics(s.metrics),
		Artifacts: releaseArtifacts{&p},
		Handover:  escrowHandover{&p},
		Rebuilder: s.sealedRebuilder(),
		// Told of every release, through escrow's outbox, until they
		// have heard it.
		AfterRelease: map[string]escrow.AfterRelease{"hand-over": handOver{p.catalog}, "publish-handover": handovers},
	})
	if err != nil {
		return err
	}
	handovers.Escrow = p.escrow
	p.escrow.Register(v1, root)
	s.background = append(s.background,
		func(ctx context.Context) {
			logStop(s, "escrow scheduler", p.escrow.Scheduler(s.cfg.ReplicaID).Run(ctx, s.cfg.SchedulerEvery))
		},
		func(ctx context.Context) {
			logStop(s, "escrow outbox", p.escrow.Outbox(s.cfg.ReplicaID).Run(ctx, s.cfg.SchedulerEvery))
		},
	)
	if s.cfg.ScrubEvery > 0 {
		s.background = append(s.background,
			func(ctx context.Context) {
				logStop(s, "scrubber", p.escrow.Scrubber(s.cfg.ReplicaID).RunEvery(ctx, s.cfg.ScrubEvery))
			})
	}

	// TUF metadata lives in the database, keys under the key directory.
	metaStore, err := tufdb.New(ctx, s.db, s.now)
	if err != nil {
		return err
	}
	if p.tuf, err = tuf.OpenWith(ctx, metaStore, filepath.Join(s.cfg.Keys, "tuf"), tuf.Options{
		Now: s.now, TimestampExpiry: s.cfg.TimestampExpiry, Logger: s.log.With("part", "tuf"),
	}); err != nil {
		return err
	}

	if err := s.wireFarmAndRegistry(ctx, root, v1, &p); err != nil {
		return err
	}
	if err := s.wireTranslog(ctx, root, v1, &p); err != nil {
		return err
	}
	s.parts = &p
	return nil
}

func logStop(s *system, what string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error(what+" stopped", "err", err)
	}
}

// loadOrCreateKey loads an ed25519 key file, generating it on first start.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	k, err := keys.Load(path)
	if errs.Is(err, errs.NotFound) {
		return keys.Generate(path)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: key %s: %w", path, err)
	}
	return k, nil
}

func escrowMetrics(r prometheus.Registerer) escrow.Metrics {
	c := func(name, help string) prometheus.Counter {
		ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		r.MustRegister(ctr)
		return ctr
	}
	return escrow.Metrics{
		BlobsChecked: c("afterlife_scrub_blobs_checked_total", "Blobs re-hashed by integrity scrubs."),
		BlobsCorrupt: c("afterlife_scrub_failures_total", "Blobs found corrupt or missing by scrubs or reads."),
		Releases:     c("afterlife_escrow_releases_total", "Deposits released."),
	}
}
