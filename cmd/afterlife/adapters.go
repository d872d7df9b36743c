package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/rebuild"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/escrow/completeness"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/recipes/submit"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/handover"
)

// The adapters below connect one part to the small interface another part
// declares. They hold no logic beyond translating types.

// escrowProducts tells escrow which vendor owns a product.
type escrowProducts struct{ c *catalog.Catalog }

func (a escrowProducts) Vendor(ctx context.Context, id string) (string, error) {
	p, err := a.c.Get(ctx, id)
	if err != nil {
		return "", err
	}
	return p.Vendor, nil
}

// escrowHandover checks deposits' handover statements with the registry's
// format (registry/handover), root versions and device ids.
type escrowHandover struct{ p *parts }

func (a escrowHandover) Verify(ctx context.Context, envelope []byte, at time.Time) (escrow.HandoverStatement, error) {
	v, err := handover.VerifyDeclaredKey(ctx, envelope, at)
	if err != nil {
		return escrow.HandoverStatement{}, err
	}
	ids := make([]string, 0, len(v.Predicate.DeviceIDs))
	for _, id := range v.Predicate.DeviceIDs {
		n, err := handover.NormalizeDeviceID(id)
		if err != nil {
			return escrow.HandoverStatement{}, err
		}
		ids = append(ids, n)
	}
	return escrow.HandoverStatement{
		Product: v.Predicate.Product, DeviceIDs: ids, VendorKey: v.Predicate.VendorKey.Fingerprint,
		RootName: v.Root.Name, RootSHA256: v.Root.SHA256, EnvelopeSHA256: v.EnvelopeSHA256,
	}, nil
}

func (a escrowHandover) RootVersion(ctx context.Context, sha256 string) (int64, error) {
	if a.p.tuf == nil {
		return 0, errs.E(errs.Unavailable, "the TUF repository is not open yet")
	}
	return a.p.tuf.RootVersion(ctx, sha256)
}

func (a escrowHandover) DeviceIDs(ctx context.Context, product string) ([]string, error) {
	p, err := a.p.catalog.Get(ctx, product)
	if err != nil {
		return nil, err
	}
	return p.DeviceIDs, nil
}

// handOver moves a released deposit's product to handed-over. The escrow
// outbox may deliver one release twice; the catalog's HandOver leaves a
// product already handed over alone, so the second changes nothing.
type handOver struct{ c *catalog.Catalog }

func (a handOver) Notify(ctx context.Context, n escrow.Notice) error {
	return a.c.HandOver(ctx, n.Product, n.Actor)
}

// releasedFiles tells recipe submission which escrow files may be build
// inputs, and which of them are build-only (vendorrights.go has the rest).
type releasedFiles struct{ e *escrow.Service }

func (a releasedFiles) ReleasedFile(ctx context.Context, digest string) (int64, bool, bool, error) {
	d, err := blob.ParseDigest(digest)
	if err != nil {
		return 0, false, false, err
	}
	size, rights, ok, err := a.e.BuildInput(ctx, d)
	return size, rights == manifest.BuildOnly, ok, err
}

// farmSubmitter serves POST /v1/recipes with recipes/submit.
type farmSubmitter struct{ s *submit.Submitter }

func (a farmSubmitter) Submit(ctx context.Context, r builder.SubmitRequest) (builder.SubmitResult, error) {
	res, err := a.s.Submit(ctx, submit.Request{RepoURL: r.Repo, Ref: r.Ref, Path: r.Path, RequestedBy: r.RequestedBy})
	return builder.SubmitResult{BuildID: res.BuildID, Created: res.Created, Commit: res.Commit, Recipe: res.Recipe, Version: res.Version}, err
}

// reproducibleBuilds gives the registry a reproducible build's artifacts:
// the verdict is the only path to a release.
type reproducibleBuilds struct{ c *coord.Service }

func (a reproducibleBuilds) ReproducibleOutputs(ctx context.Context, buildID string) (registry.Build, error) {
	spec, outs, agreeing, total, err := a.c.ReproducibleOutputs(ctx, buildID)
	if err != nil {
		return registry.Build{}, err
	}
	b := registry.Build{
		ID: buildID, Products: spec.Products, Recipe: spec.Recipe.Name, RecipeVersion: spec.Recipe.Version,
		InstallNotes: spec.Install, Agreeing: agreeing, Total: total,
		VerdictURL: "/builds/" + buildID, AttestationsURL: "/v1/builds/" + buildID,
	}
	for _, o := range outs {
		b.Outputs = append(b.Outputs, registry.Output{Path: o.Path, Kind: o.Kind, Digest: string(o.Digest), Size: o.Size})
	}
	return b, nil
}

// productBuilds lists a product's builds for the owner-facing overview.
type productBuilds struct{ c *coord.Service }

func (a productBuilds) BuildsForProduct(ctx context.Context, productID string, limit int) ([]registry.BuildSummary, error) {
	bs, err := a.c.Builds(ctx, coord.Filter{Product: productID, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]registry.BuildSummary, 0, len(bs))
	for _, b := range bs {
		out = append(out, registry.BuildSummary{
			ID: b.ID, Recipe: b.Name, RecipeVersion: b.Version, Verdict: string(b.State),
			Agreeing: b.Verdict.Agreeing, Total: b.Finished(), Created: b.Created,
		})
	}
	return out, nil
}

