package escrow

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// A deposit may carry a handover statement, the file wire.HandoverFile:
// the vendor's own update key vouching for the community registry's root.
// The escrow checks it when the file arrives (its signature, its product,
// its device ids, its root), records which device ids it claims when the
// deposit is sealed (the first claim of a device id wins), lets the vendor
// revoke it while the deposit is sealed, and hands it to a
// HandoverPublisher when the deposit is released. The statement's format
// is the registry's; escrow sees it through HandoverChecks.

// Handover states.
const (
	handoverChecked = "checked" // the file arrived and verified; the deposit is uploading
	handoverClaimed = "claimed" // the deposit is sealed: the statement holds its device ids
	handoverRevoked = "revoked" // its vendor revoked it while sealed
	// HandoverNone is the state HandoverOf reports for a deposit that
	// carries no handover statement.
	HandoverNone = "none"
)

// Handover is a deposit's handover statement as escrow records it.
type Handover = wire.Handover

// HandoverStatement is what a verified handover statement says.
type HandoverStatement struct {
	Product        string
	DeviceIDs      []string // as the registry compares them
	VendorKey      string   // the signing key's fingerprint
	RootName       string
	RootSHA256     string
	EnvelopeSHA256 string
}

// HandoverChecks is what escrow needs to check a handover statement; the
// registry provides it through an adapter.
type HandoverChecks interface {
	// Verify checks the envelope's signature with the key it declares
	// (and a certificate chain it carries, at time at) and returns what
	// it states; a bad statement is errs.Invalid.
	Verify(ctx context.Context, envelope []byte, at time.Time) (HandoverStatement, error)
	// RootVersion returns the version of this registry's root metadata
	// whose bytes hash to sha256 (hex), or errs.NotFound.
	RootVersion(ctx context.Context, sha256 string) (int64, error)
	// DeviceIDs returns the device ids the product lists.
	DeviceIDs(ctx context.Context, product string) ([]string, error)
}

// ReleasedHandover is a handover statement whose deposit was released
// and which its vendor did not revoke: it has taken effect.
type ReleasedHandover struct {
	Handover
	Envelope   []byte
	ReleasedAt time.Time
	// Bridge is the deposit's bridge image (wire.BridgeFile), when it
	// carries one.
	Bridge *manifest.Entry
}

// HandoverPublisher publishes and logs a handover statement that took
// effect (the transparency log, the product page). It must be idempotent.
type HandoverPublisher interface {
	PublishHandover(ctx context.Context, h ReleasedHandover) error
}

// PublishHandovers is an AfterRelease consumer that hands the statement
// of every released deposit that carries one (and did not revoke it) to
// Publisher. Escrow is set once the service exists.
type PublishHandovers struct {
	Escrow    *Service
	Publisher HandoverPublisher
}

// Notify implements AfterRelease.
func (p *PublishHandovers) Notify(ctx context.Context, n Notice) error {
	h, err := p.Escrow.ReleasedHandover(ctx, n.Deposit)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return p.Publisher.PublishHandover(ctx, h)
}

// checkHandoverEntry refuses, at Create, a handover file this server
// cannot check or that cannot be a statement.
func (s *Service) checkHandoverEntry(entries []manifest.Entry) error {
	i := slices.IndexFunc(entries, func(e manifest.Entry) bool { return e.Path == wire.HandoverFile })
	if i < 0 {
		return nil
	}
	e := entries[i]
	switch {
	case s.handover == nil:
		return errs.E(errs.Invalid, "%s: this server does not accept handover statements", wire.HandoverFile)
	case e.IsLink():
		return errs.E(errs.Invalid, "%s must be a file, not a link", wire.HandoverFile)
	case e.Size > wire.MaxHandoverSize:
		return errs.E(errs.TooLarge, "%s is %d bytes; a handover statement has at most %d", wire.HandoverFile, e.Size, wire.MaxHandoverSize)
	}
	return nil
}

// readHandover reads the handover file's body and checks it against the
// manifest and the statement's rules, so that a bad statement is refused
// before anything is stored.
func (s *Service) readHandover(ctx context.Context, d Deposit, body io.Reader, want manifest.Entry) ([]byte, Handover, error) {
	buf, err := io.ReadAll(io.LimitReader(body, want.Size+1))
	if err != nil {
		return nil, Handover{}, errs.Wrap(errs.Invalid, err, "reading %s: upload interrupted", want.Path)
	}
	if int64(len(buf)) != want.Size {
		return nil, Handover{}, errs.E(errs.Invalid, "%s: body has %d bytes; the manifest declares %d", want.Path, len(buf), want.Size)
	}
	h, err := s.checkHandover(ctx, d, buf)
	if err != nil {
		return nil, Handover{}, err
	}
	return buf, h, nil
}

