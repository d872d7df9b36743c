// Package catalog owns products: a vendor's device models with their
// hardware revisions, the ids a device reports to identify itself, an
// end-of-life date, and a status that only moves forward
// (supported → sunset → handed-over → community), each change recorded
// with who made it and when.
//
// It must not know about deposits, builds or releases; other parts reach it
// through small interfaces of their own.
package catalog

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Status is where a product is in its life.
type Status string

// Statuses, in the only order a product may move through them.
const (
	Supported  Status = "supported"
	Sunset     Status = "sunset"
	HandedOver Status = "handed-over"
	Community  Status = "community"
)

var order = []Status{Supported, Sunset, HandedOver, Community}

// ParseStatus validates s.
func ParseStatus(s string) (Status, error) {
	for _, st := range order {
		if string(st) == s {
			return st, nil
		}
	}
	return "", errs.E(errs.Invalid, "status %q: want supported, sunset, handed-over or community", s)
}

func (s Status) rank() int { return slices.Index(order, s) }

// Product is one device model.
type Product struct {
	ID        string   `json:"id"`
	Vendor    string   `json:"vendor"` // vendor org
	Model     string   `json:"model"`
	Revisions []string `json:"revisions"`
	DeviceIDs []string `json:"device_ids"`
	// FwupdGUIDs are the GUIDs fwupd knows the product's devices by; the
	// fwupd remote offers its community releases to them.
	FwupdGUIDs []string  `json:"fwupd_guids"`
	EOL        time.Time `json:"eol,omitzero"`
	Status     Status    `json:"status"`
	RiskNotes  string    `json:"risk_notes,omitempty"`
	Created    time.Time `json:"created"`
	Support    Support   `json:"support"` // the declared support period
	// Retired is when the product was retired (Retire); only the
	// product's own log shows a retired product.
	Retired time.Time `json:"retired,omitzero"`
}

