package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/examples"
	"github.com/afterlife-oss/afterlife/recipes/submit"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
)

// The demo tells the whole story on an empty data directory: a vendor ends
// a camera, deposits its package with an immediate policy and a handover
// statement signed with its (generated) update key, a maintainer's
// recipe (example afterlife-cam) is built by the local builders, and the
// reproducible result is published on stable, where a device can fetch it.
const (
	demoOrg     = "demo"
	demoProduct = "demo-cam"
	demoDevice  = "demo:afterlife-cam"
)

// demoDeviceIDs are the ids the demo product lists, all handed over by the
// demo vendor's statement.
var demoDeviceIDs = []string{demoDevice, "usb:1d6b:0104"}

var demoActor = principal.Principal{Role: principal.Admin, Name: "demo"}

// demoDeposit is what the demo vendor hands over.
var demoDeposit = map[string]string{
	"docs/datasheet.md": "# AfterLife Cam 1\n\nSoC: ARMv7 (Cortex-A7), 128 MiB RAM, 16 MiB SPI flash.\n" +
		"Boot: U-Boot loads update.tar.gz from the SD card when present.\n",
	"src/camd.conf": "# vendor daemon configuration\nlisten = :8080\ncloud = https://cloud.vendor.invalid\n",
}

// seedDemo runs once per data directory, in the background, and logs each
// step so the person who ran `make run` can follow it.
func (s *system) seedDemo(ctx context.Context) error {
	p := s.parts
	marker := filepath.Join(s.cfg.Data, "demo.done")
	if _, err := os.Stat(marker); err == nil {
		s.log.Info("demo already seeded", "product", demoProduct)
		return nil
	}
	log := s.log.With("part", "demo")
	log.Info("seeding the demo: vendor, product, deposit, recipe, build, release")

	if err := s.auth.CreateOrg(ctx, demoOrg, "Demo Devices Inc.", "vendor"); err != nil && !errs.Is(err, errs.Conflict) {
		return err
	}
	if _, err := p.catalog.Get(ctx, demoProduct); errs.Is(err, errs.NotFound) {
		_, err = p.catalog.Register(ctx, demoActor, catalog.Registration{
			ID: demoProduct, Vendor: demoOrg, Model: "AfterLife Cam 1", Revisions: []string{"A", "B"},
			DeviceIDs: demoDeviceIDs, EOL: "2026-06-30",
			RiskNotes: "Community firmware replaces the vendor's cloud daemon: the vendor app stops working; the local status page keeps working.",
		})
		if err != nil {
			return err
		}
		if _, err := p.catalog.SetStatus(ctx, demoProduct, catalog.Sunset, demoActor); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}

	if err := s.demoDeposit(ctx); err != nil {
		return err
	}
	log.Info("demo deposit released", "product", demoProduct)

	repo := filepath.Join(s.cfg.Data, "demo", "afterlife-cam.git")
	src, err := examples.Dir("afterlife-cam")
	if err != nil {
		return err
	}
	if _, err := recipes.CommitTree(ctx, repo, src, "afterlife-cam 1.0.0", time.Unix(1_700_000_000, 0)); err != nil {
		return err
	}
	sub, err := submit.New(submit.Options{
		Store: s.blobs, Released: releasedFiles{p.escrow}, Builds: s.farmBuilds(p), Maxima: s.recipeMaxima(), AllowLocal: true,
		TempDir: filepath.Join(s.cfg.Data, "tmp"), Logger: log,
	})
	if err != nil {
		return err
	}
	res, err := sub.Submit(ctx, submit.Request{RepoURL: "file://" + repo, Ref: "HEAD", RequestedBy: "maintainer:demo"})
	if err != nil {
		return err
	}
	log.Info("demo recipe submitted; the local builders are building it (the first build cross-compiles Go for ARM and takes a minute or two)", "build", res.BuildID)

	b, err := waitForBuild(ctx, p.coord, res.BuildID)
	if err != nil {
		return err
	}
	if b.State != verdict.Reproducible {
		return errs.E(errs.Conflict, "demo build %s is %s: %s", b.ID, b.State, b.Verdict.Reason)
	}
	rel, err := p.reg.Publish(ctx, demoActor, registry.PublishRequest{
		BuildID: b.ID, Product: demoProduct, Version: "1.0.0", Channel: "stable",
		Notes: "First community release: local status API, no vendor cloud.",
	})
	if err != nil && !errs.Is(err, errs.Conflict) {
		return err
	}
	if _, err := p.catalog.SetStatus(ctx, demoProduct, catalog.Community, demoActor); err != nil && !errs.Is(err, errs.Conflict) && !errs.Is(err, errs.Invalid) {
		return err
	}
	// Devices check the log: the demo is ready once the witnessed log
	// holds the handover and the release.
	for _, typ := range []string{escrow.HandoverEntryType, "release.published"} {
		if err := s.waitLogged(ctx, demoProduct, typ); err != nil {
			return err
		}
	}
	if err := os.WriteFile(marker, []byte(rel.ID+"\n"), 0o600); err != nil {
		return err
	}
	log.Info("demo ready: a reproducible release is on stable; try it as a device that holds only the demo vendor's key",
		"release", rel.ID, "agreeing_builders", b.Verdict.Agreeing,
		"next", fmt.Sprintf("afterlife device init --registry %s --state ./device --product %s --id %s --vendor-key %s --accept-community-firmware && afterlife device update --state ./device",
			s.cfg.PublicURL, demoProduct, demoDevice, filepath.Join(s.cfg.Data, "demo", demoVendorPubKeyFile)))
	return nil
}

func (s *system) demoDeposit(ctx context.Context) error {
	p := s.parts
	existing, err := p.escrow.List(ctx, demoActor, escrow.ListFilter{Product: demoProduct, State: escrow.Released})
	if err != nil || len(existing) > 0 {
		return err
	}
	// The vendor's handover statement travels in the deposit: released
	// with it, it hands the demo camera's devices to this registry's root.
	statement, err := s.demoHandover(ctx, demoDeviceIDs)
	if err != nil {
		return err
	}
	files := map[string][]byte{wire.HandoverFile: statement}
	for path, content := range demoDeposit {
		files[path] = []byte(content)
	}
	req := escrow.CreateRequest{Product: demoProduct, Policy: "immediate",
		Rights: []manifest.RightsRule{{Pattern: "**", Rights: manifest.Public}},
		Grant:  "The demo vendor places every file of this deposit in the public domain (CC0-1.0)."}
	for _, path := range []string{"docs/datasheet.md", "src/camd.conf", wire.HandoverFile} {
		sum := sha256.Sum256(files[path])
		req.Manifest = append(req.Manifest, manifest.Entry{Path: path, Size: int64(len(files[path])), SHA256: hex.EncodeToString(sum[:]), Kind: manifest.InferKind(path)})
	}
	dep, err := p.escrow.Create(ctx, demoActor, req)
	if err != nil {
		return err
	}
	for _, e := range req.Manifest {
		if _, err := p.escrow.PutFile(ctx, demoActor, dep.ID, e.Path, bytes.NewReader(files[e.Path])); err != nil {
			return err
		}
	}
	_, err = p.escrow.Commit(ctx, demoActor, dep.ID)
	return err
}

// waitForBuild polls until the build has a verdict.
func waitForBuild(ctx context.Context, c *coord.Service, id string) (coord.Build, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		b, err := c.Build(ctx, id)
		if err != nil {
			return b, err
		}
		switch b.State {
		case verdict.Reproducible, verdict.Unreproducible, verdict.Failed:
			return b, nil
		}
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-tick.C:
		}
	}
}
