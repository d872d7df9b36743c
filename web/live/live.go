// Package live gives the pages (package web) their data from the running
// parts: Catalog, Farm, Escrow, Admin and Releases implement web's interfaces of the
// same names with the parts' public APIs, and turn what the parts return
// into the pages' view structs.
//
// It decides nothing: who may see or do what, ids, counts, states and
// policies are the parts' rules, applied by the parts. It never touches
// the database (the layering test says so).
package live

import (
	"context"

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
	// Log links timeline items to their transparency log entries (nil:
	// no links).
	Log LogEntries
	// FwupdBranch is the branch of the fwupd remote; empty when the
	// server serves none.
	FwupdBranch string
}

// LogEntries finds the transparency log entries of a product's history:
// the indexes of its status changes (by their catalog seq), of its
// registry events (by their registry seq) and of its deposits' releases.
type LogEntries interface {
	ProductEntries(ctx context.Context, statusSeqs, registrySeqs []int64) (status, registry map[int64]int64, err error)
	DepositReleases(ctx context.Context, deposits []string) (map[string]int64, error)
	// HandoverEntries maps deposits to the index of the entry that logged
	// their handover statement.
	HandoverEntries(ctx context.Context, deposits []string) (map[string]int64, error)
}

// Deps are web.Deps for the parts, without a logger.
func (p Parts) Deps() web.Deps {
	return web.Deps{Catalog: Catalog{p}, Farm: Farm{p}, Escrow: Escrow{p}, Admin: Admin{p}, Releases: Releases{p}, Auth: p.Auth, Lifecycle: Lifecycle{p}, Products: Catalog{p}}
}

// summary is how the admin pages read the scrub status, which only admins
// may see; the pages declare those routes for admins.
var summary = principal.Principal{Role: principal.Admin, Name: "afterlife-summary"}
