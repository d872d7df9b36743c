package registry

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// How a replica keeps its index current: every change the index reads
// appends an event to the registry's log (registry_events) in the
// transaction that makes it, numbered without gaps (db.NextSeq). A
// replica reads the events after the last one its index reflects and, for
// each product they name, reads that product's releases and catalog entry
// again and swaps in a new index that shares everything else with the
// old one. Applying an event reads the product's state as it is now, so
// applying one twice, or after a full rebuild that already saw it,
// changes nothing. What it cannot follow (a gap in the numbers, an event
// it does not know, too many at once, a bumped generation) it rebuilds
// whole.

// followMax is the most events applied one product at a time; behind by
// more, a replica rebuilds whole, which is cheaper then.
const followMax = 1000

// indexEventKinds are the registry events that change what the index
// holds; skippedEventKinds those that do not. Any other kind makes a
// replica rebuild whole: it may be newer than this replica's code.
var (
	indexEventKinds   = map[string]bool{"published": true, "promoted": true, "yanked": true, "rollback": true, "held": true, "resumed": true, "pulled_back": true}
	skippedEventKinds = map[string]bool{"pullback_policy": true, "maintainer_granted": true, "maintainer_revoked": true, "key_rotated": true, "root_published": true}
)

func changesIndex(kind string) (changes, known bool) {
	switch {
	case indexEventKinds[kind], strings.HasPrefix(kind, "rollout_"):
		return true, true
	case skippedEventKinds[kind]:
		return false, true
	}
	return false, false
}

// Poll brings this replica's index up to what the database holds: the
// events after the last one it reflects, applied product by product, or
// a full rebuild when the generation moved or the events cannot be
// followed. One query when nothing changed, whatever the request rate.
func (s *Service) Poll(ctx context.Context) error {
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	pos, err := s.position(ctx)
	if err != nil {
		return err
	}
	ix := s.index.Load()
	switch {
	case ix == nil || pos.gen != ix.gen:
		return s.rebuildLocked(ctx)
	case pos.seq == ix.seq:
		return nil
	}
	next, why, err := s.follow(ctx, ix)
	if err != nil {
		return err
	}
	if next == nil {
		s.log.Info("registry: rebuilding the update index whole", "why", why, "seq", ix.seq)
		return s.rebuildLocked(ctx)
	}
	s.index.Store(next)
	s.m.updates.Inc()
	s.m.seq.Set(float64(next.seq))
	return nil
}

