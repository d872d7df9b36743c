package escrow

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/logevent"
)

// handoverEvent is the escrow event that a released deposit's handover
// statement took effect. It is appended in the release's transaction, right
// after "released", so the transparency log holds the handover as soon as
// it holds the release, and in the same order as the claims were made.
const handoverEvent = "handover"

// HandoverEntryType is the transparency log's entry type of a handover
// that took effect (docs/handover.md lists its fields).
const HandoverEntryType = "handover"

// logHandoverAtRelease appends the handover event when deposit id carries
// a statement that holds its device ids (checked, sealed, not revoked).
func (s *Service) logHandoverAtRelease(ctx context.Context, tx *sql.Tx, id string, now time.Time, actor string) error {
	h, err := s.handoverRow(ctx, tx, id)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if h.State != handoverClaimed {
		return nil
	}
	return s.appendEvent(ctx, tx, id, now, actor, handoverEvent, "", "statement "+h.EnvelopeSHA256)
}

// handoverLogEvent is the log entry of a handover: which statement (the
// sha256 of its envelope, as served), signed by which vendor key, names
// which root, for which device ids. Its subject is the product, so the
// entries about a product list it.
func (s *Service) handoverLogEvent(ctx context.Context, ev logevent.Event, e LoggedEvent) (logevent.Event, error) {
	h, err := s.handoverRow(ctx, s.db.DB, e.Deposit)
	if err != nil {
		return ev, fmt.Errorf("escrow: handover entry of %s: %w", e.Deposit, err)
	}
	ev.Type, ev.Subject = HandoverEntryType, e.Product
	ev.Fields = map[string]any{
		"deposit": e.Deposit, "product": e.Product,
		"statement_sha256": h.EnvelopeSHA256, "vendor_key": h.VendorKey,
		"root_name": h.RootName, "root_sha256": h.RootSHA256, "device_ids": h.DeviceIDs,
	}
	return ev, nil
}
