package registry

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/lifecycle"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// The lifecycle documents of a product, each a signed TUF target at
// LifecyclePath(product, file) and served at
// /v1/products/<product>/lifecycle/<file>.
const (
	OpenEoXFile = "openeox.json" // the OpenEoX core document in its wrapper
	CLEFile     = "cle.json"     // the CLE-shaped lifecycle event stream
)

var lifecycleFiles = []string{OpenEoXFile, CLEFile}

// LifecyclePath is the TUF target path of a product's lifecycle document.
func LifecyclePath(product, file string) string { return product + "/lifecycle/" + file }

// Products lists the catalog's products for the lifecycle catalogue and
// the ending-soon list; *catalog.Catalog implements it.
type Products interface {
	List(ctx context.Context, f catalog.Filter) ([]catalog.Product, error)
}

// LifecycleLog is told of each signed change of a product's lifecycle
// documents, with the targets just signed, so a transparency log can
// record it. Optional; a failure is logged and the documents stay signed.
type LifecycleLog interface {
	LifecycleSigned(ctx context.Context, product string, targets []tuf.Target) error
}

// HandoverPlans tells whether a product has a deposit in escrow, sealed
// or released, as who may see it: the escrow decides who sees a sealed
// deposit, and the ending-soon list asks as its caller.
type HandoverPlans interface {
	HasDeposit(ctx context.Context, who principal.Principal, product string) (bool, error)
}

// lifecycleFacts gathers what a product's lifecycle documents say: the
// declared support period and when each date was first declared and last
// changed (from the product's log), when it was handed over, and its
// releases.
func (s *Service) lifecycleFacts(ctx context.Context, id string) (lifecycle.Facts, error) {
	p, err := s.o.Catalog.Get(ctx, id)
	if err != nil {
		return lifecycle.Facts{}, err
	}
	evs, err := s.o.Catalog.Events(ctx, id)
	if err != nil {
		return lifecycle.Facts{}, fmt.Errorf("registry: lifecycle of %s: %w", id, err)
	}
	f := lifecycle.Facts{
		Product:     lifecycle.Product{ID: p.ID, Vendor: p.Vendor, Model: p.Model, DeviceIDs: p.DeviceIDs},
		LastUpdated: p.Created,
		Registry:    s.o.Name,
	}
	if !p.Support.Updated.IsZero() {
		f.LastUpdated = p.Support.Updated
	}
	fields := []struct {
		date *lifecycle.Date
		get  func(catalog.Support) string
	}{
		{&f.GeneralAvailability, func(s catalog.Support) string { return s.GeneralAvailability }},
		{&f.EndOfSales, func(s catalog.Support) string { return s.EndOfSales }},
		{&f.EndOfSecuritySupport, func(s catalog.Support) string { return s.EndOfSecuritySupport }},
		{&f.EndOfLife, func(s catalog.Support) string { return s.EndOfLife }},
	}
	for _, e := range evs {
		if e.To == catalog.HandedOver && e.From != e.To && f.HandedOver.IsZero() {
			f.HandedOver = e.At
		}
		if e.Support == nil {
			continue
		}
		for _, fd := range fields {
			v := fd.get(*e.Support)
			if v == fd.date.Value {
				continue
			}
			if fd.date.Published.IsZero() && v != "" {
				fd.date.Published = e.At
			}
			fd.date.Value, fd.date.Modified = v, e.At
		}
	}
	rels, err := s.List(ctx, id)
	if err != nil {
		return lifecycle.Facts{}, err
	}
	for _, r := range rels {
		if !r.Yanked {
			f.Releases = append(f.Releases, lifecycle.Release{Version: r.Version, Channel: r.Channel, Published: r.PublishedAt})
		}
	}
	return f, nil
}

// LifecycleDocument writes a product's lifecycle document file
// (OpenEoXFile or CLEFile). The same history gives the same bytes, so
// what it writes is what the registry signed, unless the product changed
// since and its new documents are being signed.
func (s *Service) LifecycleDocument(ctx context.Context, product, file string) ([]byte, error) {
	f, err := s.lifecycleFacts(ctx, product)
	if err != nil {
		return nil, err
	}
	switch file {
	case OpenEoXFile:
		return lifecycle.OpenEoX(f)
	case CLEFile:
		return lifecycle.CLE(f)
	}
	return nil, errs.E(errs.NotFound, "no lifecycle document %q (want %s or %s)", file, OpenEoXFile, CLEFile)
}

