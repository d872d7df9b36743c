package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/recipes/submit"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/web"
)

// The web adapters turn what the parts return into the view structs the
// pages show. They read; every rule (who may see what) stays in the parts.

type webCatalog struct{ p *parts }

func (a webCatalog) Stats(ctx context.Context) (web.Stats, error) {
	var st web.Stats
	for _, status := range []catalog.Status{catalog.HandedOver, catalog.Community} {
		ps, err := a.p.catalog.List(ctx, catalog.Filter{Status: status, Limit: 1000})
		if err != nil {
			return st, err
		}
		st.Products += len(ps)
	}
	rels, err := a.p.reg.List(ctx, "")
	if err != nil {
		return st, err
	}
	st.Releases = len(rels)
	builders, err := a.p.coord.Builders(ctx)
	if err != nil {
		return st, err
	}
	st.Builders = len(builders)
	builds, err := a.p.coord.Builds(ctx, coord.Filter{State: verdict.Reproducible, Limit: 500})
	if err != nil {
		return st, err
	}
	st.Reproducible = len(builds)
	return st, nil
}

func (a webCatalog) Search(ctx context.Context, q string, limit int) ([]web.ProductSummary, error) {
	var ps []catalog.Product
	var err error
	if strings.TrimSpace(q) == "" {
		ps, err = a.p.catalog.List(ctx, catalog.Filter{Limit: limit})
	} else {
		ps, err = a.p.catalog.Search(ctx, q, limit)
	}
	if err != nil {
		return nil, err
	}
	out := make([]web.ProductSummary, 0, len(ps))
	for _, p := range ps {
		s := productSummary(p)
		if rels, err := a.p.reg.List(ctx, p.ID); err == nil {
			for _, r := range rels {
				if r.Channel == "stable" && !r.Yanked && !r.PulledBack && !r.Held {
					s.Latest = r.Version
					break
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func productSummary(p catalog.Product) web.ProductSummary {
	return web.ProductSummary{ID: p.ID, Vendor: p.Vendor, Model: p.Model, DeviceIDs: p.DeviceIDs, Status: string(p.Status), EOL: p.EOL}
}

func (a webCatalog) Product(ctx context.Context, id string) (*web.ProductPage, error) {
	ov, err := a.p.reg.ProductOverview(ctx, id)
	if err != nil {
		return nil, err
	}
	pr := ov.Product
	page := &web.ProductPage{
		ID: pr.ID, Vendor: pr.Vendor, Model: pr.Model, HardwareRevisions: pr.Revisions, DeviceIDs: pr.DeviceIDs,
		Status: string(pr.Status), EOL: pr.EOL, APIURL: "/v1/products/" + pr.ID + "/overview", FeedURL: "/feeds/releases.atom",
	}
	if !pr.EOL.IsZero() {
		page.Timeline = append(page.Timeline, web.TimelineEvent{At: pr.EOL, Title: "End of life", Detail: "The vendor's support ends."})
	}
	if o, err := a.p.auth.Org(ctx, pr.Vendor); err == nil {
		page.Vendor = o.Name
	}
	if evs, err := a.p.catalog.Events(ctx, id); err == nil {
		for _, e := range evs {
			ev := web.TimelineEvent{At: e.At, Title: "Status: " + string(e.To), Detail: fmt.Sprintf("From %s, by %s.", e.From, e.Actor)}
			if e.From == "" {
				ev.Title, ev.Detail = "Registered", "Registered by "+e.Actor+"."
			}
			page.Timeline = append(page.Timeline, ev)
		}
	}
	for _, e := range ov.Events {
		title := strings.ReplaceAll(e.Kind, "_", " ")
		title = strings.ToUpper(title[:1]) + title[1:]
		page.Timeline = append(page.Timeline, web.TimelineEvent{At: e.At, Title: title, Detail: e.Detail})
	}
	deps, err := a.p.escrow.List(ctx, publicReader, escrow.ListFilter{Product: id})
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		if d.State != "sealed" && d.State != "released" {
			continue
		}
		es := web.EscrowState{DepositID: d.ID, Policy: webPolicy(d.Policy), Released: d.State == "released", SealedAt: d.SealedAt, ReleasedAt: d.ReleasedAt}
		if es.Released {
			es.URL = "/v1/deposits/" + d.ID
			page.Timeline = append(page.Timeline, web.TimelineEvent{At: d.ReleasedAt, Title: "Escrow released", Detail: "Policy fired: " + d.Fired})
		}
		page.Escrow = append(page.Escrow, es)
	}
	channels := map[string]*web.Channel{}
	for _, r := range ov.Releases {
		if r.Yanked {
			continue
		}
		ch := channels[r.Channel]
		if ch == nil {
			ch = &web.Channel{Name: r.Channel}
			channels[r.Channel] = ch
		}
		rel := web.Release{
			Version: r.Version, PublishedAt: r.PublishedAt, Notes: r.Notes, BuildID: r.BuildID,
			Badge: web.Badge{Agree: r.Agreeing, Total: r.Total, VerdictURL: "/builds/" + r.BuildID},
		}
		for _, art := range r.Artifacts {
			rel.Artifacts = append(rel.Artifacts, web.Artifact{
				Name: art.Name, Size: art.Size, SHA256: strings.TrimPrefix(art.Digest, "sha256:"),
				URL: "/v1/releases/" + r.ID + "/artifacts/" + art.Name,
			})
		}
		// Firmware first, then SBOMs and the rest: what an owner came for.
		sort.SliceStable(rel.Artifacts, func(i, j int) bool {
			return artifactRank(r.Artifacts, rel.Artifacts[i].Name) < artifactRank(r.Artifacts, rel.Artifacts[j].Name)
		})
		ch.Releases = append(ch.Releases, rel)
		page.Reports.Success += r.Reports.Success
		page.Reports.Failure += r.Reports.Failure
		if page.InstallNotes == "" {
			page.InstallNotes = r.InstallNotes
		}
	}
	for _, name := range []string{"stable", "testing"} {
		if ch := channels[name]; ch != nil {
			page.Channels = append(page.Channels, *ch)
		}
	}
	for _, para := range strings.Split(strings.TrimSpace(pr.RiskNotes), "\n\n") {
		if para = strings.TrimSpace(para); para != "" {
			page.RiskNotes = append(page.RiskNotes, para)
		}
	}
	sort.SliceStable(page.Timeline, func(i, j int) bool { return page.Timeline[i].At.Before(page.Timeline[j].At) })
	return page, nil
}

func artifactRank(arts []registry.Artifact, name string) int {
	for _, a := range arts {
		if a.Name == name && a.Kind == "firmware" {
			return 0
		}
	}
	return 1
}

// webPolicy describes a policy for the public page: its conditions, never
// the deposit's content.
func webPolicy(s string) web.Policy {
	pol, err := policy.Parse(s)
	if err != nil {
		return web.Policy{Kind: s}
	}
	var w web.Policy
	switch {
	case pol.Quorum != nil:
		w.Kind, w.Quorum, w.Trustees = "quorum", pol.Quorum.K, len(pol.Quorum.Trustees)
	case pol.DeadMan != nil:
		w.Kind = "dead-man"
		w.CheckInEvery, w.GraceDays = int(pol.DeadMan.Every.Hours()/24), int(pol.DeadMan.Grace.Hours()/24)
	case !pol.On.IsZero():
		w.Kind, w.ReleaseAt = "date", pol.On
	default:
		w.Kind = "immediate"
	}
	return w
}

func (a webCatalog) VendorProducts(ctx context.Context, org string) ([]web.ProductSummary, error) {
	ps, err := a.p.catalog.List(ctx, catalog.Filter{Vendor: org, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := make([]web.ProductSummary, 0, len(ps))
	for _, p := range ps {
		out = append(out, productSummary(p))
	}
	return out, nil
}

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)

func (a webCatalog) CreateProduct(ctx context.Context, p auth.Principal, np web.NewProduct) (string, error) {
	if p.Org == "" {
		return "", errs.E(errs.Forbidden, "only a vendor token of an organisation can register products")
	}
	id := strings.Trim(notSlug.ReplaceAllString(strings.ToLower(p.Org+"-"+np.Model), "-"), "-")
	if len(id) > 63 {
		id = strings.Trim(id[:63], "-")
	}
	reg := catalog.Registration{ID: id, Vendor: p.Org, Model: np.Model, Revisions: np.HardwareRevisions, DeviceIDs: np.DeviceIDs}
	if !np.EOL.IsZero() {
		reg.EOL = np.EOL.Format("2006-01-02")
	}
	pr, err := a.p.catalog.Register(ctx, p, reg)
	if err != nil {
		return "", err
	}
	return pr.ID, nil
}

type webFarm struct{ p *parts }

func (a webFarm) Build(ctx context.Context, id string) (*web.BuildPage, error) {
	b, err := a.p.coord.Build(ctx, id)
	if err != nil {
		return nil, err
	}
	names := builderNames(ctx, a.p.coord)
	page := &web.BuildPage{
		ID: b.ID, Recipe: b.Name + " " + b.Version, Repo: b.Repo, Commit: b.Commit, Path: b.Path,
		Products: b.Products, SubmittedBy: b.RequestedBy, SubmittedAt: b.Created, State: buildPageState(b),
		APIURL: "/v1/builds/" + b.ID,
	}
	results := map[string]coord.Result{}
	for _, r := range b.Results {
		results[r.JobID] = r
	}
	for _, j := range b.Jobs {
		job := web.Job{ID: j.ID, Builder: names[j.BuilderID], Operator: j.Operator, Cold: j.Cold, State: jobState(j.State), StartedAt: j.Started, FinishedAt: j.Finished}
		if r, ok := results[j.ID]; ok {
			if r.Failed {
				job.State = "failed"
			}
			for _, o := range r.Outputs {
				job.Outputs = append(job.Outputs, web.Output{Path: o.Path, SHA256: o.Digest.Hex(), Size: o.Size})
			}
			if r.Attestation != "" {
				job.AttestationURL = "/v1/builds/" + b.ID + "/jobs/" + j.ID + "/attestation"
			}
			if r.BuildInfo != "" {
				job.BuildinfoURL = "/v1/builds/" + b.ID + "/jobs/" + j.ID + "/buildinfo"
			}
		}
		page.Jobs = append(page.Jobs, job)
	}
	if b.State == verdict.Reproducible || b.State == verdict.Unreproducible {
		v := &web.Verdict{
			Reproducible: b.State == verdict.Reproducible, Agree: b.Verdict.Agreeing, Total: finishedJobs(b),
			Required: b.Quorum, DecidedAt: b.Decided,
		}
		if len(b.Products) > 0 {
			v.ProductID = b.Products[0]
		}
		for _, d := range b.Verdict.Differences {
			diff := web.Difference{Path: d.Path}
			for digest, builders := range d.Digests {
				for _, bid := range builders {
					diff.Digests = append(diff.Digests, web.BuilderDigest{Builder: names[bid], SHA256: strings.TrimPrefix(digest, "sha256:")})
				}
			}
			for _, bid := range d.Missing {
				diff.Digests = append(diff.Digests, web.BuilderDigest{Builder: names[bid], SHA256: "(missing)"})
			}
			sort.Slice(diff.Digests, func(i, j int) bool { return diff.Digests[i].Builder < diff.Digests[j].Builder })
			v.Differences = append(v.Differences, diff)
		}
		var texts []string
		for _, d := range b.Diffs {
			if d.Diffoscope != "" {
				texts = append(texts, d.Diffoscope)
			}
		}
		v.Diffoscope = strings.Join(texts, "\n")
		if rels, err := a.p.reg.List(ctx, v.ProductID); err == nil {
			for _, r := range rels {
				if r.BuildID == b.ID {
					v.Release = r.Version
				}
			}
		}
		page.Verdict = v
	}
	return page, nil
}

func builderNames(ctx context.Context, c *coord.Service) map[string]string {
	names := map[string]string{}
	if bs, err := c.Builders(ctx); err == nil {
		for _, b := range bs {
			names[b.ID] = b.Name
		}
	}
	return names
}

// buildPageState is the build's state as the pages name it.
func buildPageState(b coord.Build) string {
	switch b.State {
	case verdict.Reproducible, verdict.Unreproducible, verdict.Failed:
		return string(b.State)
	}
	for _, j := range b.Jobs {
		if j.State != "queued" {
			return "running"
		}
	}
	return "queued"
}

func jobState(s string) string {
	switch s {
	case "leased":
		return "running"
	case "done", "failed", "queued":
		return s
	}
	return s
}

func (a webFarm) Builds(ctx context.Context, f web.BuildFilter) ([]web.BuildSummary, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	bs, err := a.p.coord.Builds(ctx, coord.Filter{Limit: 500})
	if err != nil {
		return nil, err
	}
	var out []web.BuildSummary
	for _, b := range bs {
		if f.Submitter != "" && b.RequestedBy != f.Submitter {
			continue
		}
		out = append(out, web.BuildSummary{
			ID: b.ID, Recipe: b.Name, Commit: b.Commit, State: buildPageState(b), SubmittedAt: b.Created,
			Agree: b.Verdict.Agreeing, Total: finishedJobs(b),
		})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (a webFarm) SubmitRecipe(ctx context.Context, p auth.Principal, s web.RecipeSubmission) (string, error) {
	if !p.Is(auth.Maintainer) {
		return "", errs.E(errs.Forbidden, "submitting recipes needs a maintainer token")
	}
	res, err := a.p.submitter.Submit(ctx, submit.Request{RepoURL: s.Repo, Ref: s.Ref, Path: s.Path, RequestedBy: p.Actor()})
	if err != nil {
		return "", err
	}
	return res.BuildID, nil
}

func (a webFarm) Log(ctx context.Context, buildID, jobID string, offset int64) (web.LogChunk, error) {
	b, err := a.p.coord.Build(ctx, buildID)
	if err != nil {
		return web.LogChunk{}, err
	}
	found := false
	for _, j := range b.Jobs {
		found = found || j.ID == jobID
	}
	if !found {
		return web.LogChunk{}, errs.E(errs.NotFound, "build %s has no job %s", buildID, jobID)
	}
	c, err := a.p.coord.Log(ctx, jobID, offset)
	if err != nil {
		return web.LogChunk{}, err
	}
	return web.LogChunk{Data: c.Data, Next: c.Next, Done: c.Done}, nil
}

type webEscrow struct{ p *parts }

func (a webEscrow) Deposits(ctx context.Context, p auth.Principal) ([]web.DepositSummary, error) {
	ds, err := a.p.escrow.List(ctx, p, escrow.ListFilter{})
	if err != nil {
		return nil, err
	}
	var out []web.DepositSummary
	for _, d := range ds {
		if p.Role != auth.Admin && d.Org != p.Org {
			continue
		}
		s := web.DepositSummary{ID: d.ID, ProductID: d.Product, State: string(d.State), CreatedAt: d.CreatedAt, Files: d.Files, Bytes: d.TotalSize, Policy: webPolicy(d.Policy)}
		if s.State == "uploading" {
			s.State = "open"
		}
		if pol, err := policy.Parse(d.Policy); err == nil && pol.DeadMan != nil {
			last, _ := a.p.escrow.LastCheckin(ctx, d.Org)
			s.Policy.LastCheckIn = last
			s.Policy.NextDeadline = pol.DeadMan.Deadline(d.SealedAt, last)
		}
		if d.State == "sealed" || d.State == "released" {
			if signed, err := a.p.escrow.Receipt(ctx, p, d.ID); err == nil {
				s.Receipt = webReceipt(d.ID, signed)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func webReceipt(id string, signed receipt.Signed) *web.Receipt {
	r := &web.Receipt{DepositID: id, KeyID: signed.KeyID, Signature: signed.Signature, URL: "/v1/deposits/" + id + "/receipt"}
	if payload, err := base64.StdEncoding.DecodeString(signed.Payload); err == nil {
		var rc receipt.Receipt
		if json.Unmarshal(payload, &rc) == nil {
			r.ManifestSHA256 = strings.TrimPrefix(rc.ManifestDigest, "sha256:")
			r.SealedAt = rc.CommittedAt
		}
	}
	return r
}

func (a webEscrow) CreateDeposit(ctx context.Context, p auth.Principal, d web.NewDeposit) (string, error) {
	pol, err := policyText(d.Policy)
	if err != nil {
		return "", err
	}
	req := escrow.CreateRequest{Product: d.ProductID, Policy: pol}
	for _, e := range d.Manifest {
		req.Manifest = append(req.Manifest, manifest.Entry{Path: e.Path, Size: e.Size, SHA256: e.SHA256, Kind: manifest.Kind(e.Kind)})
	}
	dep, err := a.p.escrow.Create(ctx, p, req)
	if err != nil {
		return "", err
	}
	return dep.ID, nil
}

// policyText writes the browser form's policy in the escrow's syntax.
func policyText(s web.PolicySpec) (string, error) {
	switch s.Kind {
	case "", "immediate":
		return "immediate", nil
	case "date":
		if s.ReleaseAt.IsZero() {
			return "", errs.E(errs.Invalid, "a date policy needs a release date")
		}
		return "on=" + s.ReleaseAt.UTC().Format("2006-01-02"), nil
	case "dead-man":
		if s.CheckInEvery <= 0 || s.GraceDays < 0 {
			return "", errs.E(errs.Invalid, "a dead-man policy needs check-in days and grace days")
		}
		return fmt.Sprintf("dead-man=%dd,%dd", s.CheckInEvery, s.GraceDays), nil
	case "quorum":
		return "", errs.E(errs.Invalid, "a quorum policy names its trustees: deposit with `afterlife vendor deposit --policy quorum=K/N:alice,bob,…`")
	}
	return "", errs.E(errs.Invalid, "unknown policy %q", s.Kind)
}

func (a webEscrow) UploadFile(ctx context.Context, p auth.Principal, depositID, path string, size int64, body io.Reader) error {
	_, err := a.p.escrow.PutFile(ctx, p, depositID, path, body)
	return err
}

func (a webEscrow) CommitDeposit(ctx context.Context, p auth.Principal, depositID string) (web.Receipt, error) {
	signed, err := a.p.escrow.Commit(ctx, p, depositID)
	if err != nil {
		return web.Receipt{}, err
	}
	return *webReceipt(depositID, signed), nil
}

func (a webEscrow) CheckIn(ctx context.Context, p auth.Principal) error {
	_, err := a.p.escrow.Checkin(ctx, p, p.Org)
	return err
}

type webAdmin struct {
	p    *parts
	auth *auth.Service
}

func (a webAdmin) Builders(ctx context.Context) ([]web.BuilderRow, error) {
	bs, err := a.p.coord.Builders(ctx)
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

func (a webAdmin) Scrubs(ctx context.Context) ([]web.ScrubRow, error) {
	st, err := a.p.escrow.ScrubStatus(ctx, systemReader)
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

func (a webAdmin) Approvals(ctx context.Context, p auth.Principal) ([]web.ApprovalRow, error) {
	ds, err := a.p.escrow.PendingApprovals(ctx, p)
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

func (a webAdmin) Approve(ctx context.Context, p auth.Principal, depositID string) error {
	return errs.E(errs.Invalid, "approvals are signed with the trustee's own key, which never reaches the server: run `afterlife trustee approve %s --name NAME --key FILE`", depositID)
}

func (a webAdmin) Tokens(ctx context.Context) ([]web.TokenRow, error) {
	toks, err := a.auth.Tokens(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]web.TokenRow, 0, len(toks))
	for _, t := range toks {
		out = append(out, web.TokenRow{ID: t.ID, Name: t.Name, Role: string(t.Role), Org: t.Org, CreatedAt: t.Created, ExpiresAt: t.Expires, Revoked: !t.Revoked.IsZero()})
	}
	return out, nil
}

func (a webAdmin) CreateToken(ctx context.Context, p auth.Principal, t web.NewToken) (string, error) {
	if p.Role != auth.Admin {
		return "", errs.E(errs.Forbidden, "only admins create tokens")
	}
	secret, _, err := a.auth.CreateToken(ctx, auth.TokenSpec{Name: t.Name, Role: auth.Role(t.Role), Org: t.Org, TTL: t.TTL})
	return secret, err
}

func (a webAdmin) RevokeToken(ctx context.Context, p auth.Principal, id string) error {
	if p.Role != auth.Admin {
		return errs.E(errs.Forbidden, "only admins revoke tokens")
	}
	return a.auth.Revoke(ctx, id)
}
