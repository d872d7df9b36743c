// Package live gives the pages (package web) their data from the running
// parts: Catalog, Farm, Escrow and Admin implement web's interfaces of the
// same names with the parts' public APIs, and turn what the parts return
// into the pages' view structs.
//
// It decides nothing: who may see or do what, ids, counts, states and
// policies are the parts' rules, applied by the parts. It never touches
// the database (the layering test says so).
package live

import (
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/recipes/submit"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/web"
)

// Parts are the running parts the pages read from and act on.
type Parts struct {
	Auth      *auth.Service
	Catalog   *catalog.Catalog
	Registry  *registry.Service
	Farm      *coord.Service
	Submitter *submit.Submitter
	Escrow    *escrow.Service
}

// Deps are web.Deps for the parts, without a logger.
func (p Parts) Deps() web.Deps {
	return web.Deps{Catalog: Catalog{p}, Farm: Farm{p}, Escrow: Escrow{p}, Admin: Admin{p}, Auth: p.Auth, Lifecycle: Lifecycle{p}}
}

// summary is how the admin pages read the scrub status, which only admins
// may see; the pages declare those routes for admins.
var summary = principal.Principal{Role: principal.Admin, Name: "afterlife-summary"}