// lifecycleTargets writes a product's lifecycle documents, stores them
// in the blob store, and returns their targets for signing.
func (s *Service) lifecycleTargets(ctx context.Context, product string) ([]tuf.Target, error) {
	var out []tuf.Target
	for _, file := range lifecycleFiles {
		doc, err := s.LifecycleDocument(ctx, product, file)
		if err != nil {
			return nil, err
		}
		info, err := s.o.Blobs.Put(ctx, bytes.NewReader(doc), blob.FromBytes(doc))
		if err != nil {
			return nil, fmt.Errorf("registry: store lifecycle document %s of %s: %w", file, product, err)
		}
		out = append(out, tuf.Target{Path: LifecyclePath(product, file), Length: info.Size, SHA256: info.Digest.Hex(),
			Custom: map[string]any{"afterlife": 1, "product": product, "kind": strings.TrimSuffix(file, ".json")}})
	}
	return out, nil
}

// SignLifecycle signs a product's lifecycle documents again, from what
// the catalog and the registry hold now; nothing is signed when they did
// not change. A product the catalog no longer has (it was retired) has
// its documents withdrawn from the signed targets.
func (s *Service) SignLifecycle(ctx context.Context, product string) error {
	_, err := s.withTUFLease(ctx, true, func() error {
		if _, err := s.o.Catalog.Get(ctx, product); errs.Is(err, errs.NotFound) {
			return s.withdrawLifecycle(ctx, product)
		}
		ts, err := s.lifecycleTargets(ctx, product)
		if err != nil {
			return err
		}
		return s.applyLifecycle(ctx, product, ts)
	})
	if err != nil {
		return fmt.Errorf("registry: sign lifecycle documents of %s: %w", product, err)
	}
	return nil
}

// withdrawLifecycle removes a retired product's lifecycle documents from
// the signed targets (under the lease), if they were listed.
func (s *Service) withdrawLifecycle(ctx context.Context, product string) error {
	paths := make([]string, 0, len(lifecycleFiles))
	for _, f := range lifecycleFiles {
		paths = append(paths, LifecyclePath(product, f))
	}
	listed, err := s.o.TUF.Listed(ctx, paths)
	if err != nil {
		return err
	}
	var remove []string
	for _, p := range paths {
		if _, ok := listed[p]; ok {
			remove = append(remove, p)
		}
	}
	if len(remove) == 0 {
		return nil
	}
	return s.o.TUF.Apply(context.WithoutCancel(ctx), nil, remove)
}

