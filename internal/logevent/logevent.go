// Package logevent is the shape in which a part hands the events of its
// own append-only log to the transparency log (registry/translog): each
// part translates its events itself, so the rule of what a part makes
// public (a sealed deposit is only a commitment) stays in that part.
package logevent

import (
	"context"
	"time"
)

// Event is one event of a part, as the transparency log records it.
type Event struct {
	Seq int64     // its place in its source's log (gap-free, from 1)
	At  time.Time // when it happened
	// Type names the entry ("product.registered", "deposit.released", …);
	// an event of type "" is passed over: its source's cursor moves past
	// it and nothing is logged (events that would reveal a sealed deposit).
	Type    string
	Subject string         // what it is about: a product, deposit or release id
	Fields  map[string]any // what the entry says (JSON values)
	// Seal, when set, makes the entry a salted commitment to it and
	// nothing else: a sealed deposit is logged without a readable field.
	Seal *Commitment
	// Opens names the subject whose commitment this entry reveals: the
	// entry carries the salt, so anyone can recompute the commitment.
	Opens string
}

// Commitment is what a sealed entry commits to.
type Commitment struct {
	Product  string
	Manifest string // the manifest's digest
}

// TimeFormat is how times appear in an entry's fields: RFC 3339 in UTC
// with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Func is a part's log as a source: After returns up to limit events with
// a seq above seq, in order.
type Func func(ctx context.Context, seq int64, limit int) ([]Event, error)

// After calls f.
func (f Func) After(ctx context.Context, seq int64, limit int) ([]Event, error) {
	return f(ctx, seq, limit)
}
