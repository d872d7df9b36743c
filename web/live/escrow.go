package live

import (
	"context"
	"io"
	"net/url"
	"strings"

	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/escrow/completeness"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/web"
)

// Escrow is web.Escrow: a vendor's deposits, made from the browser.
type Escrow struct{ p Parts }

var _ web.Escrow = Escrow{}

// Deposits lists the deposits p acts for, newest first.
func (a Escrow) Deposits(ctx context.Context, p principal.Principal) ([]web.DepositSummary, error) {
	ds, err := a.p.Escrow.List(ctx, p, escrow.ListFilter{Mine: true})
	if err != nil {
		return nil, err
	}
	out := make([]web.DepositSummary, 0, len(ds))
	for _, d := range ds {
		s := web.DepositSummary{ID: d.ID, ProductID: d.Product, State: string(d.State), CreatedAt: d.CreatedAt, Files: d.Files, Bytes: d.TotalSize, Policy: pagePolicy(d.Policy)}
		if d.State == escrow.Uploading {
			s.State = "open"
		}
		last, deadline, ok, err := a.p.Escrow.DeadManDeadline(ctx, d)
		if err != nil {
			return nil, err
		}
		if ok {
			s.Policy.LastCheckIn, s.Policy.NextDeadline = last, deadline
		}
		if d.State == escrow.Sealed || d.State == escrow.Released {
			if signed, err := a.p.Escrow.Receipt(ctx, p, d.ID); err == nil {
				s.Receipt = pageReceipt(d.ID, signed)
			}
			s.Completeness = vendorCompleteness(a.p.Escrow.CompletenessOf(ctx, p, d.ID))
		}
		out = append(out, s)
	}
	return out, nil
}

func pageReceipt(id string, signed receipt.Signed) *web.Receipt {
	r := &web.Receipt{DepositID: id, KeyID: signed.KeyID, Signature: signed.Signature, URL: "/v1/deposits/" + id + "/receipt"}
	if rc, err := signed.PayloadUnverified(); err == nil {
		r.ManifestSHA256 = strings.TrimPrefix(rc.ManifestDigest, "sha256:")
		r.SealedAt = rc.CommittedAt
	}
	return r
}

// CreateDeposit opens a deposit with the policy the form chose.
func (a Escrow) CreateDeposit(ctx context.Context, p principal.Principal, d web.NewDeposit) (string, error) {
	pol, err := policy.FromForm(policy.Form{Kind: d.Policy.Kind, On: d.Policy.ReleaseAt, Every: d.Policy.Every, Grace: d.Policy.Grace,
		Quorum: d.Policy.Quorum, Trustees: d.Policy.Trustees})
	if err != nil {
		return "", err
	}
	req := escrow.CreateRequest{Product: d.ProductID, Policy: pol.String(), Grant: d.Grant}
	for _, r := range d.Rights {
		rule, err := manifest.ParseRightsRule(r)
		if err != nil {
			return "", err
		}
		req.Rights = append(req.Rights, rule)
	}
	for _, e := range d.Manifest {
		kind := manifest.Kind(e.Kind)
		if kind == "" {
			kind = manifest.InferKind(e.Path)
		}
		req.Manifest = append(req.Manifest, manifest.Entry{Path: e.Path, Size: e.Size, SHA256: e.SHA256, Kind: kind})
	}
	dep, err := a.p.Escrow.Create(ctx, p, req)
	if err != nil {
		return "", err
	}
	return dep.ID, nil
}

// UploadFile streams one file of the deposit.
func (a Escrow) UploadFile(ctx context.Context, p principal.Principal, depositID, path string, size int64, body io.Reader) error {
	_, err := a.p.Escrow.PutFile(ctx, p, depositID, path, body)
	return err
}

// CommitDeposit seals the deposit.
func (a Escrow) CommitDeposit(ctx context.Context, p principal.Principal, depositID string) (web.Receipt, error) {
	signed, err := a.p.Escrow.Commit(ctx, p, depositID)
	if err != nil {
		return web.Receipt{}, err
	}
	return *pageReceipt(depositID, signed), nil
}

// CheckIn checks in for p's organisation.
func (a Escrow) CheckIn(ctx context.Context, p principal.Principal) error {
	_, err := a.p.Escrow.Checkin(ctx, p, p.Org)
	return err
}

func vendorCompleteness(c escrow.Completeness, err error) *web.VendorCompleteness {
	if err != nil || c.State == escrow.CheckNone {
		return nil
	}
	v := &web.VendorCompleteness{Summary: "Completeness check " + c.State, Public: c.Public}
	switch {
	case c.State == escrow.CheckDone:
		v.Summary = c.Sentence
	case c.Error != "":
		v.Summary += ": " + c.Error
	}
	if c.Report != nil {
		for _, f := range c.Report.Files {
			if f.Class == completeness.Missing || f.Class == completeness.Differs {
				v.Gaps = append(v.Gaps, string(f.Class)+" "+f.Path)
			}
		}
	}
	return v
}

// DepositFiles lists a deposit's files for p; the escrow decides who sees
// a sealed deposit, and a trustee's approval view (no manifest) is not a
// file list.
func (a Escrow) DepositFiles(ctx context.Context, p principal.Principal, id string) (*web.DepositFiles, error) {
	d, err := a.p.Escrow.Get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if d.State != escrow.Released && d.Manifest == nil {
		return nil, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	out := &web.DepositFiles{ID: d.ID, ProductID: d.Product, Released: d.State == escrow.Released, SealedAt: d.SealedAt, ReleasedAt: d.ReleasedAt,
		JSONURL: "/v1/deposits/" + url.PathEscape(d.ID)}
	for _, e := range d.Manifest {
		f := web.DepositFile{Path: e.Path, Kind: string(e.Kind), SHA256: e.SHA256, Size: e.Size, Link: e.Link}
		if e.Link == "" {
			f.URL = out.JSONURL + "/files/" + (&url.URL{Path: e.Path}).EscapedPath()
		}
		out.Files = append(out.Files, f)
	}
	return out, nil
}
