package live

import (
	"context"

	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/web"
)

// Lifecycle is web.Lifecycle: the catalog declares support periods, the
// registry lists products ending without a handover plan.
type Lifecycle struct{ p Parts }

var _ web.Lifecycle = Lifecycle{}

// DeclareSupport declares a product's support period.
func (a Lifecycle) DeclareSupport(ctx context.Context, p principal.Principal, product string, s web.SupportDates) error {
	_, err := a.p.Catalog.SetSupport(ctx, p, product, catalogSupport(s))
	return err
}

// EndingSoon lists the products ending without a handover plan p may know of.
func (a Lifecycle) EndingSoon(ctx context.Context, p principal.Principal) ([]web.EndingSoonRow, error) {
	es, err := a.p.Registry.EndingSoon(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]web.EndingSoonRow, 0, len(es))
	for _, e := range es {
		out = append(out, web.EndingSoonRow{ProductID: e.Product, Vendor: e.Vendor, Model: e.Model, EndOfSecuritySupport: e.EndOfSecuritySupport, Days: e.Days})
	}
	return out, nil
}

func catalogSupport(s web.SupportDates) catalog.Support {
	return catalog.Support{GeneralAvailability: s.GeneralAvailability, EndOfSales: s.EndOfSales, EndOfSecuritySupport: s.EndOfSecuritySupport, EndOfLife: s.EndOfLife}
}

func pageSupport(s catalog.Support) web.SupportDates {
	return web.SupportDates{GeneralAvailability: s.GeneralAvailability, EndOfSales: s.EndOfSales, EndOfSecuritySupport: s.EndOfSecuritySupport, EndOfLife: s.EndOfLife}
}

func lifecycleDocs(product string) []web.LifecycleDoc {
	base := "/v1/products/" + product + "/lifecycle/"
	return []web.LifecycleDoc{
		{Name: "OpenEoX (support period)", URL: base + registry.OpenEoXFile},
		{Name: "Lifecycle events (CLE)", URL: base + registry.CLEFile},
	}
}