// Event is one change of a product: its status (From → To), a declaration
// of its support period (Support set, From = To), an edit of its
// description or its retirement (Change set, From = To), or its
// registration (From empty, with the support period declared then, if any).
type Event struct {
	ID      string    `json:"id"`
	Seq     int64     `json:"seq"` // the event's place in the catalog's log, gap-free
	Product string    `json:"product"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	From    Status    `json:"from"`
	To      Status    `json:"to"`
	Support *Support  `json:"support,omitempty"` // the support period declared by this event
	Change  *Change   `json:"change,omitempty"`  // the edit or retirement this event made
}

var (
	productID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	scheme    = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
)

// ValidProductID reports whether s can name a product.
func ValidProductID(s string) bool { return productID.MatchString(s) }

const (
	maxDeviceIDLen  = 200
	maxDeviceIDs    = 64
	maxRevisions    = 64
	maxRevisionLen  = 64
	maxModelLen     = 200
	maxRiskNotesLen = 8 << 10
)

// ParseDeviceID validates a device id, "scheme:value" (usb:1d6b:0104,
// dt:acme,cam200, dmi:…), and returns it with the scheme lowercased. The
// value is printable ASCII without spaces, so ids compare byte for byte.
func ParseDeviceID(s string) (string, error) {
	if len(s) > maxDeviceIDLen {
		return "", errs.E(errs.Invalid, "device id %.32q…: longer than %d bytes", s, maxDeviceIDLen)
	}
	sch, val, ok := strings.Cut(s, ":")
	sch = strings.ToLower(sch)
	if !ok || !scheme.MatchString(sch) {
		return "", errs.E(errs.Invalid, "device id %q: want scheme:value (e.g. usb:1d6b:0104, dt:acme,cam200)", s)
	}
	if val == "" {
		return "", errs.E(errs.Invalid, "device id %q: empty value", s)
	}
	for _, c := range []byte(val) {
		if c <= ' ' || c > '~' {
			return "", errs.E(errs.Invalid, "device id %q: value must be printable ASCII without spaces", s)
		}
	}
	switch {
	case sch == "dt":
		// A device-tree compatible string: "vendor,model", one comma.
		if !dtCompatible.MatchString(val) {
			return "", errs.E(errs.Invalid, "device id %q: a dt: id is dt:VENDOR,MODEL (e.g. dt:acme,cam200), one comma; give several ids one per line or as repeated --device-id", s)
		}
	case strings.ContainsAny(val, ",;"):
		// Commas belong to dt: ids only: "usb:1d6b:0104,dt:acme,cam200"
		// is two ids run together, not one.
		return "", errs.E(errs.Invalid, "device id %q: only dt: ids contain commas, and no id contains ';': give several ids one per line or as repeated --device-id", s)
	}
	return sch + ":" + val, nil
}

// dtCompatible is a device-tree compatible string: vendor,model.
var dtCompatible = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*,[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// Catalog is the product service.
type Catalog struct {
	db      *db.DB
	now     func() time.Time
	dropped []DroppedClaim
	changed func(ctx context.Context) error
	// lifecycle is told of support and status changes (OnLifecycleChanged).
	lifecycle func(ctx context.Context, product string)
	keepers   []Keeper // asked before a product is retired
}

// DroppedClaim is a device id a product listed but lost at the upgrade
// that made device ids unique: Holder, registered first, keeps it.
type DroppedClaim struct {
	DeviceID string `json:"device_id"`
	Product  string `json:"product"`
	Holder   string `json:"holder"`
}

//go:embed migrations/*.sql migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// New migrates the catalog tables.
func New(ctx context.Context, d *db.DB, now func() time.Time) (*Catalog, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("catalog: migrations: %w", err)
	}
	if err := d.Migrate(ctx, "catalog", sub); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	c := &Catalog{db: d, now: now}
	dropped, err := c.dropLostClaims(ctx)
	if err != nil {
		return nil, err
	}
	c.dropped = dropped
	if err := c.optimizeSearch(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// DroppedAtUpgrade lists the device ids this start removed from products
// that had claimed them after another product (see migration 00002); the
// caller logs them with the command that reassigns an id.
func (c *Catalog) DroppedAtUpgrade() []DroppedClaim { return c.dropped }

// OnDeviceIDsChanged sets fn to be called after an admin reassigns a
// device id, so whoever serves devices from a copy of the ids (the
// registry's update index) refreshes it.
func (c *Catalog) OnDeviceIDsChanged(fn func(ctx context.Context) error) { c.changed = fn }

// dropLostClaims brings each product's device_ids list in line with the
// table of owners: an id the list names but another product owns was lost
// at the upgrade to one owner per id. Once in line, it finds nothing.
func (c *Catalog) dropLostClaims(ctx context.Context) ([]DroppedClaim, error) {
	var out []DroppedClaim
	err := c.db.Tx(ctx, func(tx *sql.Tx) error {
		out = nil
		owner := map[string]string{}
		rows, err := tx.QueryContext(ctx, c.db.Q(`SELECT device_id, product FROM product_device_ids`))
		if err != nil {
			return err
		}
		for rows.Next() {
			var dev, product string
			if err := rows.Scan(&dev, &product); err != nil {
				rows.Close()
				return err
			}
			owner[dev] = product
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, c.db.Q(`SELECT id, device_ids FROM products ORDER BY id`))
		if err != nil {
			return err
		}
		lists := map[string][]string{}
		for rows.Next() {
			var id, devs string
			var list []string
			if err := rows.Scan(&id, &devs); err != nil {
				rows.Close()
				return err
			}
			if err := json.Unmarshal([]byte(devs), &list); err != nil {
				rows.Close()
				return fmt.Errorf("product %s device ids: %w", id, err)
			}
			kept := list[:0:0]
			for _, dev := range list {
				if holder, ok := owner[dev]; ok && holder != id {
					out = append(out, DroppedClaim{DeviceID: dev, Product: id, Holder: holder})
					continue
				}
				kept = append(kept, dev)
			}
			if len(kept) != len(list) {
				lists[id] = kept
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for id, list := range lists {
			if err := setDeviceIDs(ctx, c.db, tx, id, list); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: drop device ids lost at upgrade: %w", err)
	}
	return out, nil
}

// Registration is what a vendor says about a new product.
type Registration struct {
	ID        string   `json:"id"`
	Vendor    string   `json:"vendor"`
	Model     string   `json:"model"`
	Revisions []string `json:"revisions"`
	DeviceIDs []string `json:"device_ids"`
	// FwupdIDs are GUIDs, or instance ids fwupd derives GUIDs from
	// (USB\VID_1D6B&PID_0104); the product stores the GUIDs.
	FwupdIDs  []string `json:"fwupd_ids,omitempty"`
	EOL       string   `json:"eol,omitempty"` // YYYY-MM-DD
	RiskNotes string   `json:"risk_notes,omitempty"`
	// Support is the support period declared at registration (optional;
	// SetSupport declares or changes it later).
	Support Support `json:"support,omitzero"`
}

func (r Registration) validate() (Product, error) {
	p := Product{ID: r.ID, Vendor: r.Vendor, Model: strings.TrimSpace(r.Model), RiskNotes: r.RiskNotes, Status: Supported,
		Revisions: []string{}, DeviceIDs: []string{}}
	if !ValidProductID(r.ID) {
		return p, errs.E(errs.Invalid, "product id %q: want [a-z0-9][a-z0-9-]{0,62}", r.ID)
	}
	if r.Vendor == "" {
		return p, errs.E(errs.Invalid, "vendor org is required")
	}
	if p.Model == "" || len(p.Model) > maxModelLen {
		return p, errs.E(errs.Invalid, "model name is required (at most %d bytes)", maxModelLen)
	}
	if len(r.RiskNotes) > maxRiskNotesLen {
		return p, errs.E(errs.TooLarge, "risk notes longer than %d bytes", maxRiskNotesLen)
	}
	if len(r.Revisions) > maxRevisions || len(r.DeviceIDs) > maxDeviceIDs {
		return p, errs.E(errs.TooLarge, "at most %d revisions and %d device ids", maxRevisions, maxDeviceIDs)
	}
	for _, rev := range r.Revisions {
		rev = strings.TrimSpace(rev)
		if rev == "" || len(rev) > maxRevisionLen {
			return p, errs.E(errs.Invalid, "hardware revision %q: want 1 to %d bytes", rev, maxRevisionLen)
		}
		if !slices.Contains(p.Revisions, rev) {
			p.Revisions = append(p.Revisions, rev)
		}
	}
	for _, raw := range r.DeviceIDs {
		id, err := ParseDeviceID(raw)
		if err != nil {
			return p, err
		}
		if !slices.Contains(p.DeviceIDs, id) {
			p.DeviceIDs = append(p.DeviceIDs, id)
		}
	}
	guids, err := fwupdGUIDs(r.FwupdIDs)
	if err != nil {
		return p, err
	}
	p.FwupdGUIDs = guids
	if r.EOL != "" {
		t, err := time.Parse(time.DateOnly, r.EOL)
		if err != nil {
			return p, errs.E(errs.Invalid, "eol %q: want YYYY-MM-DD", r.EOL)
		}
		p.EOL = t
	}
	s, err := r.Support.normalise()
	if err != nil {
		return p, err
	}
	if s.Declared() {
		if t, ok := SupportTime(s.EndOfLife); ok {
			if r.EOL != "" && !t.Equal(p.EOL) {
				return p, errs.E(errs.Invalid, "eol %s and support.end_of_life %s differ; give one", r.EOL, s.EndOfLife)
			}
			p.EOL = t
		}
		p.Support = s
	}
	return p, nil
}

// Register records a new product. Vendors register for their own org;
// admins for any.
func (c *Catalog) Register(ctx context.Context, who principal.Principal, r Registration) (Product, error) {
	if who.Role != principal.Admin && (who.Role != principal.Vendor || who.Org != r.Vendor) {
		return Product{}, errs.E(errs.Forbidden, "%s may not register products for org %q", who.Actor(), r.Vendor)
	}
	p, err := r.validate()
	if err != nil {
		return Product{}, err
	}
	p.Created = c.now().UTC().Truncate(time.Millisecond)
	if p.Support.Declared() {
		p.Support.Updated = p.Created
	}
	if err := c.insert(ctx, p, who.Actor(), p.Created); err != nil {
		return Product{}, err
	}
	c.lifecycleChanged(ctx, p.ID)
	return p, nil
}

// Import registers a product as another registry published it: a new
// registry carrying on from a mirror of that one (docs/mirror.md, "Taking
// a registry over"). It keeps the product's id, vendor org, model,
// revisions, device ids, fwupd GUIDs, end of life, status, risk notes,
// support period and registration time, checked as a registration is; its
// history there is not carried over: one event, at now, records the
// import with the status the product had. Its vendor org need not exist
// here (an admin makes it again to give the vendor its products back).
func (c *Catalog) Import(ctx context.Context, p Product, actor string) (Product, error) {
	r := Registration{ID: p.ID, Vendor: p.Vendor, Model: p.Model, Revisions: p.Revisions, DeviceIDs: p.DeviceIDs, FwupdIDs: p.FwupdGUIDs,
		RiskNotes: p.RiskNotes, Support: p.Support}
	if !p.EOL.IsZero() {
		r.EOL = p.EOL.UTC().Format(time.DateOnly)
	}
	q, err := r.validate()
	if err != nil {
		return Product{}, fmt.Errorf("catalog: import %s: %w", p.ID, err)
	}
	if !slices.Contains([]Status{Supported, Sunset, HandedOver, Community}, p.Status) {
		return Product{}, errs.E(errs.Invalid, "catalog: import %s: status %q", p.ID, p.Status)
	}
	q.Status, q.Created, q.Support.Updated = p.Status, p.Created.UTC().Truncate(time.Millisecond), p.Support.Updated
	if q.Created.IsZero() {
		q.Created = c.now().UTC().Truncate(time.Millisecond)
	}
	if err := c.insert(ctx, q, actor, c.now().UTC().Truncate(time.Millisecond)); err != nil {
		return Product{}, err
	}
	c.lifecycleChanged(ctx, q.ID)
	return q, nil
}

// insert writes a new product, claims its device ids and GUIDs, and
// records its first event at the given time.
func (c *Catalog) insert(ctx context.Context, p Product, actor string, at time.Time) error {
	revs, _ := json.Marshal(p.Revisions)
	devs, _ := json.Marshal(p.DeviceIDs)
	guids, _ := json.Marshal(p.FwupdGUIDs)
	err := c.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, d := range p.DeviceIDs {
			if err := claimable(ctx, c.db, tx, d, p.ID); err != nil {
				return err
			}
		}
		for _, g := range p.FwupdGUIDs {
			if err := guidClaimable(ctx, c.db, tx, g); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, c.db.Q(`INSERT INTO products (id, vendor, model, revisions, device_ids, fwupd_guids, eol, status, risk_notes, created_at, created_by, support)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			p.ID, p.Vendor, p.Model, string(revs), string(devs), string(guids), db.Millis(p.EOL), string(p.Status), p.RiskNotes, db.Millis(p.Created), actor, encodeSupport(p.Support)); err != nil {
			return err
		}
		for _, g := range p.FwupdGUIDs {
			if _, err := tx.ExecContext(ctx, c.db.Q(`INSERT INTO product_fwupd_guids (guid, product) VALUES (?, ?)`), g, p.ID); err != nil {
				if db.IsUniqueViolation(err) {
					return errs.E(errs.Conflict, "fwupd GUID %s was claimed by another product at the same moment; look it up and try again", g)
				}
				return err
			}
		}
		for _, d := range p.DeviceIDs {
			if _, err := tx.ExecContext(ctx, c.db.Q(`INSERT INTO product_device_ids (device_id, product) VALUES (?, ?)`), d, p.ID); err != nil {
				if db.IsUniqueViolation(err) {
					return errs.E(errs.Conflict, "device id %s was claimed by another product at the same moment; look it up and try again", d)
				}
				return err
			}
		}
		return c.appendEvent(ctx, tx, p.ID, at, actor, "", p.Status, p.Support, nil)
	})
	if db.IsUniqueViolation(err) {
		return errs.E(errs.Conflict, "product %s already exists (a retired product keeps its id: choose another)", p.ID)
	}
	if err != nil {
		return fmt.Errorf("catalog: register %s: %w", p.ID, err)
	}
	return nil
}

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)

