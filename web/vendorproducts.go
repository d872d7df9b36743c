package web

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// ProductEditor corrects and retires products from the vendor area. The
// catalog decides who may (the product's vendor, admins), checks every
// field as at registration, logs each change, and refuses to retire a
// product that has a release or a deposit.
type ProductEditor interface {
	// EditProduct replaces product's model name, hardware revisions,
	// device ids and risk notes with e's.
	EditProduct(ctx context.Context, p principal.Principal, product string, e ProductEdit) error
	// RetireProduct withdraws a product registered by mistake.
	RetireProduct(ctx context.Context, p principal.Principal, product, reason string) error
}

// ProductEdit is the vendor area's edit form: the whole description.
type ProductEdit struct {
	Model             string
	HardwareRevisions []string
	DeviceIDs         []string
	RiskNotes         string
	Reason            string
}

func (s *Site) vendorEditProduct(c *gin.Context) {
	e := ProductEdit{
		Model:             strings.TrimSpace(c.PostForm("model")),
		HardwareRevisions: splitList(c.PostForm("revisions")),
		DeviceIDs:         splitLines(c.PostForm("device_ids")),
		RiskNotes:         strings.TrimSpace(c.PostForm("risk_notes")),
		Reason:            strings.TrimSpace(c.PostForm("reason")),
	}
	if e.HardwareRevisions == nil {
		e.HardwareRevisions = []string{}
	}
	if e.DeviceIDs == nil {
		e.DeviceIDs = []string{}
	}
	s.vendorProductChange(c, "edited", func(ctx context.Context, p principal.Principal, id string) error {
		return s.deps.Products.EditProduct(ctx, p, id, e)
	})
}

func (s *Site) vendorRetireProduct(c *gin.Context) {
	reason, sure := strings.TrimSpace(c.PostForm("reason")), c.PostForm("confirm") == "yes"
	s.vendorProductChange(c, "retired", func(ctx context.Context, p principal.Principal, id string) error {
		if !sure {
			// Only whoever may retire the product is asked to confirm;
			// anyone else hears the catalog's refusal.
			mine, err := s.ownsProduct(ctx, p, id)
			if err != nil || mine {
				return cmp.Or(err, errs.E(errs.Invalid, "tick the box to confirm: retiring cannot be undone"))
			}
		}
		return s.deps.Products.RetireProduct(ctx, p, id, reason)
	})
}

// vendorProductChange runs change on the product the path names and goes
// back to the vendor page, with the catalog's refusal shown there.
func (s *Site) vendorProductChange(c *gin.Context, done string, change func(ctx context.Context, p principal.Principal, id string) error) {
	if s.deps.Products == nil {
		s.fail(c, errs.E(errs.NotFound, "products cannot be changed here"))
		return
	}
	id := c.Param("id")
	err := change(c.Request.Context(), caller(c), id)
	if err == nil {
		redirectDone(c, "/vendor", done)
		return
	}
	s.vendorRefused(c, err, func(d *vendorData) { d.Open = id })
}

// ownsProduct reports whether p may change product: an admin, or a vendor
// of the organisation that registered it.
func (s *Site) ownsProduct(ctx context.Context, p principal.Principal, product string) (bool, error) {
	if p.Role == principal.Admin {
		return true, nil
	}
	ps, err := s.deps.Catalog.VendorProducts(ctx, p.Org)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ps, func(s ProductSummary) bool { return s.ID == product }), nil
}
