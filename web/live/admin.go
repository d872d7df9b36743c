package live

import (
	"context"
	"fmt"

	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/web"
)

// Admin is web.Admin: builders, scrubs, approvals and tokens. The pages
// declare which of its routes are for admins and which for trustees.
type Admin struct{ p Parts }

var _ web.Admin = Admin{}

// Builders lists the builder agents with what they can build.
func (a Admin) Builders(ctx context.Context) ([]web.BuilderRow, error) {
	bs, err := a.p.Farm.Builders(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]web.BuilderRow, 0, len(bs))
	for _, b := range bs {
		row := web.BuilderRow{Name: b.Name, Operator: b.Operator, LastSeen: b.LastSeen, Capabilities: []string{b.Arch}}
		for _, t := range b.Toolchains {
			row.Capabilities = append(row.Capabilities, t.Name+" "+t.Version)
		}
		out = append(out, row)
	}
	return out, nil
}

// RootCustody says who holds the TUF root.
func (a Admin) RootCustody(ctx context.Context) (web.RootCustody, error) {
	c, err := a.p.Registry.RootCustody(ctx)
	if err != nil {
		return web.RootCustody{}, err
	}
	return web.RootCustody{Version: c.Version, Threshold: c.Threshold, Keys: c.Keys, SingleServerKey: c.SingleKey()}, nil
}

// Scrubs lists recent integrity scrubs.
func (a Admin) Scrubs(ctx context.Context) ([]web.ScrubRow, error) {
	st, err := a.p.Escrow.ScrubStatus(ctx, summary)
	if err != nil {
		return nil, err
	}
	out := make([]web.ScrubRow, 0, len(st.Recent))
	for _, r := range st.Recent {
		row := web.ScrubRow{At: r.StartedAt, Checked: r.Checked, Bad: r.Corrupt + r.Missing}
		if row.Bad > 0 {
			row.Detail = fmt.Sprintf("%d corrupt, %d missing", r.Corrupt, r.Missing)
		}
		out = append(out, row)
	}
	return out, nil
}

// Approvals lists the quorum deposits waiting for p, with the approvals
// escrow recorded so far.
func (a Admin) Approvals(ctx context.Context, p principal.Principal) ([]web.ApprovalRow, error) {
	ds, err := a.p.Escrow.PendingApprovals(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]web.ApprovalRow, 0, len(ds))
	for _, d := range ds {
		pol, err := policy.Parse(d.Policy)
		if err != nil || pol.Quorum == nil {
			continue
		}
		out = append(out, web.ApprovalRow{
			DepositID: d.ID, ProductID: d.Product, Vendor: d.Org, Quorum: pol.Quorum.K,
			Trustees: len(pol.Quorum.Trustees), Approvals: d.Approvals,
		})
	}
	return out, nil
}

// Approve explains that approvals are signed with the trustee's own key.
func (a Admin) Approve(ctx context.Context, p principal.Principal, depositID string) error {
	return errs.E(errs.Invalid, "approvals are signed with the trustee's own key, which never reaches the server: run `afterlife trustee approve %s --name NAME --key FILE`", depositID)
}

// Tokens lists API tokens without their secrets.
func (a Admin) Tokens(ctx context.Context) ([]web.TokenRow, error) {
	toks, err := a.p.Auth.Tokens(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]web.TokenRow, 0, len(toks))
	for _, t := range toks {
		out = append(out, web.TokenRow{ID: t.ID, Name: t.Name, Role: string(t.Role), Org: t.Org, CreatedAt: t.Created, ExpiresAt: t.Expires, Revoked: !t.Revoked.IsZero()})
	}
	return out, nil
}

// CreateToken makes a token (the page is declared for admins) and returns
// its secret.
func (a Admin) CreateToken(ctx context.Context, p principal.Principal, t web.NewToken) (string, error) {
	secret, _, err := a.p.Auth.CreateToken(ctx, auth.TokenSpec{Name: t.Name, Role: principal.Role(t.Role), Org: t.Org, TTL: t.TTL})
	return secret, err
}

// RevokeToken revokes a token (the page is declared for admins).
func (a Admin) RevokeToken(ctx context.Context, p principal.Principal, id string) error {
	return a.p.Auth.Revoke(ctx, id)
}
