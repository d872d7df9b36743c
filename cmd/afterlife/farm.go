package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/agent"
	buildercli "github.com/afterlife-oss/afterlife/builder/cli"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/farmhttp"
	"github.com/afterlife-oss/afterlife/builder/rebuild"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/submit"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/web"
	"github.com/afterlife-oss/afterlife/web/live"
)

// recipeMaxima are the serve settings a recipe's limits must stay within.
func (s *system) recipeMaxima() recipes.Maxima {
	return recipes.Maxima{Timeout: recipes.Duration(s.cfg.MaxBuildTimeout), Memory: recipes.ByteSize(s.cfg.MaxBuildMemory), CPUs: s.cfg.MaxBuildCPUs}
}

// farmBuilds creates builds whose jobs carry the serve settings that bound
// processes, bytes written and log size.
func (s *system) farmBuilds(p *parts) coord.Submissions {
	return coord.Submissions{Coord: p.coord, Ceilings: s.buildCeilings()}
}

func (s *system) buildCeilings() builder.Limits {
	return builder.Limits{Processes: s.cfg.MaxBuildProcs, WriteBytes: s.cfg.MaxBuildWrite, LogBytes: s.cfg.MaxBuildLog}
}

// wireFarmAndRegistry builds the coordinator, recipe submission, the
// registry and the web pages, and starts the local builder agents.
func (s *system) wireFarmAndRegistry(ctx context.Context, root, v1 *httpapi.Router, p *parts) error {
	var err error
	p.coord, err = coord.New(ctx, coord.Options{
		DB: s.db, Store: s.blobs, Operators: s.auth, Quorum: s.cfg.Quorum, LeaseTTL: s.cfg.LeaseTTL, Holder: s.cfg.ReplicaID,
		MaxLogBytes: s.cfg.MaxBuildLog, Now: s.now, Logger: s.log.With("part", "farm"), Metrics: s.metrics,
		Restricted: buildOnlyFiles{p.escrow},
	})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, p.coord.Close)
	s.background = append(s.background, func(ctx context.Context) {
		logStop(s, "lease sweeper", p.coord.Run(ctx, s.cfg.LeaseTTL/4))
	})

	p.submitter, err = submit.New(submit.Options{
		Store: s.blobs, Released: releasedFiles{p.escrow}, Builds: s.farmBuilds(p), Maxima: s.recipeMaxima(),
		AllowLocal: s.cfg.AllowLocalRepos, TempDir: filepath.Join(s.cfg.Data, "tmp"),
		Logger: s.log.With("part", "submit"),
	})
	if err != nil {
		return err
	}
	farmhttp.NewServer(p.coord, s.blobs, farmhttp.Options{
		Submitter: farmSubmitter{p.submitter}, Logger: s.log.With("part", "farm"),
	}).Register(v1)

	// Download receipts are MACed with a key every replica shares.
	receiptKey := s.keys.downloadReceipt
	maxUpdateLoad := s.cfg.MaxUpdateLoad
	if maxUpdateLoad == 0 {
		maxUpdateLoad = registry.NoUpdateChecks
	}
	p.reg, err = registry.New(ctx, registry.Options{
		DB: s.db, Blobs: s.blobs, TUF: p.tuf, Catalog: p.catalog,
		Builds: reproducibleBuilds{p.coord}, Escrow: productEscrow{p.escrow}, Farm: productBuilds{p.coord},
		Now: s.now, Logger: s.log.With("part", "registry"), ReplicaID: s.cfg.ReplicaID,
		MaxUpdateLoad: maxUpdateLoad, ReportsPerHour: s.cfg.ReportsPerHour, ReportsPerNetwork: s.cfg.ReportsPerNetwork,
		ReceiptKey: receiptKey, Metrics: s.metrics, BaseURL: s.cfg.PublicURL,
		TimestampMargin: s.cfg.TimestampExpiry / 4,
		Name:            s.cfg.PublicURL, EndingSoonWindow: s.cfg.EndingSoon, HandoverPlans: handoverPlans{p.escrow},
	})
	if err != nil {
		return err
	}
	p.reg.Register(v1, root)
	p.catalog.OnDeviceIDsChanged(p.reg.Refresh)
	p.catalog.OnLifecycleChanged(p.reg.LifecycleChanged)
	p.catalog.KeptBy(depositsKeep{p.escrow}, releasesKeep{p.reg})
	s.background = append(s.background, func(ctx context.Context) { logStop(s, "registry", p.reg.Run(ctx)) })
	fwupdBranch, err := s.wireFwupd(ctx, root, p)
	if err != nil {
		return err
	}

	secret := s.keys.session
	deps := live.Parts{
		Auth: s.auth, Catalog: p.catalog, Registry: p.reg, Farm: p.coord, Submitter: p.submitter, Escrow: p.escrow,
		Log:         productLogEntries{p},
		FwupdBranch: fwupdBranch,
	}.Deps()
	deps.Log = s.log.With("part", "web")
	site, err := web.New(deps, web.Options{
		CSRFSecret: secret, SecureCookies: len(s.cfg.PublicURL) > 8 && s.cfg.PublicURL[:8] == "https://",
		Feeds:      []web.FeedLink{{Title: "New firmware, every device", URL: "/feeds/firmware.atom"}, {Title: "Vendor files made public", URL: "/feeds/releases.atom"}},
		APIDocsURL: "/v1/openapi.json", MaxUpload: s.cfg.MaxFileSize, PublicURL: s.cfg.PublicURL,
		FarmActivityURL: "/v1/farm/activity",
	})
	if err != nil {
		return err
	}
	site.Register(s.api.Engine(), s.api)

	return s.startLocalBuilders(ctx, p)
}

