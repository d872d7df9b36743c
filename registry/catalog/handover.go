package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
)

// A product's handover statement, once its deposit is released, is
// published here: stored unchanged and served at
// /v1/products/<id>/handover, where a device that holds only its vendor's
// key fetches it (docs/handover.md). The catalog does not verify it: the
// escrow did at deposit, and every device does again.

// Handover is a published handover statement.
type Handover struct {
	Deposit        string    `json:"deposit"`
	Product        string    `json:"product"`
	EnvelopeSHA256 string    `json:"envelope_sha256"`
	VendorKey      string    `json:"vendor_key"`
	RootName       string    `json:"root_name"`
	RootSHA256     string    `json:"root_sha256"`
	DeviceIDs      []string  `json:"device_ids"`
	ReleasedAt     time.Time `json:"released_at"`
	Envelope       []byte    `json:"-"`
	// Bridge is the deposit's bridge image, when it carries one.
	Bridge *BridgeImage `json:"bridge,omitempty"`
}

// BridgeImage is a released deposit's bridge image: the vendor's last
// firmware carrying the afterlife device client and the community root.
type BridgeImage struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// PublishHandover stores a statement that took effect. Publishing the same
// deposit's statement again changes nothing.
func (c *Catalog) PublishHandover(ctx context.Context, h Handover) error {
	ids, err := json.Marshal(h.DeviceIDs)
	if err != nil {
		return err
	}
	var b BridgeImage
	if h.Bridge != nil {
		b = *h.Bridge
	}
	_, err = c.db.ExecContext(ctx, c.db.Q(`INSERT INTO product_handovers
		(deposit, product, envelope, envelope_sha256, vendor_key, root_name, root_sha256, device_ids, released_at, bridge_path, bridge_sha256, bridge_size)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (deposit) DO NOTHING`),
		h.Deposit, h.Product, string(h.Envelope), h.EnvelopeSHA256, h.VendorKey, h.RootName, h.RootSHA256, string(ids), db.Millis(h.ReleasedAt),
		b.Path, b.SHA256, b.Size)
	if err != nil {
		return fmt.Errorf("catalog: publish handover of %s: %w", h.Deposit, db.Classify(err))
	}
	return nil
}

// Handovers lists a product's published statements, the earliest first.
func (c *Catalog) Handovers(ctx context.Context, product string) ([]Handover, error) {
	rows, err := c.db.QueryContext(ctx, c.db.Q(`SELECT deposit, product, envelope, envelope_sha256, vendor_key, root_name, root_sha256, device_ids, released_at,
		bridge_path, bridge_sha256, bridge_size
		FROM product_handovers WHERE product = ? ORDER BY released_at, deposit`), product)
	if err != nil {
		return nil, fmt.Errorf("catalog: handovers of %s: %w", product, db.Classify(err))
	}
	defer rows.Close()
	out := []Handover{}
	for rows.Next() {
		var h Handover
		var env, ids string
		var at int64
		var b BridgeImage
		if err := rows.Scan(&h.Deposit, &h.Product, &env, &h.EnvelopeSHA256, &h.VendorKey, &h.RootName, &h.RootSHA256, &ids, &at,
			&b.Path, &b.SHA256, &b.Size); err != nil {
			return nil, err
		}
		if b.Path != "" {
			h.Bridge = &b
		}
		if err := json.Unmarshal([]byte(ids), &h.DeviceIDs); err != nil {
			return nil, fmt.Errorf("catalog: handover of %s: device ids: %w", h.Deposit, err)
		}
		h.Envelope, h.ReleasedAt = []byte(env), db.FromMillis(at)
		out = append(out, h)
	}
	return out, db.Classify(rows.Err())
}

// registerHandoverRoutes mounts the public statement route.
func (c *Catalog) registerHandoverRoutes(v1 *httpapi.Router) {
	v1.GET("/products/:id/bridge", httpapi.Op{Public: true, Summary: "The vendor's bridge image released with the product's handover: a redirect to the released deposit's file, served unchanged (?id= the one for that device id)", Tag: "products"}, c.httpBridge)
	v1.GET("/products/:id/handover", httpapi.Op{Public: true, Summary: "The product's handover statement that took effect (a DSSE envelope, served unchanged; ?id= the one naming that device id)", Tag: "products"}, c.httpHandover)
}

func (c *Catalog) httpHandover(g *gin.Context) error {
	h, err := c.handoverFor(g)
	if err != nil {
		return err
	}
	g.Header("Cache-Control", "no-cache")
	g.Data(http.StatusOK, "application/json", h.Envelope)
	return nil
}

func (c *Catalog) httpBridge(g *gin.Context) error {
	h, err := c.handoverFor(g)
	if err != nil {
		return err
	}
	if h.Bridge == nil {
		return errs.E(errs.NotFound, "the handover of product %s carries no bridge image", h.Product)
	}
	g.Redirect(http.StatusTemporaryRedirect, "/v1/deposits/"+url.PathEscape(h.Deposit)+"/files/"+url.PathEscape(h.Bridge.Path))
	return nil
}

// handoverFor is the product's first published statement, or with ?id=
// the first naming that device id.
func (c *Catalog) handoverFor(g *gin.Context) (Handover, error) {
	id := g.Param("id")
	hs, err := c.Handovers(g.Request.Context(), id)
	if err != nil {
		return Handover{}, err
	}
	if dev := g.Query("id"); dev != "" {
		hs = slices.DeleteFunc(hs, func(h Handover) bool {
			return !slices.ContainsFunc(h.DeviceIDs, func(d string) bool { return sameDeviceID(d, dev) })
		})
	}
	if len(hs) == 0 {
		return Handover{}, errs.E(errs.NotFound, "product %s has no handover statement in effect for that device", id)
	}
	return hs[0], nil
}

// sameDeviceID compares device ids as handover statements do: the scheme
// is case-insensitive.
func sameDeviceID(a, b string) bool {
	as, av, _ := strings.Cut(a, ":")
	bs, bv, _ := strings.Cut(b, ":")
	return strings.EqualFold(as, bs) && av == bv
}