// IDFor is the product id the catalog gives a model that org registers
// without choosing one (the web form): org and model, lowercased, with
// dashes for everything else, at most 63 bytes. The API asks for the id.
func IDFor(org, model string) string {
	id := strings.Trim(notSlug.ReplaceAllString(strings.ToLower(org+"-"+model), "-"), "-")
	if len(id) > 63 {
		id = strings.Trim(id[:63], "-")
	}
	return id
}

// RegisterOwn registers a product for who's own organisation, under the
// id IDFor gives its model (with a number added when a retired product
// keeps that id); r's ID and Vendor are ignored.
func (c *Catalog) RegisterOwn(ctx context.Context, who principal.Principal, r Registration) (Product, error) {
	if who.Org == "" {
		return Product{}, errs.E(errs.Forbidden, "only a vendor token of an organisation can register products")
	}
	id, err := c.freeID(ctx, IDFor(who.Org, r.Model))
	if err != nil {
		return Product{}, err
	}
	r.ID, r.Vendor = id, who.Org
	return c.Register(ctx, who, r)
}

// Count counts the products in any of statuses (every product when none
// is given).
func (c *Catalog) Count(ctx context.Context, statuses ...Status) (int, error) {
	q, args := `SELECT COUNT(*) FROM products WHERE retired_at = 0`, []any{}
	if len(statuses) > 0 {
		q += ` AND status IN (?` + strings.Repeat(`, ?`, len(statuses)-1) + `)`
		for _, st := range statuses {
			args = append(args, string(st))
		}
	}
	var n int
	if err := c.db.QueryRowContext(ctx, c.db.Q(q), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: count: %w", db.Classify(err))
	}
	return n, nil
}

