package catalog

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
)

// Description is what a vendor says about a product and may correct
// later: its model name, hardware revisions, the device ids its devices
// report, and the risk notes owners read.
type Description struct {
	Model     string   `json:"model"`
	Revisions []string `json:"revisions"`
	DeviceIDs []string `json:"device_ids"`
	RiskNotes string   `json:"risk_notes,omitempty"`
	// FwupdGUIDs is recorded when a product is retired: the GUIDs it
	// gave up with its device ids.
	FwupdGUIDs []string `json:"fwupd_guids,omitempty"`
}

func (p Product) description() Description {
	return Description{Model: p.Model, Revisions: p.Revisions, DeviceIDs: p.DeviceIDs, RiskNotes: p.RiskNotes}
}

// Change is what an edit or a retirement did, recorded with its event.
type Change struct {
	Kind   string       `json:"kind"` // ChangeEdited or ChangeRetired
	Before Description  `json:"before"`
	After  *Description `json:"after,omitempty"` // nil when retired
	Reason string       `json:"reason,omitempty"`
}

// Kinds of Change.
const (
	ChangeEdited  = "edited"
	ChangeRetired = "retired"
)

func encodeChange(ch *Change) string {
	if ch == nil {
		return ""
	}
	b, _ := json.Marshal(ch)
	return string(b)
}

func decodeChange(product, s string) (*Change, error) {
	if s == "" {
		return nil, nil
	}
	var ch Change
	if err := json.Unmarshal([]byte(s), &ch); err != nil {
		return nil, fmt.Errorf("catalog: product %s change: %w", product, err)
	}
	return &ch, nil
}

// Edit corrects a product's description. A nil field is left as it is;
// a given list replaces the whole list.
type Edit struct {
	Model     *string   `json:"model,omitempty"`
	Revisions *[]string `json:"revisions,omitempty"`
	DeviceIDs *[]string `json:"device_ids,omitempty"`
	RiskNotes *string   `json:"risk_notes,omitempty"`
	Reason    string    `json:"reason,omitempty"` // why, for the product's log
}

const maxReasonLen = 1000

// mayChange fails with Forbidden unless who is an admin or a vendor of
// the product's organisation.
func mayChange(who principal.Principal, p Product) error {
	if who.Role != principal.Admin && (who.Role != principal.Vendor || who.Org != p.Vendor) {
		return errs.E(errs.Forbidden, "%s may not change product %s", who.Actor(), p.ID)
	}
	return nil
}

// Edit changes a product's model name, hardware revisions, device ids or
// risk notes, checked as at registration (each device id by its scheme,
// none held by another product), and records the change, before and
// after, as an event of the product's log. Vendors edit their own
// products; admins any.
func (c *Catalog) Edit(ctx context.Context, who principal.Principal, id string, e Edit) (Product, error) {
	p, err := c.Get(ctx, id)
	if err != nil {
		return Product{}, err
	}
	if err := mayChange(who, p); err != nil {
		return Product{}, err
	}
	if len(e.Reason) > maxReasonLen {
		return Product{}, errs.E(errs.TooLarge, "reason longer than %d bytes", maxReasonLen)
	}
	r := Registration{ID: p.ID, Vendor: p.Vendor, Model: p.Model, Revisions: p.Revisions, DeviceIDs: p.DeviceIDs, RiskNotes: p.RiskNotes}
	if e.Model != nil {
		r.Model = *e.Model
	}
	if e.Revisions != nil {
		r.Revisions = *e.Revisions
	}
	if e.DeviceIDs != nil {
		r.DeviceIDs = *e.DeviceIDs
	}
	if e.RiskNotes != nil {
		r.RiskNotes = *e.RiskNotes
	}
	next, err := r.validate()
	if err != nil {
		return Product{}, err
	}
	before, after := p.description(), next.description()
	if descriptionsEqual(before, after) {
		return Product{}, errs.E(errs.Invalid, "the edit changes nothing of product %s", p.ID)
	}
	idsChanged := !slices.Equal(before.DeviceIDs, after.DeviceIDs)
	now := c.now().UTC().Truncate(time.Millisecond)
	err = c.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, d := range after.DeviceIDs {
			if err := claimable(ctx, c.db, tx, d, p.ID); err != nil {
				return err
			}
		}
		revs, _ := json.Marshal(after.Revisions)
		res, err := tx.ExecContext(ctx, c.db.Q(`UPDATE products SET model = ?, revisions = ?, risk_notes = ? WHERE id = ? AND retired_at = 0`),
			after.Model, string(revs), after.RiskNotes, p.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.NotFound, "product %s not found", p.ID)
		}
		if idsChanged {
			if _, err := tx.ExecContext(ctx, c.db.Q(`DELETE FROM product_device_ids WHERE product = ?`), p.ID); err != nil {
				return err
			}
			for _, d := range after.DeviceIDs {
				if _, err := tx.ExecContext(ctx, c.db.Q(`INSERT INTO product_device_ids (device_id, product) VALUES (?, ?)`), d, p.ID); err != nil {
					if db.IsUniqueViolation(err) {
						return errs.E(errs.Conflict, "device id %s was claimed by another product at the same moment; look it up and try again", d)
					}
					return err
				}
			}
			if err := setDeviceIDs(ctx, c.db, tx, p.ID, after.DeviceIDs); err != nil {
				return err
			}
		}
		var status string
		if err := tx.QueryRowContext(ctx, c.db.Q(`SELECT status FROM products WHERE id = ?`), p.ID).Scan(&status); err != nil {
			return err
		}
		return c.appendEvent(ctx, tx, p.ID, now, who.Actor(), Status(status), Status(status), Support{},
			&Change{Kind: ChangeEdited, Before: before, After: &after, Reason: strings.TrimSpace(e.Reason)})
	})
	if err != nil {
		return Product{}, fmt.Errorf("catalog: edit %s: %w", p.ID, err)
	}
	if err := c.afterChange(ctx, p.ID); err != nil {
		return Product{}, err
	}
	return c.Get(ctx, p.ID)
}

