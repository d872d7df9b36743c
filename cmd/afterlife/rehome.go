package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/registry/mirror/seed"
	rehomecli "github.com/afterlife-oss/afterlife/registry/mirror/seed/cli"
	"github.com/afterlife-oss/afterlife/registry/tufdb"
)

// newRehomeCmd is "afterlife admin rehome" (registry/mirror/seed/cli),
// given the new server's storage and parts as serve opens them.
func newRehomeCmd() *cobra.Command {
	return rehomecli.New(withServeSettings, func(ctx context.Context, cfg config.Serve) (rehomecli.Registry, error) {
		log := newLogger(cfg)
		sys, err := openSystem(ctx, cfg, log)
		if err != nil {
			return rehomecli.Registry{}, err
		}
		meta, err := tufdb.New(ctx, sys.db, sys.now)
		if err != nil {
			sys.close()
			return rehomecli.Registry{}, err
		}
		return rehomecli.Registry{TUF: meta, Blobs: sys.blobs, Now: sys.now, Logger: log, Close: sys.close,
			Prepare: func(ctx context.Context) (err error) { sys.keys, err = sys.loadKeys(ctx); return err },
			Wire: func(ctx context.Context) (seed.Parts, error) {
				if err := sys.wire(ctx); err != nil {
					return seed.Parts{}, err
				}
				return seed.Parts{Catalog: sys.parts.catalog, Releases: sys.parts.reg, Builds: sys.parts.coord, Blobs: sys.blobs}, nil
			}}, nil
	})
}