const cols = `id, vendor, model, revisions, device_ids, fwupd_guids, eol, status, risk_notes, created_at, support, retired_at`

func scan(row interface{ Scan(...any) error }) (Product, error) {
	var p Product
	var revs, devs, guids, status, support string
	var eol, created, retired int64
	if err := row.Scan(&p.ID, &p.Vendor, &p.Model, &revs, &devs, &guids, &eol, &status, &p.RiskNotes, &created, &support, &retired); err != nil {
		return p, err
	}
	p.Retired = db.FromMillis(retired)
	var err error
	if p.Support, err = decodeSupport(p.ID, support); err != nil {
		return p, err
	}
	p.Status, p.EOL, p.Created = Status(status), db.FromMillis(eol), db.FromMillis(created)
	if err := json.Unmarshal([]byte(revs), &p.Revisions); err != nil {
		return p, fmt.Errorf("catalog: product %s revisions: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(devs), &p.DeviceIDs); err != nil {
		return p, fmt.Errorf("catalog: product %s device ids: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(guids), &p.FwupdGUIDs); err != nil {
		return p, fmt.Errorf("catalog: product %s fwupd GUIDs: %w", p.ID, err)
	}
	return p, nil
}

// Get returns a product.
func (c *Catalog) Get(ctx context.Context, id string) (Product, error) {
	p, err := scan(c.db.QueryRowContext(ctx, c.db.Q(`SELECT `+cols+` FROM products WHERE id = ? AND retired_at = 0`), id))
	if err != nil {
		return Product{}, db.NotFound(err, "product %s not found", id)
	}
	return p, nil
}

// Each calls fn with every product, in one query (the registry's update
// index reads the whole catalog this way when it is rebuilt).
func (c *Catalog) Each(ctx context.Context, fn func(Product) error) error {
	rows, err := c.db.QueryContext(ctx, `SELECT `+cols+` FROM products WHERE retired_at = 0`)
	if err != nil {
		return fmt.Errorf("catalog: every product: %w", db.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return db.Classify(rows.Err())
}

// Filter narrows List.
type Filter struct {
	Vendor string
	Status Status
	Limit  int // default 100, at most 1000
}

// List returns products ordered by id.
func (c *Catalog) List(ctx context.Context, f Filter) ([]Product, error) {
	q, args := `SELECT `+cols+` FROM products WHERE retired_at = 0`, []any{}
	if f.Vendor != "" {
		q += ` AND vendor = ?`
		args = append(args, f.Vendor)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	return c.query(ctx, q, f.Limit, args...)
}

// claimable fails with a Conflict naming the holder when another product
// owns device id d: a device id belongs to at most one product.
func claimable(ctx context.Context, d *db.DB, tx *sql.Tx, id, product string) error {
	var holder string
	err := tx.QueryRowContext(ctx, d.Q(`SELECT product FROM product_device_ids WHERE device_id = ?`), id).Scan(&holder)
	switch {
	case err == sql.ErrNoRows || holder == product:
		return nil
	case err != nil:
		return err
	}
	return errs.E(errs.Conflict, "device id %s belongs to product %s; a device id names one product (an admin moves it: afterlife admin device-ids reassign %s --to PRODUCT)",
		id, holder, id)
}

// guidClaimable fails with a Conflict naming the holder when a product
// already declares fwupd GUID g: the remote would offer two products'
// firmware to one device.
func guidClaimable(ctx context.Context, d *db.DB, tx *sql.Tx, g string) error {
	var holder string
	err := tx.QueryRowContext(ctx, d.Q(`SELECT product FROM product_fwupd_guids WHERE guid = ?`), g).Scan(&holder)
	switch {
	case err == sql.ErrNoRows:
		return nil
	case err != nil:
		return err
	}
	return errs.E(errs.Conflict, "fwupd GUID %s belongs to product %s; a GUID names one product", g, holder)
}

// Reassign moves device id deviceID to product to, taking it from the
// product that holds it (if any). Only admins reassign. It returns the
// product now holding the id and the one that held it before ("" when
// none did).
func (c *Catalog) Reassign(ctx context.Context, who principal.Principal, deviceID, to string) (Product, string, error) {
	if who.Role != principal.Admin {
		return Product{}, "", errs.E(errs.Forbidden, "only an admin reassigns device ids")
	}
	id, err := ParseDeviceID(deviceID)
	if err != nil {
		return Product{}, "", err
	}
	var from string
	err = c.db.Tx(ctx, func(tx *sql.Tx) error {
		from = ""
		err := tx.QueryRowContext(ctx, c.db.Q(`SELECT product FROM product_device_ids WHERE device_id = ?`), id).Scan(&from)
		if err != nil && err != sql.ErrNoRows {
			return err
		}
		if from == to {
			return errs.E(errs.Conflict, "device id %s already belongs to product %s", id, to)
		}
		target, err := scan(tx.QueryRowContext(ctx, c.db.Q(`SELECT `+cols+` FROM products WHERE id = ? AND retired_at = 0`), to))
		if err != nil {
			return db.NotFound(err, "product %s not found", to)
		}
		if len(target.DeviceIDs) >= maxDeviceIDs {
			return errs.E(errs.TooLarge, "product %s already lists %d device ids", to, maxDeviceIDs)
		}
		if from != "" {
			old, err := scan(tx.QueryRowContext(ctx, c.db.Q(`SELECT `+cols+` FROM products WHERE id = ?`), from))
			if err != nil {
				return err
			}
			if err := setDeviceIDs(ctx, c.db, tx, from, slices.DeleteFunc(old.DeviceIDs, func(s string) bool { return s == id })); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, c.db.Q(`DELETE FROM product_device_ids WHERE device_id = ?`), id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, c.db.Q(`INSERT INTO product_device_ids (device_id, product) VALUES (?, ?)`), id, to); err != nil {
			return err
		}
		return setDeviceIDs(ctx, c.db, tx, to, append(target.DeviceIDs, id))
	})
	if err != nil {
		return Product{}, "", fmt.Errorf("catalog: reassign %s to %s: %w", id, to, err)
	}
	if c.changed != nil {
		if err := c.changed(ctx); err != nil {
			return Product{}, from, fmt.Errorf("catalog: %s reassigned to %s, but refreshing device lookups failed: %w", id, to, err)
		}
	}
	p, err := c.Get(ctx, to)
	return p, from, err
}

func setDeviceIDs(ctx context.Context, d *db.DB, tx *sql.Tx, product string, list []string) error {
	if list == nil {
		list = []string{}
	}
	b, _ := json.Marshal(list)
	_, err := tx.ExecContext(ctx, d.Q(`UPDATE products SET device_ids = ? WHERE id = ?`), string(b), product)
	return err
}

// ByDeviceID returns the product a device id identifies, as a list of at
// most one (a device id belongs to one product).
func (c *Catalog) ByDeviceID(ctx context.Context, deviceID string) ([]Product, error) {
	id, err := ParseDeviceID(deviceID)
	if err != nil {
		return nil, err
	}
	return c.query(ctx, `SELECT `+cols+` FROM products WHERE id IN (SELECT product FROM product_device_ids WHERE device_id = ?)`, 0, id)
}

func (c *Catalog) query(ctx context.Context, q string, limit int, args ...any) ([]Product, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := c.db.QueryContext(ctx, c.db.Q(q+fmt.Sprintf(` ORDER BY id LIMIT %d`, limit)), args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: query: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Product{}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, err
		}
		if !p.Retired.IsZero() {
			continue // whatever matched, a retired product is found by nothing
		}
		out = append(out, p)
	}
	return out, db.Classify(rows.Err())
}

// SetStatus moves a product forward to status to. Moving backward, or to
// the status it has, is a Conflict. Vendors may move their own products;
// admins any; actor names who did it in the log.
func (c *Catalog) SetStatus(ctx context.Context, id string, to Status, who principal.Principal) (Product, error) {
	if _, err := ParseStatus(string(to)); err != nil {
		return Product{}, err
	}
	p, err := c.Get(ctx, id)
	if err != nil {
		return Product{}, err
	}
	if who.Role != principal.Admin && (who.Role != principal.Vendor || who.Org != p.Vendor) {
		return Product{}, errs.E(errs.Forbidden, "%s may not change product %s", who.Actor(), id)
	}
	return c.advance(ctx, p, to, who.Actor())
}

// HandOver moves a product to handed-over on behalf of a system actor (the
// escrow, when a deposit is released). A product already at or past
// handed-over is left alone.
func (c *Catalog) HandOver(ctx context.Context, id, actor string) error {
	p, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if p.Status.rank() >= HandedOver.rank() {
		return nil
	}
	_, err = c.advance(ctx, p, HandedOver, actor)
	if errs.Is(err, errs.Conflict) {
		return nil // moved concurrently
	}
	return err
}

func (c *Catalog) advance(ctx context.Context, p Product, to Status, actor string) (Product, error) {
	if to.rank() <= p.Status.rank() {
		return Product{}, errs.E(errs.Conflict, "product %s is %s; status only moves forward (supported → sunset → handed-over → community)", p.ID, p.Status)
	}
	now := c.now()
	err := c.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, c.db.Q(`UPDATE products SET status = ? WHERE id = ? AND status = ?`), string(to), p.ID, string(p.Status))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.Conflict, "product %s changed status concurrently", p.ID)
		}
		return c.appendEvent(ctx, tx, p.ID, now, actor, p.Status, to, Support{}, nil)
	})
	if err != nil {
		return Product{}, fmt.Errorf("catalog: set status of %s: %w", p.ID, err)
	}
	c.lifecycleChanged(ctx, p.ID)
	p.Status = to
	return p, nil
}