func descriptionsEqual(a, b Description) bool {
	return a.Model == b.Model && a.RiskNotes == b.RiskNotes && slices.Equal(a.Revisions, b.Revisions) && slices.Equal(a.DeviceIDs, b.DeviceIDs)
}

// afterChange tells whoever keeps copies of the catalog that product
// changed: the update index (device ids) and the signed lifecycle
// documents. The change is recorded either way.
func (c *Catalog) afterChange(ctx context.Context, product string) error {
	c.lifecycleChanged(ctx, product)
	if c.changed != nil {
		if err := c.changed(ctx); err != nil {
			return fmt.Errorf("catalog: %s changed, but refreshing device lookups failed: %w", product, err)
		}
	}
	return nil
}

// Keeper is another part that may hold something of a product that must
// outlive it: a signed release devices install, a deposit the escrow can
// never delete. Keeps names what it holds ("2 published releases"), or ""
// when nothing. The catalog asks every keeper before it retires a product.
type Keeper interface {
	Keeps(ctx context.Context, product string) (string, error)
}

// KeptBy adds keepers Retire asks.
func (c *Catalog) KeptBy(k ...Keeper) { c.keepers = append(c.keepers, k...) }

// Retire withdraws a product registered by mistake. Only a product that
// nothing outlives may go: one with a release (devices hold signed
// metadata naming it) or a deposit (sealed or released deposits are
// never deleted) is refused with a Conflict naming what keeps it; move it
// forward (sunset) instead. A retired product gives up its device ids and
// fwupd GUIDs, so the right product can claim them; it disappears from
// lists, search, device lookups and the update index; its id stays taken,
// since the product's log and the transparency log still name it; and its
// retirement, with what it gave up and why, is the last event of its log.
func (c *Catalog) Retire(ctx context.Context, who principal.Principal, id, reason string) error {
	p, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := mayChange(who, p); err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > maxReasonLen {
		return errs.E(errs.TooLarge, "reason longer than %d bytes", maxReasonLen)
	}
	var kept []string
	for _, k := range c.keepers {
		what, err := k.Keeps(ctx, p.ID)
		if err != nil {
			return fmt.Errorf("catalog: retire %s: %w", p.ID, err)
		}
		if what != "" {
			kept = append(kept, what)
		}
	}
	if len(kept) > 0 {
		return errs.E(errs.Conflict, "product %s has %s, which outlive it: it cannot be retired (move it to sunset instead)", p.ID, strings.Join(kept, " and "))
	}
	before := p.description()
	before.FwupdGUIDs = p.FwupdGUIDs
	now := c.now().UTC().Truncate(time.Millisecond)
	err = c.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, c.db.Q(`UPDATE products SET retired_at = ?, device_ids = '[]', fwupd_guids = '[]' WHERE id = ? AND retired_at = 0`), db.Millis(now), p.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.NotFound, "product %s not found", p.ID)
		}
		for _, q := range []string{`DELETE FROM product_device_ids WHERE product = ?`, `DELETE FROM product_fwupd_guids WHERE product = ?`} {
			if _, err := tx.ExecContext(ctx, c.db.Q(q), p.ID); err != nil {
				return err
			}
		}
		return c.appendEvent(ctx, tx, p.ID, now, who.Actor(), p.Status, p.Status, Support{},
			&Change{Kind: ChangeRetired, Before: before, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("catalog: retire %s: %w", p.ID, err)
	}
	return c.afterChange(ctx, p.ID)
}

// freeID is base, or base-2, base-3, … when a retired product keeps the
// id: a vendor who retired a mistaken product may register its model
// again from the web form, which derives the id.
func (c *Catalog) freeID(ctx context.Context, base string) (string, error) {
	id := base
	for n := 2; ; n++ {
		var retired int64
		err := c.db.QueryRowContext(ctx, c.db.Q(`SELECT retired_at FROM products WHERE id = ?`), id).Scan(&retired)
		switch {
		case err == sql.ErrNoRows || (err == nil && retired == 0):
			return id, nil // free, or a live product: Register says it exists
		case err != nil:
			return "", fmt.Errorf("catalog: product id %s: %w", id, db.Classify(err))
		}
		suffix := fmt.Sprintf("-%d", n)
		id = strings.TrimRight(base[:min(len(base), 63-len(suffix))], "-") + suffix
	}
}