// sealedRebuilder is the operator's own builder for the sealed
// completeness check: this server's machine, the sandbox, no farm job. A
// server without local builders has none, and refuses the check.
func (s *system) sealedRebuilder() escrow.Rebuilder {
	if s.cfg.LocalBuilders == 0 {
		return nil
	}
	return sealedRebuilds{rebuild.New(rebuild.Options{
		WorkDir: filepath.Join(s.cfg.Data, "builders", "sealed"), Toolchains: toolchain.Detect,
		Maxima: s.recipeMaxima(), Ceilings: s.buildCeilings(), Logger: s.log.With("part", "sealed-rebuild"),
	})}
}

// startLocalBuilders runs the embedded default's builder agents in this
// process: each has its own key, work and cache directories (the caches may
// be shared by servers on one machine, --builder-cache; the work directory
// is always this server's own, under its data directory), and its token
// is bound to a demo operator of its own (labelled as such: they run on
// one machine and are not independent), so one machine reaches a quorum.
func (s *system) startLocalBuilders(ctx context.Context, p *parts) error {
	if s.cfg.LocalBuilders == 0 {
		return nil
	}
	if err := sandbox.Available(); err != nil {
		return fmt.Errorf("serve: local builders need the bubblewrap sandbox (or run with --local-builders 0): %w", err)
	}
	tcs, err := toolchain.Detect(ctx)
	if err != nil {
		return fmt.Errorf("serve: detect toolchains: %w", err)
	}
	host, _ := os.Hostname()
	for i := 1; i <= s.cfg.LocalBuilders; i++ {
		name := fmt.Sprintf("local-%d", i)
		dir, work := filepath.Join(s.cfg.BuilderCache, name), filepath.Join(s.cfg.Data, "builders", name, "work")
		for _, d := range []string{dir, work} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("serve: builder dir: %w", err)
			}
		}
		key, err := loadOrCreateKey(filepath.Join(s.cfg.Keys, "builders", name+".key"))
		if err != nil {
			return err
		}
		tokenID, err := s.auth.BuilderToken(ctx, "builder "+name, fmt.Sprintf("demo-operator-%d", i),
			fmt.Sprintf("Demo operator %d (local builder %s of this server; not independent)", i, name))
		if err != nil {
			return err
		}
		a, err := agent.New(agent.Options{
			Coordinator: p.coord.Local(tokenID), Key: key, Name: host + "-" + name,
			WorkDir: work, CacheDir: filepath.Join(dir, "cache"),
			Toolchains: tcs, Extract: buildercli.ExtractSource, Version: binaryVersion(), Logger: s.log.With("part", "builder"),
		})
		if err != nil {
			return err
		}
		s.background = append(s.background, func(ctx context.Context) { logStop(s, "local builder "+name, a.Run(ctx)) })
	}
	return nil
}