// applyLifecycle signs ts unless they are signed already (under the
// lease) and tells the lifecycle log.
func (s *Service) applyLifecycle(ctx context.Context, product string, ts []tuf.Target) error {
	paths := make([]string, len(ts))
	for i, t := range ts {
		paths[i] = t.Path
	}
	listed, err := s.o.TUF.Listed(ctx, paths)
	if err != nil {
		return err
	}
	var changed []tuf.Target
	for _, t := range ts {
		if l, ok := listed[t.Path]; !ok || l.SHA256 != t.SHA256 {
			changed = append(changed, t)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	if err := s.o.TUF.Apply(context.WithoutCancel(ctx), changed, nil); err != nil {
		return err
	}
	if s.o.LifecycleLog != nil {
		if err := s.o.LifecycleLog.LifecycleSigned(ctx, product, changed); err != nil {
			s.log.Warn("registry: the lifecycle log did not take a signed change", "product", product, "err", err)
		}
	}
	return nil
}

// LifecycleChanged is the catalog's hook (catalog.OnLifecycleChanged): it
// signs the product's documents again and logs a failure, which the next
// change of the product or the next start repairs.
func (s *Service) LifecycleChanged(ctx context.Context, product string) {
	if err := s.SignLifecycle(context.WithoutCancel(ctx), product); err != nil {
		s.log.Error("registry: lifecycle documents not signed; they are signed again at the next change or start", "product", product, "err", err)
	}
}

// signAllLifecycles signs the lifecycle documents of every product whose
// signed documents are missing or out of date (at start, on the replica
// that gets the signing lease).
func (s *Service) signAllLifecycles(ctx context.Context) error {
	if s.o.Products == nil {
		return nil
	}
	_, err := s.withTUFLease(ctx, false, func() error {
		ps, err := s.o.Products.List(ctx, catalog.Filter{Limit: 1000})
		if err != nil {
			return err
		}
		for _, p := range ps {
			ts, err := s.lifecycleTargets(ctx, p.ID)
			if err != nil {
				return err
			}
			if err := s.applyLifecycle(ctx, p.ID, ts); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// lifecycleTarget finds a signed lifecycle document by target path and
// digest, for /tuf/targets/.
func (s *Service) lifecycleTarget(ctx context.Context, target, hash string) (blob.Digest, int64, bool) {
	dir, file, _ := strings.Cut(target, "/lifecycle/")
	if dir == "" || strings.Contains(dir, "/") || !slices.Contains(lifecycleFiles, file) {
		return "", 0, false
	}
	listed, err := s.o.TUF.Listed(ctx, []string{target})
	if err != nil {
		return "", 0, false
	}
	t, ok := listed[target]
	if !ok || t.SHA256 != hash {
		return "", 0, false
	}
	return blob.Digest("sha256:" + hash), t.Length, true
}

// CatalogueEntry is one product of the lifecycle catalogue.
type CatalogueEntry struct {
	Product   string                       `json:"product"`
	Vendor    string                       `json:"vendor"`
	Model     string                       `json:"model"`
	Status    catalog.Status               `json:"status"`
	Support   catalog.Support              `json:"support"`
	Documents map[string]CatalogueDocument `json:"documents"` // by file: openeox.json, cle.json
}

// CatalogueDocument says where a lifecycle document is served and signed.
type CatalogueDocument struct {
	URL    string `json:"url"`              // the API route, always current
	Target string `json:"target"`           // its TUF target path
	SHA256 string `json:"sha256,omitempty"` // the signed digest ("" while not yet signed)
	Length int64  `json:"length,omitempty"`
}

// LifecycleCatalogue lists every product with its lifecycle documents.
func (s *Service) LifecycleCatalogue(ctx context.Context) ([]CatalogueEntry, error) {
	if s.o.Products == nil {
		return nil, errs.E(errs.Unavailable, "registry: no product list configured")
	}
	ps, err := s.o.Products.List(ctx, catalog.Filter{Limit: 1000})
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, p := range ps {
		for _, f := range lifecycleFiles {
			paths = append(paths, LifecyclePath(p.ID, f))
		}
	}
	listed, err := s.o.TUF.Listed(ctx, paths)
	if err != nil {
		return nil, err
	}
	out := make([]CatalogueEntry, 0, len(ps))
	for _, p := range ps {
		e := CatalogueEntry{Product: p.ID, Vendor: p.Vendor, Model: p.Model, Status: p.Status, Support: p.Support, Documents: map[string]CatalogueDocument{}}
		for _, f := range lifecycleFiles {
			d := CatalogueDocument{URL: "/v1/products/" + p.ID + "/lifecycle/" + f, Target: LifecyclePath(p.ID, f)}
			if t, ok := listed[d.Target]; ok {
				d.SHA256, d.Length = t.SHA256, t.Length
			}
			e.Documents[f] = d
		}
		out = append(out, e)
	}
	return out, nil
}

// EndingSoon is a product within the warning window of its end of
// security support with no deposit in escrow: no handover plan.
type EndingSoon struct {
	Product              string    `json:"product"`
	Vendor               string    `json:"vendor"`
	Model                string    `json:"model"`
	EndOfSecuritySupport time.Time `json:"end_of_security_support"`
	Days                 int       `json:"days"` // until then; negative once passed
}

// EndingSoon lists, for an admin every vendor's, for a vendor its own
// products that reach the end of security support within the configured
// window (or have passed it), are not handed over, and have no deposit,
// sealed or released. Whether a product has a sealed deposit is never
// public: only admins and the product's vendor may ask.
func (s *Service) EndingSoon(ctx context.Context, who principal.Principal) ([]EndingSoon, error) {
	f := catalog.Filter{Limit: 1000}
	switch {
	case who.Role == principal.Admin:
	case who.Role == principal.Vendor && who.Org != "":
		f.Vendor = who.Org
	default:
		return nil, errs.E(errs.Forbidden, "only admins and vendors see products ending without a handover plan")
	}
	if s.o.Products == nil || s.o.HandoverPlans == nil {
		return nil, errs.E(errs.Unavailable, "registry: no product list or escrow configured")
	}
	ps, err := s.o.Products.List(ctx, f)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []EndingSoon{}
	for _, p := range ps {
		end, ok := catalog.SupportTime(p.Support.EndOfSecuritySupport)
		if !ok || end.After(now.Add(s.o.EndingSoonWindow)) || p.Status == catalog.HandedOver || p.Status == catalog.Community {
			continue
		}
		planned, err := s.o.HandoverPlans.HasDeposit(ctx, who, p.ID)
		if err != nil {
			return nil, fmt.Errorf("registry: ending soon: escrow of %s: %w", p.ID, err)
		}
		if planned {
			continue
		}
		out = append(out, EndingSoon{Product: p.ID, Vendor: p.Vendor, Model: p.Model, EndOfSecuritySupport: end,
			Days: int(end.Sub(now).Hours() / 24)})
	}
	slices.SortFunc(out, func(a, b EndingSoon) int { return a.EndOfSecuritySupport.Compare(b.EndOfSecuritySupport) })
	return out, nil
}
