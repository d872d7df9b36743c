package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/logevent"
)

// LoggedEvent is a registry event with the release it is about (nil for
// events about a product only), as the transparency log records it.
type LoggedEvent struct {
	Event
	Release *Release
}

// EventsAfter returns up to limit registry events with a seq above seq, in
// order: the transparency log tails the registry's log.
func (s *Service) EventsAfter(ctx context.Context, seq int64, limit int) ([]LoggedEvent, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, seq, product, release_id, at, actor, kind, detail FROM registry_events
		WHERE seq > ? ORDER BY seq LIMIT ?`), seq, limit)
	if err != nil {
		return nil, fmt.Errorf("registry: events after %d: %w", seq, db.Classify(err))
	}
	var out []LoggedEvent
	for rows.Next() {
		var e LoggedEvent
		var at int64
		if err := rows.Scan(&e.ID, &e.Seq, &e.Product, &e.Event.Release, &at, &e.Actor, &e.Kind, &e.Detail); err != nil {
			rows.Close()
			return nil, fmt.Errorf("registry: events after %d: %w", seq, err)
		}
		e.At = db.FromMillis(at)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	for i := range out {
		if out[i].Event.Release == "" {
			continue
		}
		r, err := scanRelease(s.db.QueryRowContext(ctx, s.db.Q(`SELECT `+releaseCols+` FROM releases WHERE id = ?`), out[i].Event.Release))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registry: release %s: %w", out[i].Event.Release, db.Classify(err))
		}
		out[i].Release = &r
	}
	return out, nil
}

// LogEvents is the registry's log of releases, promotions, yanks and key
// rotations as the transparency log records it.
func (s *Service) LogEvents(ctx context.Context, seq int64, limit int) ([]logevent.Event, error) {
	evs, err := s.EventsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]logevent.Event, len(evs))
	for i, e := range evs {
		ev := logevent.Event{Seq: e.Seq, At: e.At, Subject: e.Product,
			Fields: map[string]any{"product": e.Product, "actor": e.Actor, "detail": e.Detail}}
		ev.Type = "product." + e.Kind
		if e.Kind == "key_rotated" {
			ev.Type, ev.Subject = "key.rotated", ""
			ev.Fields = map[string]any{"role": e.Detail, "actor": e.Actor}
		}
		if e.Kind == "root_published" {
			ev.Type, ev.Subject = "key.root_published", ""
			ev.Fields = map[string]any{"root_version": e.Detail, "actor": e.Actor}
		}
		if e.Event.Release != "" {
			ev.Type = "release." + e.Kind
			ev.Fields["release"] = e.Event.Release
		}
		if r := e.Release; r != nil {
			ev.Fields["version"], ev.Fields["channel"] = r.Version, r.Channel
			// An imported release (a registry carried on from a mirror,
			// import.go) is logged with what its publication said.
			if e.Kind == "published" || e.Kind == "imported" {
				arts := make([]map[string]any, 0, len(r.Artifacts))
				for _, a := range r.Artifacts {
					arts = append(arts, map[string]any{"target": a.Target, "digest": a.Digest, "size": a.Size})
				}
				ev.Fields["artifacts"] = arts
				ev.Fields["build"], ev.Fields["recipe"], ev.Fields["recipe_version"] = r.BuildID, r.Recipe, r.RecipeVersion
				ev.Fields["verdict"] = map[string]any{"agreeing": r.Agreeing, "total": r.Total, "url": r.VerdictURL, "attestations": r.AttestationsURL}
				ev.Fields["community"] = r.Community
			}
		}
		out[i] = ev
	}
	return out, nil
}

// logWitnessing is the log as the farm's witness routes use it.