// productEscrow gives the overview the escrow's public summary of a
// product.
type productEscrow struct{ e *escrow.Service }

func (a productEscrow) ProductEscrow(ctx context.Context, productID string) (registry.Escrow, error) {
	sum, err := a.e.ProductSummary(ctx, productID)
	if err != nil {
		return registry.Escrow{}, err
	}
	out := registry.Escrow{Deposits: sum.Released, Released: sum.Released}
	for _, d := range sum.Deposits {
		out.Public = append(out.Public, registry.PublicDeposit{ID: d.ID, Policy: d.Policy, SealedAt: d.SealedAt, ReleasedAt: d.ReleasedAt, Fired: d.Fired, Grant: d.Grant})
	}
	return out, nil
}

// releaseArtifacts lets the escrow's scrub check the registry's release
// artifacts; the registry is wired after the escrow, before any scrub runs.
type releaseArtifacts struct{ p *parts }

func (a releaseArtifacts) ArtifactDigests(ctx context.Context) ([]string, error) {
	if a.p.reg == nil {
		return nil, nil
	}
	return a.p.reg.ArtifactDigests(ctx)
}

// buildOnlyFiles tells the farm which blobs are build-only escrow files,
// which builders get only through the jobs that declare them.
type buildOnlyFiles struct{ e *escrow.Service }

func (a buildOnlyFiles) BuildOnly(ctx context.Context, d blob.Digest) (bool, error) {
	_, rights, ok, err := a.e.BuildInput(ctx, d)
	return ok && rights == manifest.BuildOnly, err
}

// handoverPlans tells the registry's ending-soon list whether a product
// has a sealed or released deposit, as the caller may see it (the escrow
// decides who sees a sealed deposit).
type handoverPlans struct{ e *escrow.Service }

func (a handoverPlans) HasDeposit(ctx context.Context, who principal.Principal, product string) (bool, error) {
	ds, err := a.e.List(ctx, who, escrow.ListFilter{Product: product, Limit: 1000})
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ds, func(d escrow.Deposit) bool { return d.State == escrow.Sealed || d.State == escrow.Released }), nil
}

// depositsKeep tells the catalog whether a product has a deposit that
// outlives it (sealed or released: never deleted), before it retires one.
type depositsKeep struct{ e *escrow.Service }

func (a depositsKeep) Keeps(ctx context.Context, product string) (string, error) {
	ds, err := a.e.List(ctx, principal.Principal{Name: "catalog", Role: principal.Admin}, escrow.ListFilter{Product: product, Limit: 1000})
	if err != nil {
		return "", err
	}
	n := 0
	for _, d := range ds {
		if d.State == escrow.Sealed || d.State == escrow.Released {
			n++
		}
	}
	return countOf(n, "deposit", "deposits"), nil
}

// releasesKeep tells the catalog whether a product has releases (devices
// hold signed metadata naming them, yanked ones too), before it retires one.
type releasesKeep struct{ r *registry.Service }

func (a releasesKeep) Keeps(ctx context.Context, product string) (string, error) {
	rs, err := a.r.List(ctx, product)
	if err != nil {
		return "", err
	}
	return countOf(len(rs), "release", "releases"), nil
}

func countOf(n int, one, many string) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// publishHandover publishes a handover statement that took effect in the
// catalog, which serves it to devices.
type publishHandover struct{ c *catalog.Catalog }

func (a publishHandover) PublishHandover(ctx context.Context, h escrow.ReleasedHandover) error {
	ch := catalog.Handover{
		Deposit: h.Deposit, Product: h.Product, Envelope: h.Envelope, EnvelopeSHA256: h.EnvelopeSHA256,
		VendorKey: h.VendorKey, RootName: h.RootName, RootSHA256: h.RootSHA256, DeviceIDs: h.DeviceIDs, ReleasedAt: h.ReleasedAt,
	}
	if b := h.Bridge; b != nil {
		ch.Bridge = &catalog.BridgeImage{Path: b.Path, SHA256: b.SHA256, Size: b.Size}
	}
	return a.c.PublishHandover(ctx, ch)
}

// sealedRebuilds is the operator's own builder as the escrow's completeness
// check needs it.
type sealedRebuilds struct{ r *rebuild.Rebuilder }

func (a sealedRebuilds) Rebuild(ctx context.Context, recipe string, files []escrow.RebuildFile) ([]completeness.Member, error) {
	in := make([]rebuild.File, len(files))
	for i, f := range files {
		in[i] = rebuild.File{Path: f.Path, SHA256: f.SHA256, Open: f.Open}
	}
	outs, err := a.r.Run(ctx, recipe, in)
	out := make([]completeness.Member, len(outs))
	for i, o := range outs {
		out[i] = completeness.Member{Path: o.Path, Data: o.Data}
	}
	return out, err
}
