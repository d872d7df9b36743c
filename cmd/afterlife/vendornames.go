package main

import (
	"context"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/registry/catalog"
)

// syncVendorNames copies every organisation's display name into the
// catalog's search index (a name changed while no replica listened is
// caught up at the next start).
func syncVendorNames(ctx context.Context, a *auth.Service, c *catalog.Catalog) error {
	orgs, err := a.Orgs(ctx)
	if err != nil {
		return err
	}
	for _, o := range orgs {
		if err := c.SetVendorName(ctx, o.ID, o.Name); err != nil {
			return err
		}
	}
	return nil
}