// follow reads the events after ix.seq and returns ix with the products
// they name read again, or nil and why it cannot follow them.
func (s *Service) follow(ctx context.Context, ix *index) (*index, string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT seq, product, kind FROM registry_events WHERE seq > ? ORDER BY seq LIMIT ?`), ix.seq, followMax+1)
	if err != nil {
		return nil, "", fmt.Errorf("registry: follow events: %w", db.Classify(err))
	}
	defer rows.Close()
	seq := ix.seq
	var products []string
	seen := map[string]bool{}
	for rows.Next() {
		var at int64
		var product, kind string
		if err := rows.Scan(&at, &product, &kind); err != nil {
			return nil, "", fmt.Errorf("registry: follow events: %w", db.Classify(err))
		}
		if at != seq+1 {
			return nil, fmt.Sprintf("event %d follows %d", at, seq), nil
		}
		seq = at
		if seq-ix.seq > followMax {
			return nil, "more than " + fmt.Sprint(followMax) + " events behind", nil
		}
		changes, known := changesIndex(kind)
		if !known {
			return nil, "unknown event " + kind, nil
		}
		if changes && product == "" {
			return nil, "event " + kind + " names no product", nil
		}
		if changes && !seen[product] {
			seen[product] = true
			products = append(products, product)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("registry: follow events: %w", db.Classify(err))
	}
	rows.Close()
	next := ix
	if len(products) > 0 {
		parts := make(map[string]*productPart, len(products))
		for _, p := range products {
			part, err := s.loadPart(ctx, p)
			if err != nil {
				return nil, "", err
			}
			parts[p] = part
		}
		next = ix.with(parts)
	} else {
		cp := *ix
		next = &cp
	}
	next.seq = seq
	return next, "", nil
}

// loadPart reads what one product contributes to the index: its releases
// not yanked, its catalog entry, its offers encoded. Its slot is given
// when it joins an index (with).
func (s *Service) loadPart(ctx context.Context, product string) (*productPart, error) {
	var info indexRelease
	p, err := s.o.Catalog.Get(ctx, product)
	switch {
	case errs.Is(err, errs.NotFound):
		// As in a full rebuild: its targets are served, nothing offered.
	case err != nil:
		return nil, fmt.Errorf("registry: follow product %s: %w", product, err)
	default:
		info.RiskNotes, info.DeviceIDs = p.RiskNotes, p.DeviceIDs
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+indexCols+` FROM releases WHERE product = ? AND yanked = 0`), product)
	if err != nil {
		return nil, fmt.Errorf("registry: follow product %s: %w", product, db.Classify(err))
	}
	defer rows.Close()
	part := newProductPart(product, 0, info.DeviceIDs)
	for rows.Next() {
		var raw indexRow
		if err := raw.scan(rows); err != nil {
			return nil, fmt.Errorf("registry: follow product %s: %w", product, db.Classify(err))
		}
		var r indexRelease
		if err := raw.decode(&r); err != nil {
			return nil, err
		}
		r.RiskNotes, r.DeviceIDs = info.RiskNotes, info.DeviceIDs
		part.add(&r, pathSeeds{}, nil)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry: follow product %s: %w", product, db.Classify(err))
	}
	part.finish()
	s.warnDropped(part)
	return part, nil
}

// with returns a new index in which each product of parts contributes
// exactly its part: its old offers, device entries and targets are gone,
// the new ones are in, in the slot of the old part (or a new one). ix
// itself does not change.
func (ix *index) with(parts map[string]*productPart) *index {
	devices := map[string]slot[[]*productPart]{}
	targets := map[pathKey]slot[targetRef]{}
	products := make(map[string]slot[*productPart], len(parts))
	next := &index{gen: ix.gen, seq: ix.seq, seeds: ix.seeds, offers: ix.offers, parts: slices.Clone(ix.parts)}
	for product, part := range parts {
		old, _ := ix.products.get(product)
		if old != nil {
			next.offers -= len(old.offers)
			for _, f := range old.files {
				targets[ix.seeds.key(old.str(f.path))] = slot[targetRef]{del: true}
			}
			part.slot = old.slot
			next.parts[part.slot] = part
		} else {
			part.slot = uint32(len(next.parts))
			next.parts = append(next.parts, part)
		}
		for i, f := range part.files {
			targets[ix.seeds.key(part.str(f.path))] = slot[targetRef]{v: targetRef{part.slot, uint32(i)}}
		}
		next.offers += len(part.offers)
		products[product] = slot[*productPart]{v: part}
		// Every device id the product had or has: its list loses the old
		// part and gains the new one.
		var ids []string
		if old != nil {
			ids = append(ids, old.deviceIDs...)
		}
		ids = append(ids, part.deviceIDs...)
		for _, d := range ids {
			cur, ok := devices[d]
			list := cur.v
			if !ok {
				list, _ = ix.devices.get(d)
			}
			list = slicesDeleteProduct(list, product)
			if len(part.offers) > 0 && contains(part.deviceIDs, d) && !slices.Contains(list, part) {
				list = append(list, part)
				sortByProduct(list)
			}
			devices[d] = slot[[]*productPart]{v: list, del: len(list) == 0}
		}
	}
	next.devices = ix.devices.with(devices)
	next.targets = ix.targets.with(targets)
	next.products = ix.products.with(products)
	return next
}

// slicesDeleteProduct returns list without product's part, as a new
// slice: the old one belongs to the index readers hold.
func slicesDeleteProduct(list []*productPart, product string) []*productPart {
	out := make([]*productPart, 0, len(list)+1)
	for _, part := range list {
		if part.product != product {
			out = append(out, part)
		}
	}
	return out
}

// layered is a map that successive indexes share: a change goes into a
// small overlay of a new index, over the same base, so a change of one
// product costs what that product holds, not what the index holds. When
// the overlay has grown to about the square root of the base (the size
// at which copying the overlay at each change costs as much, over time,
// as folding it in), it is folded into a new base. Neither map is written
// after the index holding it is published.
type layered[K comparable, V any] struct {
	base map[K]V
	over map[K]slot[V] // newer than base
}

// slot is a value in an overlay; del hides the base's entry.
type slot[V any] struct {
	v   V
	del bool
}

func (m *layered[K, V]) get(k K) (V, bool) {
	if len(m.over) > 0 {
		if s, ok := m.over[k]; ok {
			return s.v, !s.del
		}
	}
	v, ok := m.base[k]
	return v, ok
}

// len counts the keys present.
func (m *layered[K, V]) len() int {
	n := len(m.base)
	for k, s := range m.over {
		_, inBase := m.base[k]
		switch {
		case s.del && inBase:
			n--
		case !s.del && !inBase:
			n++
		}
	}
	return n
}

// all calls fn for every key present.
func (m *layered[K, V]) all(fn func(K, V)) {
	for k, v := range m.base {
		if _, over := m.over[k]; !over {
			fn(k, v)
		}
	}
	for k, s := range m.over {
		if !s.del {
			fn(k, s.v)
		}
	}
}

// with returns m with changes applied; m does not change.
func (m layered[K, V]) with(changes map[K]slot[V]) layered[K, V] {
	if len(changes) == 0 {
		return m
	}
	if len(m.over)+len(changes) <= max(256, int(math.Sqrt(float64(len(m.base))))*4) {
		over := make(map[K]slot[V], len(m.over)+len(changes))
		maps.Copy(over, m.over)
		maps.Copy(over, changes)
		return layered[K, V]{base: m.base, over: over}
	}
	base := maps.Clone(m.base)
	if base == nil {
		base = map[K]V{}
	}
	for _, layer := range []map[K]slot[V]{m.over, changes} {
		for k, s := range layer {
			if s.del {
				delete(base, k)
			} else {
				base[k] = s.v
			}
		}
	}
	return layered[K, V]{base: base}
}
