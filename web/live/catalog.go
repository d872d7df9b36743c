package live

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
	"github.com/afterlife-oss/afterlife/registry/sbom"
	"github.com/afterlife-oss/afterlife/web"
)

// Catalog is web.Catalog: products, their page, the home page counts.
type Catalog struct{ p Parts }

var _ web.Catalog = Catalog{}

// Stats counts handed-over products, releases, builders and reproducible
// builds.
func (a Catalog) Stats(ctx context.Context) (web.Stats, error) {
	var st web.Stats
	var err error
	if st.Products, err = a.p.Catalog.Count(ctx, catalog.HandedOver, catalog.Community); err != nil {
		return st, err
	}
	if st.Releases, err = a.p.Registry.CountReleases(ctx); err != nil {
		return st, err
	}
	builders, err := a.p.Farm.Builders(ctx)
	if err != nil {
		return st, err
	}
	st.Builders = len(builders)
	if st.Reproducible, err = a.p.Farm.CountBuilds(ctx, verdict.Reproducible); err != nil {
		return st, err
	}
	return st, nil
}

// Search finds products (every one, by id, for an empty q) with their
// vendor's display name and newest stable version.
func (a Catalog) Search(ctx context.Context, q string, limit int) (web.SearchResults, error) {
	found, err := a.p.Catalog.Search(ctx, q, limit)
	if err != nil {
		return web.SearchResults{}, err
	}
	ids := make([]string, len(found.Products))
	for i, p := range found.Products {
		ids[i] = p.ID
	}
	latest, err := a.p.Registry.LatestStable(ctx, ids)
	if err != nil {
		return web.SearchResults{}, err
	}
	out := web.SearchResults{Total: found.Total, Capped: found.TotalCapped, Products: make([]web.ProductSummary, 0, len(found.Products))}
	for _, p := range found.Products {
		s := productSummary(p.Product)
		s.Vendor = p.VendorName
		s.Latest = latest[p.ID]
		out.Products = append(out.Products, s)
	}
	return out, nil
}

func productSummary(p catalog.Product) web.ProductSummary {
	return web.ProductSummary{ID: p.ID, Vendor: p.Vendor, Model: p.Model, Revisions: p.Revisions, DeviceIDs: p.DeviceIDs, RiskNotes: p.RiskNotes, Status: string(p.Status), EOL: p.EOL, Support: pageSupport(p.Support)}
}

