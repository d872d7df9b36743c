package catalog

import (
	"context"
	"fmt"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/logevent"
)

// LoggedEvent is a change of a product (registration, status, support
// period, edit, retirement) with the product it is about, as the
// transparency log records it.
type LoggedEvent struct {
	Event
	Vendor    string
	Model     string
	DeviceIDs []string // the ids the product claims now
}

// EventsAfter returns up to limit status changes with a seq above seq, in
// order: the transparency log tails the catalog's log.
func (c *Catalog) EventsAfter(ctx context.Context, seq int64, limit int) ([]LoggedEvent, error) {
	rows, err := c.db.QueryContext(ctx, c.db.Q(`SELECT e.id, e.seq, e.product, e.at, e.actor, e.from_status, e.to_status, e.edit, p.vendor, p.model
		FROM product_events e JOIN products p ON p.id = e.product WHERE e.seq > ? ORDER BY e.seq LIMIT ?`), seq, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: events after %d: %w", seq, db.Classify(err))
	}
	var out []LoggedEvent
	for rows.Next() {
		var e LoggedEvent
		var at int64
		var from, to, edit string
		if err := rows.Scan(&e.ID, &e.Seq, &e.Product, &at, &e.Actor, &from, &to, &edit, &e.Vendor, &e.Model); err != nil {
			rows.Close()
			return nil, fmt.Errorf("catalog: events after %d: %w", seq, err)
		}
		ch, err := decodeChange(e.Product, edit)
		if err != nil {
			rows.Close()
			return nil, err
		}
		e.Change = ch
		e.At, e.From, e.To = db.FromMillis(at), Status(from), Status(to)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	for i := range out {
		if out[i].From != "" {
			continue
		}
		ids, err := c.db.QueryContext(ctx, c.db.Q(`SELECT device_id FROM product_device_ids WHERE product = ? ORDER BY device_id`), out[i].Product)
		if err != nil {
			return nil, fmt.Errorf("catalog: device ids of %s: %w", out[i].Product, db.Classify(err))
		}
		for ids.Next() {
			var id string
			if err := ids.Scan(&id); err != nil {
				ids.Close()
				return nil, err
			}
			out[i].DeviceIDs = append(out[i].DeviceIDs, id)
		}
		ids.Close()
		if err := ids.Err(); err != nil {
			return nil, db.Classify(err)
		}
	}
	return out, nil
}

// LogEvents is the catalog's log of product status changes as the
// transparency log records it.
func (c *Catalog) LogEvents(ctx context.Context, seq int64, limit int) ([]logevent.Event, error) {
	evs, err := c.EventsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]logevent.Event, len(evs))
	for i, e := range evs {
		ev := logevent.Event{Seq: e.Seq, At: e.At, Subject: e.Product,
			Fields: map[string]any{"product": e.Product, "actor": e.Actor, "status": string(e.To)}}
		switch {
		case e.From == "":
			ev.Type = "product.registered"
			ev.Fields["vendor"], ev.Fields["model"], ev.Fields["device_ids"] = e.Vendor, e.Model, e.DeviceIDs
		case e.Change != nil:
			// An edit or a retirement: what the product said before and
			// after, so the log shows every device id a product ever
			// claimed and when it gave one up.
			ev.Type = "product." + e.Change.Kind
			ev.Fields["vendor"], ev.Fields["before"] = e.Vendor, e.Change.Before
			if e.Change.After != nil {
				ev.Fields["after"] = *e.Change.After
			}
			if e.Change.Reason != "" {
				ev.Fields["reason"] = e.Change.Reason
			}
		default:
			ev.Type = "product.status"
			ev.Fields["from"] = string(e.From)
		}
		out[i] = ev
	}
	return out, nil
}
