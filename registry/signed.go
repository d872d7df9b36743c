package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// maxListed bounds a product's signed release list: the newest releases
// are enough to find an update, and the list lives in one hashed bin.
const maxListed = 100

// emptySHA256 is the digest of the release list target's empty content:
// everything it says is in its signed custom field.
var emptySHA256 = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// signProducts adds what the catalog says about a target's product to its
// signed fields: the device ids that identify the product (a device
// installs only a target naming its id) and the risk notes shown before a
// community install.
func (s *Service) signProducts(ctx context.Context, lists ...[]tuf.Target) error {
	products := map[string]catalog.Product{}
	for _, list := range lists {
		for _, t := range list {
			id, _ := t.Custom["product"].(string)
			if id == "" {
				continue
			}
			p, ok := products[id]
			if !ok {
				var err error
				if p, err = s.o.Catalog.Get(ctx, id); err != nil {
					return fmt.Errorf("registry: sign targets of %s: %w", id, err)
				}
				products[id] = p
			}
			t.Custom["device_ids"] = slices.Clone(p.DeviceIDs)
			if p.RiskNotes != "" {
				t.Custom["risk_notes"] = p.RiskNotes
			}
		}
	}
	return nil
}

// signReleaseLists re-signs the release list (device.ReleaseList) of
// every product the change touched, from the releases the database holds
// now, so a device can find its update in the TUF metadata alone. It runs
// under the signing lease after the change committed; a failure is logged
// and the next change of the product writes the list again.
func (s *Service) signReleaseLists(ctx context.Context, add []tuf.Target, remove []string) {
	products := map[string]bool{}
	note := func(p string) {
		if product, _, ok := strings.Cut(p, "/"); ok && product != "" {
			products[product] = true
		}
	}
	for _, t := range add {
		note(t.Path)
	}
	for _, p := range remove {
		note(p)
	}
	var lists []tuf.Target
	for product := range products {
		t, err := s.releaseList(ctx, product)
		if err != nil {
			s.log.Error("registry: could not compute a release list; devices on static mirrors miss the change until the next one", "product", product, "err", err)
			continue
		}
		lists = append(lists, t)
		// A release is an event of the product's lifecycle documents.
		if ts, err := s.lifecycleTargets(ctx, product); err == nil {
			lists = append(lists, ts...)
		} else {
			s.log.Error("registry: could not write lifecycle documents; they are signed again at the next change or start", "product", product, "err", err)
		}
	}
	slices.SortFunc(lists, func(a, b tuf.Target) int { return strings.Compare(a.Path, b.Path) })
	if err := s.o.TUF.Apply(context.WithoutCancel(ctx), lists, nil); err != nil {
		s.log.Error("registry: could not sign release lists; devices on static mirrors miss the change until the next one", "err", err)
	}
}

// releaseList is the signed release list target of one product: its
// releases that are neither yanked nor pulled back, newest first.
func (s *Service) releaseList(ctx context.Context, product string) (tuf.Target, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+releaseCols+` FROM releases WHERE product = ? AND pulled_back = 0 AND held = 0`), product)
	if err != nil {
		return tuf.Target{}, db.Classify(err)
	}
	defer rows.Close()
	list := device.ReleaseList{Schema: device.SchemaVersion, Product: product, Releases: []device.ListedTarget{}}
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return tuf.Target{}, err
		}
		if r.Yanked {
			list.Yanked = append(list.Yanked, device.YankedTarget{Version: r.Version, Channel: r.Channel, Target: r.Offered().Target, Reason: r.YankReason})
			continue
		}
		list.Releases = append(list.Releases, device.ListedTarget{Version: r.Version, Channel: r.Channel, Target: r.Offered().Target, MinVersion: r.MinVersion})
	}
	if err := rows.Err(); err != nil {
		return tuf.Target{}, db.Classify(err)
	}
	slices.SortFunc(list.Releases, func(a, b device.ListedTarget) int { return CompareVersions(b.Version, a.Version) })
	if len(list.Releases) > maxListed {
		list.Releases = list.Releases[:maxListed]
	}
	slices.SortFunc(list.Yanked, func(a, b device.YankedTarget) int { return CompareVersions(b.Version, a.Version) })
	if len(list.Yanked) > maxListed {
		list.Yanked = list.Yanked[:maxListed]
	}
	custom := map[string]any{"afterlife": list.Schema, "product": list.Product, "releases": list.Releases}
	if len(list.Yanked) > 0 {
		custom["yanked"] = list.Yanked
	}
	return tuf.Target{Path: device.ReleaseListPath(product), Length: 0, SHA256: emptySHA256, Custom: custom}, nil
}

// SignUnsigned re-signs, in one publication, the targets of releases
// published before targets carried their signed fields (devices refuse
// those), and writes the release list of every product that has none. It
// runs once at start on the replica that gets the signing lease; with
// nothing to do it signs nothing.
func (s *Service) SignUnsigned(ctx context.Context) error {
	_, err := s.withTUFLease(ctx, false, func() error {
		rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+releaseCols+` FROM releases WHERE yanked = 0`))
		if err != nil {
			return db.Classify(err)
		}
		var rels []Release
		for rows.Next() {
			r, err := scanRelease(rows)
			if err != nil {
				rows.Close()
				return err
			}
			rels = append(rels, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return db.Classify(err)
		}
		var paths []string
		products := map[string]bool{}
		for _, r := range rels {
			paths = append(paths, r.targetPaths()...)
			if !products[r.Product] {
				products[r.Product] = true
				paths = append(paths, device.ReleaseListPath(r.Product))
			}
		}
		listed, err := s.o.TUF.Listed(ctx, paths)
		if err != nil {
			return err
		}
		var add []tuf.Target
		for _, r := range rels {
			for _, t := range r.targets() {
				if cur, ok := listed[t.Path]; ok && cur.Custom["afterlife"] == nil {
					add = append(add, t)
				}
			}
		}
		var lists []string
		for p := range products {
			if _, ok := listed[device.ReleaseListPath(p)]; !ok {
				lists = append(lists, device.ReleaseListPath(p))
			}
		}
		if len(add) == 0 && len(lists) == 0 {
			return nil
		}
		if err := s.signProducts(ctx, add); err != nil {
			return err
		}
		if err := s.o.TUF.Apply(ctx, add, nil); err != nil {
			return err
		}
		s.signReleaseLists(ctx, add, lists)
		s.log.Info("registry: signed the release fields of targets published before them", "targets", len(add), "release_lists", len(lists))
		return nil
	})
	return err
}
