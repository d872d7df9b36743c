package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// TBA is the value of a support date the vendor has not announced yet
// (OpenEoX's "to be announced").
const TBA = "tba"

// Support is a product's declared support period. Each date is "" (never
// declared), TBA, or an RFC 3339 date-time in UTC ("2029-06-30T00:00:00Z").
// General availability is when the product went on sale; the three ends
// are OpenEoX's: end of sales, end of security support (the last day the
// vendor commits to security fixes), end of life (the last day of any
// support).
type Support struct {
	GeneralAvailability  string    `json:"general_availability,omitempty"`
	EndOfSales           string    `json:"end_of_sales,omitempty"`
	EndOfSecuritySupport string    `json:"end_of_security_support,omitempty"`
	EndOfLife            string    `json:"end_of_life,omitempty"`
	Updated              time.Time `json:"updated,omitzero"` // when it was last declared
}

// Declared reports whether the vendor declared anything.
func (s Support) Declared() bool {
	return s.GeneralAvailability != "" || s.EndOfSales != "" || s.EndOfSecuritySupport != "" || s.EndOfLife != ""
}

// SupportDate parses a declared date: RFC 3339 date-time, a plain date
// (YYYY-MM-DD, that day at 00:00 UTC), TBA, or "" (not declared). It
// returns the stored form: the date-time in UTC, TBA or "".
func SupportDate(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", nil
	case strings.EqualFold(s, TBA):
		return TBA, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if t, err = time.Parse(time.DateOnly, s); err != nil {
			return "", errs.E(errs.Invalid, "%s %q: want an RFC 3339 date-time, a date (YYYY-MM-DD) or %q", field, s, TBA)
		}
	}
	return t.UTC().Format(time.RFC3339), nil
}

// Time is the instant a stored date names; ok is false for "" and TBA.
func SupportTime(s string) (t time.Time, ok bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// normalise checks a declaration and returns it in stored form: every
// date parsed, and the ends in order after general availability, with
// security support and sales ending no later than life.
func (s Support) normalise() (Support, error) {
	var out Support
	var err error
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{
		{"general_availability", s.GeneralAvailability, &out.GeneralAvailability},
		{"end_of_sales", s.EndOfSales, &out.EndOfSales},
		{"end_of_security_support", s.EndOfSecuritySupport, &out.EndOfSecuritySupport},
		{"end_of_life", s.EndOfLife, &out.EndOfLife},
	} {
		if *f.out, err = SupportDate(f.name, f.in); err != nil {
			return Support{}, err
		}
	}
	before := func(a, aName, b, bName string) error {
		ta, oka := SupportTime(a)
		tb, okb := SupportTime(b)
		if oka && okb && tb.Before(ta) {
			return errs.E(errs.Invalid, "%s (%s) is before %s (%s)", bName, b, aName, a)
		}
		return nil
	}
	for _, c := range [][4]string{
		{out.GeneralAvailability, "general_availability", out.EndOfSales, "end_of_sales"},
		{out.GeneralAvailability, "general_availability", out.EndOfSecuritySupport, "end_of_security_support"},
		{out.GeneralAvailability, "general_availability", out.EndOfLife, "end_of_life"},
		{out.EndOfSecuritySupport, "end_of_security_support", out.EndOfLife, "end_of_life"},
		{out.EndOfSales, "end_of_sales", out.EndOfLife, "end_of_life"},
	} {
		if err := before(c[0], c[1], c[2], c[3]); err != nil {
			return Support{}, err
		}
	}
	return out, nil
}

func encodeSupport(s Support) string {
	if !s.Declared() {
		return ""
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func decodeSupport(product, s string) (Support, error) {
	var out Support
	if s == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return out, fmt.Errorf("catalog: product %s support: %w", product, err)
	}
	return out, nil
}

// OnLifecycleChanged sets fn to be called after a product's support period
// or status changed, so whoever publishes documents about its life (the
// registry's signed OpenEoX and lifecycle documents) writes them again.
// fn reports its own failures; the change is recorded either way.
func (c *Catalog) OnLifecycleChanged(fn func(ctx context.Context, product string)) { c.lifecycle = fn }

func (c *Catalog) lifecycleChanged(ctx context.Context, product string) {
	if c.lifecycle != nil {
		c.lifecycle(ctx, product)
	}
}

// SetSupport declares a product's support period, replacing the one
// declared before, as an event of the product's log. Vendors declare for
// their own products; admins for any. A declared end of life that is a
// date becomes the product's end-of-life date too.
func (c *Catalog) SetSupport(ctx context.Context, who principal.Principal, id string, s Support) (Product, error) {
	p, err := c.Get(ctx, id)
	if err != nil {
		return Product{}, err
	}
	if who.Role != principal.Admin && (who.Role != principal.Vendor || who.Org != p.Vendor) {
		return Product{}, errs.E(errs.Forbidden, "%s may not change product %s", who.Actor(), id)
	}
	if s, err = s.normalise(); err != nil {
		return Product{}, err
	}
	if !s.Declared() {
		return Product{}, errs.E(errs.Invalid, "declare at least one of general_availability, end_of_sales, end_of_security_support, end_of_life")
	}
	now := c.now().UTC().Truncate(time.Millisecond)
	s.Updated = now
	eol := p.EOL
	if t, ok := SupportTime(s.EndOfLife); ok {
		eol = t
	}
	err = c.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, c.db.Q(`UPDATE products SET support = ?, eol = ? WHERE id = ?`), encodeSupport(s), db.Millis(eol), p.ID); err != nil {
			return err
		}
		var status string
		if err := tx.QueryRowContext(ctx, c.db.Q(`SELECT status FROM products WHERE id = ?`), p.ID).Scan(&status); err != nil {
			return err
		}
		return c.appendEvent(ctx, tx, p.ID, now, who.Actor(), Status(status), Status(status), s, nil)
	})
	if err != nil {
		return Product{}, fmt.Errorf("catalog: declare support of %s: %w", p.ID, err)
	}
	c.lifecycleChanged(ctx, p.ID)
	return c.Get(ctx, p.ID)
}
