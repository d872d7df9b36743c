package catalog

import (
	"context"
	"crypto/sha1"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

const (
	maxFwupdIDs    = 32
	maxFwupdIDLen  = 200
	fwupdNamespace = "\x6b\xa7\xb8\x10\x9d\xad\x11\xd1\x80\xb4\x00\xc0\x4f\xd4\x30\xc8" // 6ba7b810-9dad-11d1-80b4-00c04fd430c8
)

var guidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// FwupdGUID turns what a vendor gives for fwupd into the GUID fwupd
// matches devices by: a GUID is returned lowercased; anything else is an
// instance id (USB\VID_1D6B&PID_0104, a DeviceTree compatible string, …),
// from which fwupd derives its GUID as a name-based SHA-1 UUID (RFC 9562
// version 5) in the namespace 6ba7b810-9dad-11d1-80b4-00c04fd430c8, the way
// fwupd_guid_hash_string does.
func FwupdGUID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxFwupdIDLen {
		return "", errs.E(errs.Invalid, "fwupd id %.32q: want a GUID or an instance id of 1 to %d bytes", s, maxFwupdIDLen)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' {
			return "", errs.E(errs.Invalid, "fwupd id %q: want printable ASCII without spaces", s)
		}
	}
	if lower := strings.ToLower(s); guidForm.MatchString(lower) {
		return lower, nil
	}
	h := sha1.New()
	h.Write([]byte(fwupdNamespace))
	h.Write([]byte(s))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

// fwupdGUIDs validates a registration's fwupd ids and returns their GUIDs,
// each once, in the order given.
func fwupdGUIDs(in []string) ([]string, error) {
	if len(in) > maxFwupdIDs {
		return nil, errs.E(errs.TooLarge, "at most %d fwupd ids", maxFwupdIDs)
	}
	out := []string{}
	for _, s := range in {
		g, err := FwupdGUID(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// WithFwupdGUIDs returns every product that declares fwupd GUIDs, ordered
// by id, however many there are: the fwupd remote exports them all.
func (c *Catalog) WithFwupdGUIDs(ctx context.Context) ([]Product, error) {
	rows, err := c.db.QueryContext(ctx, c.db.Q(`SELECT `+cols+` FROM products WHERE id IN (SELECT product FROM product_fwupd_guids) ORDER BY id`))
	if err != nil {
		return nil, fmt.Errorf("catalog: products with fwupd GUIDs: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Product{}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, db.Classify(rows.Err())
}
