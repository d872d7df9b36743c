package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// Yank withdraws a release. Its targets stay in the TUF metadata, re-signed
// as yanked with the reason (and the release moves to the yanked part of
// the product's signed release list), so devices running it learn of the
// yank from the metadata alone, also on a static mirror. It is offered to
// no device any more. Devices running it move on to the newest release
// their channel still offers; when that one is older, the registry signs
// on it the permission to go back to it from exactly this version
// (device.TargetMeta.RollbackFromYanked) and offers it to them. The record
// stays, for audit.
func (s *Service) Yank(ctx context.Context, who principal.Principal, id, reason string) (Release, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 2000 {
		return Release{}, errs.E(errs.Invalid, "a yank needs a reason of 1 to 2000 bytes")
	}
	rel, err := s.Get(ctx, id)
	if err != nil {
		return Release{}, err
	}
	if err := s.mayRelease(ctx, who, rel.Product); err != nil {
		return Release{}, err
	}
	if rel.Yanked {
		return Release{}, errs.E(errs.Conflict, "release %s is already yanked", id)
	}
	rels, err := s.List(ctx, rel.Product)
	if err != nil {
		return Release{}, err
	}
	before := rel.targets()
	rel.Yanked, rel.YankReason, rel.YankedAt = true, reason, s.now().UTC().Truncate(time.Millisecond)
	for i := range rels {
		if rels[i].ID == rel.ID {
			rels[i] = rel
		}
	}
	add, undo := rel.targets(), before
	changed := rollbackChanges(rels)
	for _, c := range changed {
		undo = append(undo, c.before.targets()...)
		add = append(add, c.after.targets()...)
	}
	err = s.change(ctx, nil, add, nil, undo, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET yanked = 1, yank_reason = ?, yanked_at = ? WHERE id = ? AND yanked = 0`),
			reason, db.Millis(rel.YankedAt), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.Conflict, "release %s changed concurrently", id)
		}
		for _, c := range changed {
			from, _ := json.Marshal(c.after.RollbackFrom)
			if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET rollback_from = ? WHERE id = ?`), string(from), c.after.ID); err != nil {
				return err
			}
		}
		detail := rel.Version + " yanked: " + reason
		for _, c := range changed {
			detail += fmt.Sprintf("; devices on %s may go back to %s (%s channel)", rel.Version, c.after.Version, c.after.Channel)
		}
		return s.event(ctx, tx, rel.Product, rel.ID, who.Actor(), "yanked", detail)
	})
	if err != nil {
		return Release{}, fmt.Errorf("registry: yank %s: %w", id, err)
	}
	s.log.Info("release yanked", "release", id, "product", rel.Product, "version", rel.Version, "by", who.Actor())
	return rel, nil
}

// rollbackChange is a release whose signed rollback permissions change.
type rollbackChange struct{ before, after Release }

// rollbackChanges works out, for a product's releases, which release each
// yanked version's devices go back to, and returns the releases whose
// permissions (RollbackFrom) that changes. A device on a yanked version Y
// and channel c is offered the newest release c still offers (neither
// yanked, pulled back nor held; an older release's minimum version is
// always met by Y); when that release is older than Y, it carries the
// signed permission "from Y".
func rollbackChanges(rels []Release) []rollbackChange {
	want := map[string][]device.YankedFrom{}
	for _, y := range rels {
		if !y.Yanked {
			continue
		}
		for _, devChannel := range []string{Stable, Testing} {
			if devChannel == Stable && y.Channel != Stable {
				continue // a stable device never ran a testing release
			}
			var best *Release
			for i := range rels {
				r := &rels[i]
				if r.Yanked || r.PulledBack || r.Held || (devChannel == Stable && r.Channel != Stable) {
					continue
				}
				if best == nil || CompareVersions(r.Version, best.Version) > 0 {
					best = r
				}
			}
			if best == nil || CompareVersions(best.Version, y.Version) >= 0 {
				continue // nothing to go to, or a newer release: an ordinary update
			}
			if !slices.ContainsFunc(want[best.ID], func(f device.YankedFrom) bool { return f.Version == y.Version }) {
				want[best.ID] = append(want[best.ID], device.YankedFrom{Version: y.Version, Reason: y.YankReason})
			}
		}
	}
	var out []rollbackChange
	for _, r := range rels {
		if r.Yanked {
			continue
		}
		w := want[r.ID]
		slices.SortFunc(w, func(a, b device.YankedFrom) int { return CompareVersions(a.Version, b.Version) })
		if slices.Equal(w, r.RollbackFrom) {
			continue
		}
		after := r
		after.RollbackFrom = w
		out = append(out, rollbackChange{before: r, after: after})
	}
	return out
}

// refreshRollbacks re-signs, after a change of one of product's releases
// (a publication, promotion, hold, resume or pull-back), the releases
// whose rollback permissions that change moved: devices on a yanked
// version then go back to the newest release their channel offers now.
// Nothing is signed when nothing moved. A failure is logged: the
// permissions stay as they were until the next change of the product.
func (s *Service) refreshRollbacks(ctx context.Context, product string) {
	rels, err := s.List(ctx, product)
	if err != nil {
		s.log.Warn("registry: could not check the rollbacks from yanked releases", "product", product, "err", err)
		return
	}
	changed := rollbackChanges(rels)
	if len(changed) == 0 {
		return
	}
	var add, undo []tuf.Target
	for _, c := range changed {
		undo = append(undo, c.before.targets()...)
		add = append(add, c.after.targets()...)
	}
	err = s.change(ctx, nil, add, nil, undo, nil, func(tx *sql.Tx) error {
		for _, c := range changed {
			from, _ := json.Marshal(c.after.RollbackFrom)
			if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET rollback_from = ? WHERE id = ?`), string(from), c.after.ID); err != nil {
				return err
			}
			var vs []string
			for _, f := range c.after.RollbackFrom {
				vs = append(vs, f.Version)
			}
			detail := "devices on yanked " + strings.Join(vs, ", ") + " may go back to " + c.after.Version
			if len(vs) == 0 {
				detail = c.after.Version + " no longer takes devices back from yanked versions"
			}
			if err := s.event(ctx, tx, product, c.after.ID, "registry:yank", "rollback", detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("registry: could not re-sign the rollbacks from yanked releases", "product", product, "err", err)
	}
}
