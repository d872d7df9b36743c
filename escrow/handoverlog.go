package escrow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
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

// HandoverLogSeqs maps deposits to the seq of their handover event in the
// escrow log (the transparency log names its entry by it); a deposit
// whose statement has not taken effect is absent.
func (s *Service) HandoverLogSeqs(ctx context.Context, deposits []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, d := range deposits {
		var seq int64
		err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT seq FROM escrow_events WHERE deposit = ? AND kind = ?`), d, handoverEvent).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("escrow: handover event of %s: %w", d, db.Classify(err))
		}
		out[d] = seq
	}
	return out, nil
}