// Product is the product page, from the registry's overview.
func (a Catalog) Product(ctx context.Context, id string) (*web.ProductPage, error) {
	ov, err := a.p.Registry.ProductOverview(ctx, id)
	if err != nil {
		return nil, err
	}
	pr := ov.Product
	page := &web.ProductPage{
		ID: pr.ID, Vendor: pr.Vendor, Model: pr.Model, HardwareRevisions: pr.Revisions, DeviceIDs: pr.DeviceIDs,
		Status: string(pr.Status), EOL: pr.EOL, APIURL: "/v1/products/" + pr.ID + "/overview", FeedURL: "/feeds/products/" + pr.ID + "/firmware.atom",
		Support: pageSupport(pr.Support), Lifecycle: lifecycleDocs(pr.ID),
	}
	if len(pr.FwupdGUIDs) > 0 && a.p.FwupdBranch != "" {
		page.Fwupd = &web.FwupdRemote{GUIDs: pr.FwupdGUIDs, Branch: a.p.FwupdBranch, Remote: fwupd.RemoteID, ConfURL: fwupd.ConfPath, CAURL: fwupd.CAPath}
	}
	if !pr.EOL.IsZero() {
		page.Timeline = append(page.Timeline, web.TimelineEvent{At: pr.EOL, Title: "End of life", Detail: "The vendor's support ends."})
	}
	if o, err := a.p.Auth.Org(ctx, pr.Vendor); err == nil {
		page.Vendor = o.Name
	}
	statusEntries, registryEntries := a.logEntries(ctx, ov)
	for _, e := range ov.History {
		ev := web.TimelineEvent{At: e.At, Title: statusNews(string(e.To)), LogURL: entryURL(statusEntries, e.Seq)}
		switch {
		case e.From == "":
			ev.Title = "Listed here by its vendor"
		case e.From == e.To && e.Support != nil:
			ev.Title, ev.Detail = "Support period declared", "Declared by "+e.Actor+"."
		case e.Change != nil:
			ev.Title, ev.Detail = "Details corrected by its vendor", changeDetail(*e.Change)
		}
		page.Timeline = append(page.Timeline, ev)
	}
	for _, e := range ov.Events {
		title, ok := eventNews[e.Kind]
		if !ok {
			continue // the registry's own housekeeping (grants, policies): nothing an owner acts on
		}
		detail := buildRef.ReplaceAllString(e.Detail, "")
		page.Timeline = append(page.Timeline, web.TimelineEvent{At: e.At, Title: title, Detail: detail, LogURL: entryURL(registryEntries, e.Seq)})
	}
	if ov.Escrow != nil {
		releases := a.releaseEntries(ctx, ov)
		for _, d := range ov.Escrow.Public {
			page.Escrow = append(page.Escrow, web.EscrowState{
				DepositID: d.ID, Policy: pagePolicy(d.Policy), Released: true, SealedAt: d.SealedAt, ReleasedAt: d.ReleasedAt,
				URL: "/deposits/" + d.ID, Grant: d.Grant, Completeness: a.completeness(ctx, d.ID),
			})
			ev := web.TimelineEvent{At: d.ReleasedAt, Title: "The vendor's files were made public", Detail: whyPublic(d.Fired)}
			if idx, ok := releases[d.ID]; ok {
				ev.LogURL = fmt.Sprintf("/v1/log/entries/%d", idx)
			}
			page.Timeline = append(page.Timeline, ev)
		}
	}
	page.Handovers = a.handovers(ctx, pr.ID)
	channels := map[string]*web.Channel{}
	for _, r := range ov.Releases {
		ch := channels[r.Channel]
		if ch == nil {
			ch = &web.Channel{Name: r.Channel}
			channels[r.Channel] = ch
		}
		ch.Releases = append(ch.Releases, pageRelease(r))
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
	page.RiskNotes = paragraphs(pr.RiskNotes)
	// The recipe's own risk notes travel with its build: those of the
	// newest release that is not yanked.
	for _, r := range ov.Releases {
		if r.Yanked || r.BuildID == "" {
			continue
		}
		if b, err := a.p.Farm.Build(ctx, r.BuildID); err == nil {
			page.RecipeRiskNotes = paragraphs(b.Spec.RiskNotes)
		}
		break
	}
	sort.SliceStable(page.Timeline, func(i, j int) bool { return page.Timeline[i].At.Before(page.Timeline[j].At) })
	return page, nil
}

func pageRelease(r registry.ReleaseOverview) web.Release {
	rel := web.Release{
		Version: r.Version, PublishedAt: r.PublishedAt, Notes: r.Notes, BuildID: r.BuildID,
		Badge:  web.Badge{Agree: r.Agreeing, Total: r.Total, VerdictURL: "/builds/" + r.BuildID},
		Yanked: r.Yanked, YankReason: r.YankReason,
	}
	if ro := r.Rollout; ro != nil && !r.Yanked {
		rel.Rollout = fmt.Sprintf("Phased rollout, stage %d of %d: %d %% of devices", ro.Stage, len(ro.Stages), ro.Percent)
		switch ro.State {
		case "paused":
			rel.Rollout += " (paused)"
		case "halted":
			rel.Rollout += " (halted after failed installs; offered to no more devices until reviewed)"
		case "aborted":
			rel.Rollout = "Phased rollout aborted: offered to no more devices"
		}
	}
	for _, st := range r.RolloutProgress {
		rel.Stages = append(rel.Stages, web.RolloutStage{Percent: st.Percent, StartsAt: st.StartsAt, Reached: st.Reached})
	}
	for _, d := range r.ReportsByDay {
		rel.ReportDays = append(rel.ReportDays, web.ReportDay{Day: d.Day, Success: d.Success, Failure: d.Failure, RolledBack: d.RolledBack})
	}
	firmware := map[string]bool{}
	for _, art := range r.Artifacts {
		if art.Kind == "delta" {
			continue // for devices: owners download the full image
		}
		firmware[art.Name] = firmware[art.Name] || art.Kind == "firmware"
		rel.Artifacts = append(rel.Artifacts, web.Artifact{
			Name: art.Name, Size: art.Size, SHA256: strings.TrimPrefix(art.Digest, "sha256:"),
			URL: "/v1/releases/" + r.ID + "/artifacts/" + art.Name, SBOM: pageSBOM(art.SBOM),
		})
	}
	// Firmware first, then SBOMs and the rest: what an owner came for.
	sort.SliceStable(rel.Artifacts, func(i, j int) bool {
		return firmware[rel.Artifacts[i].Name] && !firmware[rel.Artifacts[j].Name]
	})
	return rel
}

// pagePolicy describes a policy for the pages: its conditions, never the
// deposit's content.
func pagePolicy(s string) web.Policy {
	pol, err := policy.Parse(s)
	if err != nil {
		return web.Policy{Kind: s}
	}
	w := web.Policy{Kind: pol.Kind()}
	switch w.Kind {
	case policy.Quorum:
		w.Quorum, w.Trustees = pol.Quorum.K, len(pol.Quorum.Trustees)
	case policy.DeadMan:
		w.Every, w.Grace = pol.DeadMan.Every, pol.DeadMan.Grace
	case "date":
		w.ReleaseAt = pol.On
	}
	return w
}

// VendorProducts lists the products of vendor organisation org.
func (a Catalog) VendorProducts(ctx context.Context, org string) ([]web.ProductSummary, error) {
	ps, err := a.p.Catalog.List(ctx, catalog.Filter{Vendor: org, Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := make([]web.ProductSummary, 0, len(ps))
	for _, p := range ps {
		out = append(out, productSummary(p))
	}
	return out, nil
}

// CreateProduct registers a product for p's organisation under the id the
// catalog derives.
func (a Catalog) CreateProduct(ctx context.Context, p principal.Principal, np web.NewProduct) (string, error) {
	reg := catalog.Registration{Model: np.Model, Revisions: np.HardwareRevisions, DeviceIDs: np.DeviceIDs, Support: catalogSupport(np.Support)}
	if !np.EOL.IsZero() {
		reg.EOL = np.EOL.Format("2006-01-02")
	}
	pr, err := a.p.Catalog.RegisterOwn(ctx, p, reg)
	if err != nil {
		return "", err
	}
	return pr.ID, nil
}

// EditProduct corrects a product's description for p.
func (a Catalog) EditProduct(ctx context.Context, p principal.Principal, product string, e web.ProductEdit) error {
	_, err := a.p.Catalog.Edit(ctx, p, product, catalog.Edit{Model: &e.Model, Revisions: &e.HardwareRevisions, DeviceIDs: &e.DeviceIDs, RiskNotes: &e.RiskNotes, Reason: e.Reason})
	return err
}

// RetireProduct retires a product for p.
func (a Catalog) RetireProduct(ctx context.Context, p principal.Principal, product, reason string) error {
	return a.p.Catalog.Retire(ctx, p, product, reason)
}

// logEntries finds the log entries of the overview's history; without a
// log, or when it cannot answer, the timeline goes without links.
func (a Catalog) logEntries(ctx context.Context, ov registry.Overview) (map[int64]int64, map[int64]int64) {
	if a.p.Log == nil {
		return nil, nil
	}
	var status, events []int64
	for _, e := range ov.History {
		status = append(status, e.Seq)
	}
	for _, e := range ov.Events {
		events = append(events, e.Seq)
	}
	s, r, err := a.p.Log.ProductEntries(ctx, status, events)
	if err != nil {
		return nil, nil
	}
	return s, r
}

func entryURL(entries map[int64]int64, seq int64) string {
	idx, ok := entries[seq]
	if !ok {
		return ""
	}
	return fmt.Sprintf("/v1/log/entries/%d", idx)
}

// releaseEntries finds the log entries that released the overview's
// public deposits.
func (a Catalog) releaseEntries(ctx context.Context, ov registry.Overview) map[string]int64 {
	if a.p.Log == nil || ov.Escrow == nil {
		return nil
	}
	var ids []string
	for _, d := range ov.Escrow.Public {
		ids = append(ids, d.ID)
	}
	m, err := a.p.Log.DepositReleases(ctx, ids)
	if err != nil {
		return nil
	}
	return m
}

// pageSBOM is what the page lists of an SBOM the registry read.
func pageSBOM(s *sbom.Summary) *web.SBOM {
	if s == nil {
		return nil
	}
	c := func(x sbom.Component) web.SBOMComponent {
		return web.SBOMComponent{Name: x.Name, Version: x.Version, Type: x.Type, PURL: x.PURL, Digest: x.Digest}
	}
	out := &web.SBOM{Format: s.Format, Subject: c(s.Subject), Truncated: s.Truncated}
	for _, x := range s.Components {
		out.Components = append(out.Components, c(x))
	}
	return out
}

// paragraphs splits text at blank lines.
func paragraphs(text string) []string {
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if para = strings.TrimSpace(para); para != "" {
			out = append(out, para)
		}
	}
	return out
}

// completeness is a released deposit's public completeness score, as an
// anonymous reader may see it; nil when it has none.
func (a Catalog) completeness(ctx context.Context, deposit string) *web.CompletenessScore {
	if a.p.Escrow == nil {
		return nil
	}
	c, err := a.p.Escrow.CompletenessOf(ctx, principal.Principal{}, deposit)
	if err != nil || !c.Public {
		return nil
	}
	return &web.CompletenessScore{Sentence: c.Sentence, Identical: c.Counts.Identical, Differs: c.Counts.Differs, Missing: c.Counts.Missing, Extra: c.Counts.Extra,
		AttestationURL: "/v1/deposits/" + deposit + "/completeness/attestation"}
}

// statusNews is a status change as an owner reads it.
func statusNews(status string) string {
	switch status {
	case "supported":
		return "Supported by its vendor again"
	case "sunset":
		return "The vendor ended its support"
	case "handed-over":
		return "The vendor handed its updates over to the community"
	case "community":
		return "Now kept up to date by the community"
	}
	return "Status changed to " + status
}

// whyPublic says why a vendor's deposit became public, for owners.
func whyPublic(fired string) string {
	switch fired {
	case policy.Immediate:
		return "The vendor published them straight away."
	case policy.On:
		return "The date the vendor set for it was reached."
	case policy.DeadMan:
		return "The vendor stopped confirming that it still supports the device."
	case policy.Quorum:
		return "Enough of the independent trustees the vendor named agreed."
	}
	return ""
}

// eventNews titles the registry events an owner cares about; the detail
// (version and reason) follows as the registry wrote it.
var eventNews = map[string]string{
	"published":       "New firmware published",
	"promoted":        "Firmware recommended for everyone (stable)",
	"yanked":          "Firmware withdrawn",
	"rollback":        "Devices may go back to an earlier version",
	"held":            "Firmware paused while reports of failed installs are checked",
	"resumed":         "Firmware offered again after the check",
	"pulled_back":     "Firmware pulled back after failed installs",
	"rollout_started": "Firmware rolling out in stages",
	"rollout_halted":  "Rollout stopped after failed installs",
	"rollout_paused":  "Rollout paused",
	"rollout_resumed": "Rollout resumed",
	"rollout_aborted": "Rollout stopped",
}

// buildRef is the internal build id in an event's detail; the page links
// the build from the release instead.
var buildRef = regexp.MustCompile(` from build \S+`)

// changeDetail says what an edit of a product changed, for owners.
func changeDetail(ch catalog.Change) string {
	if ch.After == nil {
		return ""
	}
	var parts []string
	b, a := ch.Before, *ch.After
	if b.Model != a.Model {
		parts = append(parts, "Name: "+b.Model+" → "+a.Model+".")
	}
	if !slices.Equal(b.DeviceIDs, a.DeviceIDs) {
		parts = append(parts, "Ids the device reports: "+orNone(b.DeviceIDs)+" → "+orNone(a.DeviceIDs)+".")
	}
	if !slices.Equal(b.Revisions, a.Revisions) {
		parts = append(parts, "Hardware revisions: "+orNone(b.Revisions)+" → "+orNone(a.Revisions)+".")
	}
	if b.RiskNotes != a.RiskNotes {
		parts = append(parts, "The notes on risks changed.")
	}
	if ch.Reason != "" {
		parts = append(parts, "Why: "+ch.Reason)
	}
	return strings.Join(parts, " ")
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