// appendEvent is the only writer of product_events; nothing updates or
// deletes them. Their order is their seq, not their time: two changes in
// one millisecond keep the order they were made in. A declared support
// period s, or an edit or retirement ch, is recorded with the event.
func (c *Catalog) appendEvent(ctx context.Context, tx *sql.Tx, product string, at time.Time, actor string, from, to Status, s Support, ch *Change) error {
	seq, err := c.db.NextSeq(ctx, tx, "product_events")
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, c.db.Q(`INSERT INTO product_events (id, seq, product, at, actor, from_status, to_status, support, edit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		ids.At("pev", at), seq, product, db.Millis(at), actor, string(from), string(to), encodeSupport(s), encodeChange(ch))
	return err
}

// Events returns a product's history (status changes and support
// declarations), oldest first.
func (c *Catalog) Events(ctx context.Context, id string) ([]Event, error) {
	rows, err := c.db.QueryContext(ctx, c.db.Q(`SELECT id, seq, product, at, actor, from_status, to_status, support, edit FROM product_events WHERE product = ? ORDER BY seq`), id)
	if err != nil {
		return nil, fmt.Errorf("catalog: events: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var at int64
		var from, to, support, edit string
		if err := rows.Scan(&e.ID, &e.Seq, &e.Product, &at, &e.Actor, &from, &to, &support, &edit); err != nil {
			return nil, err
		}
		ch, err := decodeChange(e.Product, edit)
		if err != nil {
			return nil, err
		}
		e.Change = ch
		e.At, e.From, e.To = db.FromMillis(at), Status(from), Status(to)
		if support != "" {
			s, err := decodeSupport(e.Product, support)
			if err != nil {
				return nil, err
			}
			e.Support = &s
		}
		out = append(out, e)
	}
	return out, db.Classify(rows.Err())
}