// checkHandover verifies a statement for deposit d: signed by the key it
// declares, for d's product and only its device ids, naming one of this
// registry's root versions, and claiming no device id an earlier
// statement holds.
func (s *Service) checkHandover(ctx context.Context, d Deposit, envelope []byte) (Handover, error) {
	now := s.now()
	st, err := s.handover.Verify(ctx, envelope, now)
	if err != nil {
		return Handover{}, fmt.Errorf("%s: %w", wire.HandoverFile, err)
	}
	if st.Product != d.Product {
		return Handover{}, errs.E(errs.Invalid, "%s hands over product %q; this deposit is for %q", wire.HandoverFile, st.Product, d.Product)
	}
	listed, err := s.handover.DeviceIDs(ctx, d.Product)
	if err != nil {
		return Handover{}, fmt.Errorf("escrow: device ids of %s: %w", d.Product, err)
	}
	for _, id := range st.DeviceIDs {
		if !slices.Contains(listed, id) {
			return Handover{}, errs.E(errs.Invalid, "%s names device id %s, which product %s does not list", wire.HandoverFile, id, d.Product)
		}
	}
	version, err := s.handover.RootVersion(ctx, st.RootSHA256)
	if errs.Is(err, errs.NotFound) {
		return Handover{}, errs.E(errs.Invalid, "%s names root %s (sha256 %s), which is none of this registry's root versions", wire.HandoverFile, st.RootName, st.RootSHA256)
	}
	if err != nil {
		return Handover{}, fmt.Errorf("escrow: registry root versions: %w", err)
	}
	if err := s.unclaimed(ctx, s.db.DB, st.DeviceIDs); err != nil {
		return Handover{}, err
	}
	return Handover{
		Deposit: d.ID, Product: d.Product, State: handoverChecked, VendorKey: st.VendorKey,
		RootName: st.RootName, RootSHA256: st.RootSHA256, RootVersion: version, DeviceIDs: st.DeviceIDs,
		EnvelopeSHA256: st.EnvelopeSHA256, CheckedAt: now.UTC().Truncate(time.Millisecond),
	}, nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// unclaimed refuses device ids that an earlier statement holds.
func (s *Service) unclaimed(ctx context.Context, q queryer, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := q.QueryContext(ctx, s.db.Q(`SELECT device_id FROM escrow_handover_claims WHERE device_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) ORDER BY device_id`), args...)
	if err != nil {
		return db.Classify(err)
	}
	defer rows.Close()
	var taken []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		taken = append(taken, id)
	}
	if err := rows.Err(); err != nil {
		return db.Classify(err)
	}
	if len(taken) > 0 {
		return errs.E(errs.Conflict, "%s: device ids %s are already handed over by an earlier statement; the first handover for a device id wins (a vendor may revoke its own while the deposit is sealed)",
			wire.HandoverFile, strings.Join(taken, ", "))
	}
	return nil
}

