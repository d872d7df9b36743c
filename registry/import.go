package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Import records a release another registry published, as it was: a new
// registry carrying on from a mirror of that one (docs/mirror.md,
// "Taking a registry over"). The release keeps its id, version, channel,
// artifacts, verdict links, yank, hold and rollout. Nothing is signed
// at import: the TUF
// repository the new registry adopted signs its targets already, and
// Import refuses a release whose targets it does not sign with the same
// digests and lengths, or whose files are not in the blob store. The
// registry's event log records the import; its "release.imported" entry
// of this registry's transparency log (which names the release's files as
// a publication does) replaces the old log's entry in the targets' signed
// `log` field once logged. A release imported before is a Conflict.
func (s *Service) Import(ctx context.Context, rel Release, actor string) error {
	if !validChannel(rel.Channel) || rel.ID == "" || len(rel.Artifacts) == 0 {
		return errs.E(errs.Invalid, "registry: import: release %q of %s %s is incomplete", rel.ID, rel.Product, rel.Version)
	}
	if _, err := s.o.Catalog.Get(ctx, rel.Product); err != nil {
		return fmt.Errorf("registry: import release %s: %w", rel.ID, err)
	}
	listed, err := s.o.TUF.Listed(ctx, rel.targetPaths())
	if err != nil {
		return err
	}
	for _, a := range rel.Artifacts {
		t, ok := listed[a.Target]
		if !ok || t.SHA256 != a.sha256Hex() || t.Length != a.Size {
			return errs.E(errs.Invalid, "registry: import release %s: its file %s is not signed as target %s with that digest and length", rel.ID, a.Name, a.Target)
		}
		if t.Custom["product"] != rel.Product || t.Custom["version"] != rel.Version || t.Custom["release_id"] != rel.ID {
			return errs.E(errs.Invalid, "registry: import release %s: target %s signs product %v, version %v, release %v", rel.ID, a.Target, t.Custom["product"], t.Custom["version"], t.Custom["release_id"])
		}
		info, err := s.o.Blobs.Stat(ctx, blob.Digest(a.Digest))
		if err != nil {
			return fmt.Errorf("registry: import release %s: file %s (%s): %w", rel.ID, a.Name, a.Digest, err)
		}
		if info.Size != a.Size {
			return errs.E(errs.Conflict, "registry: import release %s: file %s is %d bytes in the store, the release says %d", rel.ID, a.Name, info.Size, a.Size)
		}
	}
	arts, _ := json.Marshal(rel.Artifacts)
	var rollbackFrom, rollout string
	if len(rel.RollbackFrom) > 0 {
		b, _ := json.Marshal(rel.RollbackFrom)
		rollbackFrom = string(b)
	}
	if rel.Rollout != nil {
		b, _ := json.Marshal(rel.Rollout)
		rollout = string(b)
	}
	// The index it had is of the old registry's log, which this one does
	// not continue: its import entry in this registry's log takes its
	// place, signed into its targets once logged (SignLogEntries).
	logEntry := int64(-1)
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO releases (`+releaseCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			rel.ID, rel.Product, rel.Version, rel.Channel, rel.Notes, rel.MinVersion, rel.BuildID, rel.Recipe, rel.RecipeVersion, rel.InstallNotes,
			rel.VerdictURL, rel.AttestationsURL, rel.Agreeing, rel.Total, string(arts), boolInt(rel.Community), boolInt(rel.Yanked), rel.YankReason,
			db.Millis(rel.YankedAt), boolInt(rel.PulledBack), db.Millis(rel.PublishedAt), rel.PublishedBy, db.Millis(rel.PromotedAt),
			boolInt(rel.Held), rel.HeldReason, db.Millis(rel.HeldAt), rollbackFrom, rollout, logEntry)
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "registry: release %s (%s %s) is here already", rel.ID, rel.Product, rel.Version)
		}
		if err != nil {
			return err
		}
		return s.event(ctx, tx, rel.Product, rel.ID, actor, "imported",
			fmt.Sprintf("%s on %s, published by another registry at %s, carried on from its mirror", rel.Version, rel.Channel, rel.PublishedAt.UTC().Format("2006-01-02T15:04:05Z")))
	})
	if err != nil {
		return fmt.Errorf("registry: import release %s: %w", rel.ID, db.Classify(err))
	}
	s.log.Info("release imported", "release", rel.ID, "product", rel.Product, "version", rel.Version, "by", actor)
	return nil
}
