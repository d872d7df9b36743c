package web

import (
	"context"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Lifecycle is what the pages need of support periods: declaring one, and
// the products ending without a handover plan. Optional (Deps.Lifecycle):
// without it, the pages show no support form and no such list.
type Lifecycle interface {
	// DeclareSupport declares product's support period for p.
	DeclareSupport(ctx context.Context, p principal.Principal, product string, s SupportDates) error
	// EndingSoon lists the products near the end of security support
	// with no deposit that p may know of: every vendor's for admins, its
	// own for a vendor. Never shown publicly: it tells whether a product
	// has a sealed deposit.
	EndingSoon(ctx context.Context, p principal.Principal) ([]EndingSoonRow, error)
}

// SupportDates is a declared support period as the pages show and take
// it: each "" (not declared), "tba" or an RFC 3339 date-time; the form
// also takes YYYY-MM-DD.
type SupportDates struct {
	GeneralAvailability  string
	EndOfSales           string
	EndOfSecuritySupport string
	EndOfLife            string
}

// Declared reports whether any date is declared.
func (s SupportDates) Declared() bool {
	return s.GeneralAvailability != "" || s.EndOfSales != "" || s.EndOfSecuritySupport != "" || s.EndOfLife != ""
}

// LifecycleDoc links one of a product's machine-readable lifecycle
// documents.
type LifecycleDoc struct {
	Name string // e.g. "OpenEoX"
	URL  string
}

// EndingSoonRow is a product ending without a handover plan.
type EndingSoonRow struct {
	ProductID            string
	Vendor               string
	Model                string
	EndOfSecuritySupport time.Time
	Days                 int // until then; negative once passed
}

// supportDate shows a stored date: its day, "to be announced", or
// "not declared".
func supportDate(s string) string {
	switch s {
	case "":
		return "not declared"
	case "tba":
		return "to be announced"
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format("2 January 2006")
	}
	return s
}

// formDate is a stored date as a form field shows it again.
func formDate(s string) string {
	if t, err := time.Parse(time.RFC3339, s); err == nil && t.Equal(t.Truncate(24*time.Hour)) {
		return t.UTC().Format(time.DateOnly)
	}
	return s
}

// supportFields is what the support-fields partial shows: the form's id
// prefix and the dates it starts with.
type supportFields struct {
	ID string
	S  SupportDates
}

func supportForm(c *gin.Context) SupportDates {
	f := func(name string) string { return strings.TrimSpace(c.PostForm(name)) }
	return SupportDates{GeneralAvailability: f("general_availability"), EndOfSales: f("end_of_sales"),
		EndOfSecuritySupport: f("end_of_security_support"), EndOfLife: f("end_of_life")}
}

func (s *Site) vendorDeclareSupport(c *gin.Context) {
	if s.deps.Lifecycle == nil {
		s.fail(c, errs.E(errs.NotFound, "support periods are not enabled"))
		return
	}
	err := s.deps.Lifecycle.DeclareSupport(c.Request.Context(), caller(c), c.Param("id"), supportForm(c))
	if err != nil {
		s.vendorRefused(c, err, nil)
		return
	}
	redirectDone(c, "/vendor", "support")
}