// recordHandover stores a checked statement, in the upload's transaction.
func (s *Service) recordHandover(ctx context.Context, tx *sql.Tx, h Handover) error {
	ids, err := json.Marshal(h.DeviceIDs)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_handovers
		(deposit, product, vendor_key, root_name, root_sha256, root_version, envelope_sha256, device_ids, state, checked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (deposit) DO NOTHING`),
		h.Deposit, h.Product, h.VendorKey, h.RootName, h.RootSHA256, h.RootVersion, h.EnvelopeSHA256, string(ids), handoverChecked, db.Millis(h.CheckedAt))
	return err
}

// claimHandover, in the seal's transaction, makes a deposit's checked
// statement hold its device ids; an id claimed meanwhile by another
// statement refuses the seal (errs.Conflict).
func (s *Service) claimHandover(ctx context.Context, tx *sql.Tx, id string, now time.Time) (bool, error) {
	h, err := s.handoverRow(ctx, tx, id)
	if errs.Is(err, errs.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if h.State != handoverChecked {
		return false, nil
	}
	if err := s.unclaimed(ctx, tx, h.DeviceIDs); err != nil {
		return false, err
	}
	for _, dev := range h.DeviceIDs {
		res, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_handover_claims (device_id, deposit, claimed_at) VALUES (?, ?, ?)
			ON CONFLICT (device_id) DO NOTHING`), dev, id, db.Millis(now))
		if err != nil {
			return false, err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return false, errs.E(errs.Conflict, "%s: device id %s was handed over by another statement meanwhile; the first handover wins", wire.HandoverFile, dev)
		}
	}
	_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE escrow_handovers SET state = ? WHERE deposit = ?`), handoverClaimed, id)
	return err == nil, err
}

const handoverCols = `deposit, product, vendor_key, root_name, root_sha256, root_version, envelope_sha256, device_ids, state, checked_at, revoked_at`

type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Service) handoverRow(ctx context.Context, q rowQueryer, id string) (Handover, error) {
	var h Handover
	var ids string
	var checked, revoked int64
	err := q.QueryRowContext(ctx, s.db.Q(`SELECT `+handoverCols+` FROM escrow_handovers WHERE deposit = ?`), id).
		Scan(&h.Deposit, &h.Product, &h.VendorKey, &h.RootName, &h.RootSHA256, &h.RootVersion, &h.EnvelopeSHA256, &ids, &h.State, &checked, &revoked)
	if err != nil {
		return Handover{}, db.NotFound(err, "deposit %s carries no handover statement", id)
	}
	if err := json.Unmarshal([]byte(ids), &h.DeviceIDs); err != nil {
		return Handover{}, fmt.Errorf("escrow: handover of %s: device ids: %w", id, err)
	}
	h.CheckedAt, h.RevokedAt = db.FromMillis(checked), db.FromMillis(revoked)
	return h, nil
}

// HandoverOf returns the handover statement a deposit carries, for those
// who may see the deposit.
func (s *Service) HandoverOf(ctx context.Context, p principal.Principal, id string) (Handover, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Handover{}, err
	}
	if !canSee(p, d) || (d.State != Released && !isOwner(p, d)) {
		return Handover{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	h, err := s.handoverRow(ctx, s.db.DB, id)
	if errs.Is(err, errs.NotFound) {
		return Handover{Deposit: id, Product: d.Product, State: HandoverNone, DeviceIDs: []string{}}, nil
	}
	return h, err
}

// RevokeHandover withdraws a deposit's handover statement while the
// deposit is sealed: its device ids are free again for another statement,
// and the statement will not take effect when the deposit is released
// (the file stays in the deposit, which never changes). Once released, a
// statement has taken effect and cannot be revoked.
func (s *Service) RevokeHandover(ctx context.Context, p principal.Principal, id string) (Handover, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Handover{}, err
	}
	if !canSee(p, d) {
		return Handover{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	if !isOwner(p, d) {
		return Handover{}, errs.E(errs.Forbidden, "%s may not revoke the handover of deposit %s", p.Actor(), id)
	}
	switch d.State {
	case Uploading:
		return Handover{}, errs.E(errs.Conflict, "deposit %s is not sealed yet: abort the upload instead", id)
	case Released:
		return Handover{}, errs.E(errs.Conflict, "deposit %s is released: its handover has taken effect and cannot be revoked", id)
	}
	now := s.now()
	var revoked bool
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE escrow_handovers SET state = ?, revoked_at = ?
			WHERE deposit = ? AND state = ? AND EXISTS (SELECT 1 FROM escrow_deposits WHERE id = ? AND state = ?)`),
			handoverRevoked, db.Millis(now), id, handoverClaimed, id, Sealed)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if revoked = n == 1; !revoked {
			return nil
		}
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_handover_claims WHERE deposit = ?`), id); err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, id, now, p.Actor(), "handover-revoked", "", "")
	})
	if err != nil {
		return Handover{}, fmt.Errorf("escrow: revoke handover of %s: %w", id, err)
	}
	h, err := s.handoverRow(ctx, s.db.DB, id)
	if errs.Is(err, errs.NotFound) {
		return Handover{}, errs.E(errs.Conflict, "deposit %s carries no handover statement to revoke", id)
	}
	if err != nil {
		return Handover{}, err
	}
	if !revoked {
		if h.State == handoverRevoked {
			return h, nil
		}
		return Handover{}, errs.E(errs.Conflict, "deposit %s is no longer sealed: its handover cannot be revoked", id)
	}
	s.log.Info("handover statement revoked", "deposit", id, "product", h.Product, "by", p.Actor())
	return h, nil
}

// ReleasedHandover returns the statement of a released deposit, with its
// bytes, when it has taken effect (it was not revoked); otherwise
// errs.NotFound.
func (s *Service) ReleasedHandover(ctx context.Context, id string) (ReleasedHandover, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return ReleasedHandover{}, err
	}
	if d.State != Released {
		return ReleasedHandover{}, errs.E(errs.NotFound, "deposit %s is not released", id)
	}
	h, err := s.handoverRow(ctx, s.db.DB, id)
	if err != nil {
		return ReleasedHandover{}, err
	}
	if h.State != handoverClaimed {
		return ReleasedHandover{}, errs.E(errs.NotFound, "the handover statement of deposit %s was %s", id, h.State)
	}
	f, err := s.file(ctx, id, wire.HandoverFile)
	if err != nil {
		return ReleasedHandover{}, err
	}
	rc, err := s.openPlain(ctx, f.Entry)
	if err != nil {
		return ReleasedHandover{}, fmt.Errorf("escrow: handover of %s: %w", id, err)
	}
	defer rc.Close()
	env, err := io.ReadAll(io.LimitReader(rc, wire.MaxHandoverSize+1))
	if err != nil {
		return ReleasedHandover{}, fmt.Errorf("escrow: handover of %s: %w", id, err)
	}
	out := ReleasedHandover{Handover: h, Envelope: env, ReleasedAt: d.ReleasedAt}
	if b, err := s.file(ctx, id, wire.BridgeFile); err == nil && !b.IsLink() {
		out.Bridge = &b.Entry
	} else if err != nil && !errs.Is(err, errs.NotFound) {
		return ReleasedHandover{}, fmt.Errorf("escrow: bridge image of %s: %w", id, err)
	}
	return out, nil
}
