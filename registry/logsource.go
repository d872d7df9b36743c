package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/afterlife-oss/afterlife/internal/db"
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
