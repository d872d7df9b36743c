package escrow

import (
	"context"
	"fmt"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Who may see a deposit is decided here and nowhere else.
//
// Released deposits are public. Before release (uploading or sealed) a
// deposit is seen only by its owner: a vendor token of the deposit's org,
// or an admin. Other tokens of that org (maintainer, builder, trustee) are
// not the vendor. The trustees a sealed deposit's quorum names see its
// approval state (trusteeView), never its manifest, files or events.
// Everyone else gets NotFound, not Forbidden, so a sealed deposit's
// existence does not leak.

// isOwner reports whether p acts for the vendor that made deposit d.
func isOwner(p principal.Principal, d Deposit) bool {
	return p.Role == principal.Admin || (p.Role == principal.Vendor && p.Org != "" && p.Org == d.Org)
}

// canSee reports whether p may see deposit d in full: anyone once it is
// released, otherwise its owner.
func canSee(p principal.Principal, d Deposit) bool {
	return d.State == Released || isOwner(p, d)
}

// mayRead reports whether p may read the content of file f of deposit d:
// its owner always (a vendor's private files never leave the escrow but to
// it and admins), anyone else only a public file of a released deposit.
// Build-only files reach builders through their jobs, never through the
// deposit's routes (BuildInput).
func mayRead(p principal.Principal, d Deposit, f manifest.Entry) bool {
	return isOwner(p, d) || (d.State == Released && f.Rights == manifest.Public)
}

// isQuorumTrustee reports whether p is a trustee named by d's quorum while
// d is sealed: they may see what they are asked to approve, no more.
func isQuorumTrustee(p principal.Principal, d Deposit) bool {
	if p.Role != principal.Trustee || d.State != Sealed {
		return false
	}
	pol, err := policy.Parse(d.Policy)
	return err == nil && pol.HasTrustee(p.Name)
}

// trusteeView is what a named trustee sees of a sealed deposit: enough to
// sign an approval (id, manifest digest) and to know where the quorum
// stands; no manifest, file names, sizes or events.
func (s *Service) trusteeView(ctx context.Context, d Deposit) (Deposit, error) {
	approvals, err := s.approvals(ctx, d.ID)
	if err != nil {
		return Deposit{}, err
	}
	return Deposit{
		ID: d.ID, Product: d.Product, Org: d.Org, Policy: d.Policy, State: d.State,
		ManifestDigest: d.ManifestDigest, CreatedAt: d.CreatedAt, SealedAt: d.SealedAt, Approvals: approvals,
	}, nil
}

// Get returns a deposit with its manifest to those who may see it, and its
// approval state alone to the trustees its quorum names. Everyone else
// gets NotFound.
func (s *Service) Get(ctx context.Context, p principal.Principal, id string) (Deposit, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Deposit{}, err
	}
	if !canSee(p, d) {
		if isQuorumTrustee(p, d) {
			return s.trusteeView(ctx, d)
		}
		return Deposit{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	d.Manifest, err = s.entries(ctx, id)
	if err != nil {
		return Deposit{}, err
	}
	if pol, err := policy.Parse(d.Policy); err == nil && pol.Quorum != nil && d.State == Sealed {
		if d.Approvals, err = s.approvals(ctx, id); err != nil {
			return Deposit{}, err
		}
	}
	return withoutMarks(p, d), nil
}

// PendingApprovals lists the sealed quorum deposits waiting for p: all of
// them for admins, those naming p for a trustee (approval state only),
// none for anyone else.
func (s *Service) PendingApprovals(ctx context.Context, p principal.Principal) ([]Deposit, error) {
	if p.Role != principal.Admin && p.Role != principal.Trustee {
		return []Deposit{}, nil
	}
	sealed, err := s.queryDeposits(ctx, ` WHERE state = ? ORDER BY created_at DESC, id DESC LIMIT 1000`, Sealed)
	if err != nil {
		return nil, fmt.Errorf("escrow: pending approvals: %w", err)
	}
	out := []Deposit{}
	for _, d := range sealed {
		if pol, err := policy.Parse(d.Policy); err != nil || pol.Quorum == nil {
			continue
		}
		if p.Role != principal.Admin && !isQuorumTrustee(p, d) {
			continue
		}
		v, err := s.trusteeView(ctx, d)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ListFilter narrows List.
type ListFilter struct {
	Product string
	State   State // "": sealed and released
	Mine    bool  // only the deposits p acts for: its vendor org's (every org's for admins)
	Limit   int   // default 100, at most 1000
}

// List returns the deposits p may see, newest first: released ones for
// everybody, plus the sealed and uploading ones of a vendor's own org (all
// for admins). Named trustees find theirs with PendingApprovals.
func (s *Service) List(ctx context.Context, p principal.Principal, f ListFilter) ([]Deposit, error) {
	where, args := visible(p)
	if f.Mine && p.Role != principal.Admin {
		where += ` AND org = ?`
		args = append(args, p.Org)
	}
	if f.Product != "" {
		where += ` AND product = ?`
		args = append(args, f.Product)
	}
	if f.State != "" {
		if f.State != Uploading && f.State != Sealed && f.State != Released {
			return nil, errs.E(errs.Invalid, "state %q: want uploading, sealed or released", f.State)
		}
		where += ` AND state = ?`
		args = append(args, f.State)
	} else {
		where += ` AND state <> ?` // uploads are listed only when asked for
		args = append(args, Uploading)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	out, err := s.queryDeposits(ctx, where+fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("escrow: list: %w", err)
	}
	for i := range out {
		out[i] = withoutMarks(p, out[i])
	}
	return out, nil
}

// withoutMarks hides from all but the deposit's vendor and admins which
// file is the shipped image and which the completeness recipe.
func withoutMarks(p principal.Principal, d Deposit) Deposit {
	if !isOwner(p, d) {
		d.ShippedImage, d.CompletenessRecipe = "", ""
	}
	return d
}

// visible is the condition on escrow_deposits rows that p may list:
// released ones for everybody, plus a vendor's own org's, all for admins.
func visible(p principal.Principal) (string, []any) {
	switch {
	case p.Role == principal.Admin:
		return ` WHERE 1 = 1`, nil
	case p.Role == principal.Vendor && p.Org != "":
		return ` WHERE (state = ? OR org = ?)`, []any{Released, p.Org}
	}
	return ` WHERE state = ?`, []any{Released}
}
