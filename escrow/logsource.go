package escrow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/logevent"
)

// LoggedEvent is an escrow event with what the transparency log records
// of it: the deposit's product and manifest digest (which a sealed
// deposit's entry only commits to) and, for a release, the evidence of the
// policy that fired.
type LoggedEvent struct {
	Event
	Product  string
	Manifest string // the manifest's digest
	Policy   string // the deposit's policy, as the vendor set it
	// Evidence of a release: the trustees who approved, when, and the
	// vendor's last check-in as escrow knows it when the log reads it.
	Approvals   []Approval
	LastCheckin time.Time
	SealedAt    time.Time
}

// Approval is one trustee's approval of a deposit's release.
type Approval struct {
	Trustee string    `json:"trustee"`
	At      time.Time `json:"at"`
}

// EventsAfter returns up to limit events of the escrow log with a seq
// above seq, in order: the transparency log tails it. Like the log it
// reads, it includes sealed deposits' events; the reader decides what of
// them may be published.
func (s *Service) EventsAfter(ctx context.Context, seq int64, limit int) ([]LoggedEvent, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT e.id, e.seq, e.deposit, e.at, e.actor, e.kind, e.policy, e.details,
		d.product, d.org, d.manifest_digest, d.policy, d.sealed_at
		FROM escrow_events e JOIN escrow_deposits d ON d.id = e.deposit WHERE e.seq > ? ORDER BY e.seq LIMIT ?`), seq, limit)
	if err != nil {
		return nil, fmt.Errorf("escrow: events after %d: %w", seq, db.Classify(err))
	}
	var out []LoggedEvent
	var orgs []string
	for rows.Next() {
		var e LoggedEvent
		var at, sealed int64
		var org string
		if err := rows.Scan(&e.ID, &e.Seq, &e.Deposit, &at, &e.Actor, &e.Kind, &e.Event.Policy, &e.Details,
			&e.Product, &org, &e.Manifest, &e.Policy, &sealed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("escrow: events after %d: %w", seq, err)
		}
		e.At, e.SealedAt = db.FromMillis(at), db.FromMillis(sealed)
		out = append(out, e)
		orgs = append(orgs, org)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	for i := range out {
		if out[i].Kind != "released" {
			continue
		}
		if out[i].Approvals, err = s.approvalTimes(ctx, out[i].Deposit); err != nil {
			return nil, err
		}
		var at int64
		err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT at FROM escrow_checkins WHERE org = ?`), orgs[i]).Scan(&at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("escrow: check-in of %s: %w", orgs[i], db.Classify(err))
		}
		out[i].LastCheckin = db.FromMillis(at)
	}
	return out, nil
}

func (s *Service) approvalTimes(ctx context.Context, deposit string) ([]Approval, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT trustee, at FROM escrow_approvals WHERE deposit = ? ORDER BY at, trustee`), deposit)
	if err != nil {
		return nil, fmt.Errorf("escrow: approvals of %s: %w", deposit, db.Classify(err))
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		var a Approval
		var at int64
		if err := rows.Scan(&a.Trustee, &at); err != nil {
			return nil, err
		}
		a.At = db.FromMillis(at)
		out = append(out, a)
	}
	return out, db.Classify(rows.Err())
}

// LogEvents is escrow's log of deposits as the transparency log records
// it. A sealed deposit is logged as
// a commitment only; its release opens it. Events that would show a
// sealed deposit exists (created, approved, aborted) are passed over.
func (s *Service) LogEvents(ctx context.Context, seq int64, limit int) ([]logevent.Event, error) {
	evs, err := s.EventsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]logevent.Event, len(evs))
	for i, e := range evs {
		ev := logevent.Event{Seq: e.Seq, At: e.At}
		switch e.Kind {
		case "sealed":
			ev.Type, ev.Subject = "deposit.sealed", e.Deposit
			ev.Seal = &logevent.Commitment{Product: e.Product, Manifest: e.Manifest}
		case "released":
			ev.Type, ev.Subject, ev.Opens = "deposit.released", e.Product, e.Deposit
			approvals := make([]map[string]any, 0, len(e.Approvals))
			for _, a := range e.Approvals {
				approvals = append(approvals, map[string]any{"trustee": a.Trustee, "at": a.At.UTC().Format(logevent.TimeFormat)})
			}
			evidence := map[string]any{"approvals": approvals, "released_by": e.Actor}
			if !e.SealedAt.IsZero() {
				evidence["sealed_at"] = e.SealedAt.UTC().Format(logevent.TimeFormat)
			}
			if !e.LastCheckin.IsZero() {
				evidence["last_checkin"] = e.LastCheckin.UTC().Format(logevent.TimeFormat)
			}
			ev.Fields = map[string]any{"deposit": e.Deposit, "product": e.Product, "manifest": e.Manifest,
				"policy": e.Policy, "fired": e.Event.Policy, "evidence": evidence}
		case handoverEvent:
			if ev, err = s.handoverLogEvent(ctx, ev, e); err != nil {
				return nil, err
			}
		}
		out[i] = ev
	}
	return out, nil
}
