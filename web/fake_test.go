package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/web"
)

// The fakes below stand in for registry, escrow and the build farm in
// handler tests, browser journeys and the benchmark. They keep state in
// memory, check what the real parts check where the pages depend on it
// (deposit sizes and digests), and move a submitted build one step
// forward each time its page is read, so "the build reaches a verdict"
// happens without any clock.

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

const (
	vendorToken     = "afl_vendor_secret"
	maintainerToken = "afl_maintainer_secret"
	adminToken      = "afl_admin_secret"
	trusteeToken    = "afl_trustee_secret"
	hostile         = `<script>alert("x")</script>`
)

type fakeAuth map[string]principal.Principal

func (f fakeAuth) Authenticate(_ context.Context, tok string) (principal.Principal, error) {
	p, ok := f[tok]
	if !ok {
		return principal.Principal{}, errs.E(errs.Unauthenticated, "unknown token")
	}
	return p, nil
}

type fakeCatalog struct {
	mu       sync.Mutex
	products map[string]*web.ProductPage
	owner    map[string]string // product id → vendor org
	files    map[string][]byte // artifact name → bytes
}

func (c *fakeCatalog) Stats(context.Context) (web.Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := web.Stats{Builders: 3, Reproducible: 4}
	for _, p := range c.products {
		if p.Status == "handed-over" || p.Status == "community" {
			st.Products++
		}
		for _, ch := range p.Channels {
			st.Releases += len(ch.Releases)
		}
	}
	return st, nil
}

func summary(p *web.ProductPage) web.ProductSummary {
	s := web.ProductSummary{ID: p.ID, Vendor: p.Vendor, Model: p.Model, DeviceIDs: p.DeviceIDs, Status: p.Status, EOL: p.EOL}
	for _, ch := range p.Channels {
		if ch.Name == "stable" && len(ch.Releases) > 0 {
			s.Latest = ch.Releases[0].Version
		}
	}
	return s
}

func (c *fakeCatalog) Search(_ context.Context, q string, limit int) (web.SearchResults, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []web.ProductSummary
	for _, p := range c.products {
		hay := strings.ToLower(p.Vendor + " " + p.Model + " " + strings.Join(p.DeviceIDs, " "))
		all := true
		for _, w := range strings.Fields(strings.ToLower(q)) {
			all = all && strings.Contains(hay, w)
		}
		if all {
			out = append(out, summary(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	res := web.SearchResults{Total: len(out)}
	if q == "capped" { // a query matching more than the catalog counts
		out, res.Total, res.Capped = append(out, summary(c.products["acme-thermo-2"])), 1000, true
	}
	if len(out) > limit {
		out = out[:limit]
	}
	res.Products = out
	return res, nil
}

func (c *fakeCatalog) Product(_ context.Context, id string) (*web.ProductPage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.products[id]
	if !ok {
		return nil, errs.E(errs.NotFound, "product %s not found", id)
	}
	cp := *p
	return &cp, nil
}

func (c *fakeCatalog) VendorProducts(_ context.Context, org string) ([]web.ProductSummary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []web.ProductSummary
	for id, o := range c.owner {
		if o == org {
			out = append(out, summary(c.products[id]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (c *fakeCatalog) CreateProduct(_ context.Context, p principal.Principal, np web.NewProduct) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := strings.ToLower(p.Org + "-" + strings.Join(strings.Fields(np.Model), "-"))
	if _, dup := c.products[id]; dup {
		return "", errs.E(errs.Conflict, "product %s already exists", id)
	}
	c.products[id] = &web.ProductPage{ID: id, Vendor: p.Org, Model: np.Model, HardwareRevisions: np.HardwareRevisions, DeviceIDs: np.DeviceIDs, Status: "supported", EOL: np.EOL}
	c.owner[id] = p.Org
	return id, nil
}

type fakeFarm struct {
	mu     sync.Mutex
	builds map[string]*web.BuildPage
	steps  map[string]int // submitted builds: how often their page was read
	logs   map[string]string
	n      int
}

func (f *fakeFarm) Build(_ context.Context, id string) (*web.BuildPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.builds[id]
	if !ok {
		return nil, errs.E(errs.NotFound, "build %s not found", id)
	}
	if step, submitted := f.steps[id]; submitted {
		f.steps[id] = step + 1
		f.advance(b, step+1)
	}
	cp := *b
	return &cp, nil
}

// advance moves a submitted build: running after the first read, a
// reproducible verdict after the third.
func (f *fakeFarm) advance(b *web.BuildPage, step int) {
	for i := range b.Jobs {
		j := &b.Jobs[i]
		key := b.ID + "/" + j.ID
		switch {
		case step == 1:
			j.State = "running"
			b.State = "running"
			f.logs[key] += "+ make firmware.bin\n"
		case step >= 3 && j.State != "done":
			j.State = "done"
			j.Outputs = []web.Output{{Path: "firmware.bin", SHA256: strings.Repeat("ab", 32), Size: 4096}}
			j.AttestationURL = "/files/attestation.json"
			f.logs[key] += "outputs: firmware.bin sha256:" + strings.Repeat("ab", 32) + "\n"
		}
	}
	if step >= 3 && b.Verdict == nil {
		b.State = "reproducible"
		b.Verdict = &web.Verdict{Reproducible: true, Agree: len(b.Jobs), Total: len(b.Jobs), Required: 2, DecidedAt: t0}
	}
}

func (f *fakeFarm) Builds(_ context.Context, flt web.BuildFilter) ([]web.BuildSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []web.BuildSummary
	for _, b := range f.builds {
		if flt.Submitter != "" && b.SubmittedBy != flt.Submitter {
			continue
		}
		s := web.BuildSummary{ID: b.ID, Recipe: b.Recipe, Commit: b.Commit, State: b.State, SubmittedAt: b.SubmittedAt}
		if b.Verdict != nil {
			s.Agree, s.Total = b.Verdict.Agree, b.Verdict.Total
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}

func (f *fakeFarm) SubmitRecipe(_ context.Context, p principal.Principal, s web.RecipeSubmission) (string, error) {
	if !strings.HasPrefix(s.Repo, "https://") && !strings.HasPrefix(s.Repo, "file://") {
		return "", errs.E(errs.Invalid, "repository %q: only https:// and file:// URLs are accepted", s.Repo)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("bld_submitted%02d", f.n)
	b := &web.BuildPage{ID: id, Recipe: "thermo-fw", Repo: s.Repo, Ref: s.Ref, Path: s.Path, Commit: strings.Repeat("c", 40),
		Products: []string{"acme-thermo-2"}, SubmittedBy: p.Actor(), SubmittedAt: t0, State: "queued"}
	for i, name := range []string{"alpha", "beta", "gamma"} {
		b.Jobs = append(b.Jobs, web.Job{ID: fmt.Sprintf("job%d", i), Builder: name, Operator: "op-" + name, State: "queued"})
	}
	f.builds[id] = b
	f.steps[id] = 0
	return id, nil
}

// Activity is a day of the farm: a queue that filled in the morning
// and the builds the fake knows, which took a few minutes each.
func (f *fakeFarm) Activity(context.Context) (web.FarmActivity, error) {
	var a web.FarmActivity
	for h := range 25 {
		a.Queue = append(a.Queue, web.QueueSample{At: t0.Add(time.Duration(h-24) * time.Hour), Waiting: max(0, 6-abs(h-9)*2)})
	}
	a.Builds = []web.BuildTime{
		{ID: "bld_bad", Name: "thermo-fw", State: "unreproducible", Decided: t0.Add(-3 * time.Hour), Seconds: 410},
		{ID: "bld_good", Name: "thermo-fw", State: "reproducible", Decided: t0.Add(-time.Hour), Seconds: 265},
	}
	return a, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func (f *fakeFarm) Log(_ context.Context, buildID, jobID string, off int64) (web.LogChunk, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.builds[buildID]
	if !ok {
		return web.LogChunk{}, errs.E(errs.NotFound, "build %s not found", buildID)
	}
	l := f.logs[buildID+"/"+jobID]
	if off > int64(len(l)) {
		off = int64(len(l))
	}
	done := true
	for _, j := range b.Jobs {
		if j.ID == jobID {
			done = !j.Running()
		}
	}
	return web.LogChunk{Data: []byte(l[off:]), Next: int64(len(l)), Done: done}, nil
}

type fakeDeposit struct {
	sum      web.DepositSummary
	manifest map[string]web.ManifestEntry
	got      map[string]bool
	rights   []string
	grant    string
}

type fakeEscrow struct {
	mu       sync.Mutex
	deposits map[string]*fakeDeposit
	order    []string
	checkins int
}

func (e *fakeEscrow) Deposits(_ context.Context, p principal.Principal) ([]web.DepositSummary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []web.DepositSummary
	for i := len(e.order) - 1; i >= 0; i-- {
		out = append(out, e.deposits[e.order[i]].sum)
	}
	return out, nil
}

func (e *fakeEscrow) CreateDeposit(_ context.Context, p principal.Principal, d web.NewDeposit) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d.ProductID == "" {
		return "", errs.E(errs.Invalid, "product is required")
	}
	id := fmt.Sprintf("dep_%03d", len(e.order)+1)
	fd := &fakeDeposit{manifest: map[string]web.ManifestEntry{}, got: map[string]bool{}, rights: d.Rights, grant: d.Grant}
	pol := web.Policy{Kind: d.Policy.Kind, Every: d.Policy.Every, Grace: d.Policy.Grace, ReleaseAt: d.Policy.ReleaseAt, Quorum: d.Policy.Quorum, Trustees: len(d.Policy.Trustees)}
	if pol.Kind == "dead-man" {
		pol.LastCheckIn = t0
		pol.NextDeadline = t0.Add(pol.Every + pol.Grace)
	}
	fd.sum = web.DepositSummary{ID: id, ProductID: d.ProductID, State: "open", CreatedAt: t0, Policy: pol}
	for _, m := range d.Manifest {
		if len(m.SHA256) != 64 {
			return "", errs.E(errs.Invalid, "manifest %s: sha256 must be 64 hex digits", m.Path)
		}
		fd.manifest[m.Path] = m
		fd.sum.Files++
		fd.sum.Bytes += m.Size
	}
	e.deposits[id] = fd
	e.order = append(e.order, id)
	return id, nil
}

func (e *fakeEscrow) UploadFile(_ context.Context, p principal.Principal, id, path string, size int64, body io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "upload %s", path)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.deposits[id]
	if !ok {
		return errs.E(errs.NotFound, "deposit %s not found", id)
	}
	m, ok := d.manifest[path]
	if !ok {
		return errs.E(errs.Invalid, "%s is not in the manifest", path)
	}
	if n != m.Size || hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return errs.E(errs.Invalid, "%s: size or sha256 differs from the manifest", path)
	}
	d.got[path] = true
	return nil
}

func (e *fakeEscrow) CommitDeposit(_ context.Context, p principal.Principal, id string) (web.Receipt, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.deposits[id]
	if !ok {
		return web.Receipt{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	if len(d.got) != len(d.manifest) {
		return web.Receipt{}, errs.E(errs.Conflict, "deposit %s: %d of %d files uploaded", id, len(d.got), len(d.manifest))
	}
	r := web.Receipt{DepositID: id, ManifestSHA256: strings.Repeat("d", 64), SealedAt: t0, KeyID: "escrow-key-1", Signature: "c2ln", URL: "/files/receipt.json"}
	d.sum.State = "sealed"
	d.sum.Receipt = &r
	return r, nil
}

func (e *fakeEscrow) CheckIn(_ context.Context, p principal.Principal) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.checkins++
	return nil
}

type fakeAdmin struct {
	mu       sync.Mutex
	tokens   []web.TokenRow
	approved []string
}

func (a *fakeAdmin) Builders(context.Context) ([]web.BuilderRow, error) {
	return []web.BuilderRow{
		{Name: "alpha", Operator: "op-alpha", LastSeen: t0.Add(-2 * time.Minute), Capabilities: []string{"arm-none-eabi", "go"}, JobsDone: 12},
		{Name: "beta", Operator: "op-beta", LastSeen: t0.Add(-3 * time.Hour), Capabilities: []string{"arm-none-eabi"}, JobsDone: 9},
	}, nil
}

func (a *fakeAdmin) RootCustody(context.Context) (web.RootCustody, error) {
	return web.RootCustody{Version: 1, Threshold: 1, Keys: 1, SingleServerKey: true}, nil
}

func (a *fakeAdmin) Scrubs(context.Context) ([]web.ScrubRow, error) {
	return []web.ScrubRow{{At: t0.Add(-time.Hour), Checked: 42, Bad: 0, Detail: "all blobs match their digests"}}, nil
}

func (a *fakeAdmin) Approvals(context.Context, principal.Principal) ([]web.ApprovalRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return []web.ApprovalRow{{DepositID: "dep_quorum", ProductID: "acme-thermo-2", Vendor: "Acme", Quorum: 2, Trustees: 3, Approvals: append([]string(nil), a.approved...)}}, nil
}

func (a *fakeAdmin) Approve(_ context.Context, p principal.Principal, id string) error {
	if id != "dep_quorum" {
		return errs.E(errs.NotFound, "deposit %s not found", id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.approved = append(a.approved, p.Name)
	return nil
}

func (a *fakeAdmin) Tokens(context.Context) ([]web.TokenRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]web.TokenRow(nil), a.tokens...), nil
}

func (a *fakeAdmin) CreateToken(_ context.Context, p principal.Principal, t web.NewToken) (string, error) {
	if _, err := principal.ParseRole(t.Role); err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens = append(a.tokens, web.TokenRow{ID: fmt.Sprintf("tok_%d", len(a.tokens)+1), Name: t.Name, Role: t.Role, Org: t.Org, CreatedAt: t0})
	return "afl_new_secret_value", nil
}

func (a *fakeAdmin) RevokeToken(_ context.Context, p principal.Principal, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.tokens {
		if a.tokens[i].ID == id {
			a.tokens[i].Revoked = true
			return nil
		}
	}
	return errs.E(errs.NotFound, "token %s not found", id)
}

// demo is a site filled with demo data: one handed-over product with a
// reproducible stable release, one with a hostile name, a finished
// reproducible build and a finished unreproducible one.
type demo struct {
	catalog  *fakeCatalog
	farm     *fakeFarm
	escrow   *fakeEscrow
	admin    *fakeAdmin
	releases *fakeReleases
	site     *web.Site
	engine   *gin.Engine
	fw       []byte // the firmware bytes behind the demo download
}

func newDemo(tb testing.TB) *demo {
	tb.Helper()
	fw := []byte(strings.Repeat("afterlife demo firmware\n", 200))
	sum := sha256.Sum256(fw)
	d := &demo{
		catalog: &fakeCatalog{products: map[string]*web.ProductPage{}, owner: map[string]string{}, files: map[string][]byte{"thermo-2.0.1.bin": fw, "attestation.json": []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), "receipt.json": []byte(`{}`)}},
		farm:    &fakeFarm{builds: map[string]*web.BuildPage{}, steps: map[string]int{}, logs: map[string]string{}},
		escrow: &fakeEscrow{deposits: map[string]*fakeDeposit{
			// Released, browsed from the product page; not in order, so
			// no vendor lists it.
			"dep_acme1": {sum: web.DepositSummary{ID: "dep_acme1", ProductID: "acme-thermo-2", State: "released", CreatedAt: t0.AddDate(-1, 0, 0)},
				manifest: map[string]web.ManifestEntry{
					"docs/schematics.pdf": {Path: "docs/schematics.pdf", Size: 48213, SHA256: strings.Repeat("c", 64), Kind: "spec"},
					"src/main.c":          {Path: "src/main.c", Size: 912, SHA256: strings.Repeat("d", 64), Kind: "source"},
				}},
			"dep_quorum": {sum: web.DepositSummary{ID: "dep_quorum", ProductID: "acme-thermo-2", State: "sealed", CreatedAt: t0.AddDate(0, -1, 0)},
				manifest: map[string]web.ManifestEntry{"keys/signing.key": {Path: "keys/signing.key", Size: 32, SHA256: strings.Repeat("e", 64), Kind: "keys"}}},
		}},
		admin: &fakeAdmin{tokens: []web.TokenRow{{ID: "tok_1", Name: "acme-ci", Role: "vendor", Org: "acme", CreatedAt: t0}}},
		fw:    fw,
	}
	d.catalog.products["acme-thermo-2"] = &web.ProductPage{
		ID: "acme-thermo-2", Vendor: "Acme", Model: "Thermo 2", HardwareRevisions: []string{"rev-a", "rev-b"},
		DeviceIDs: []string{"acme:thermo2", "usb:1d6b:0104"}, Status: "handed-over", EOL: t0.AddDate(0, -2, 0),
		Fwupd: &web.FwupdRemote{GUIDs: []string{"4b12940f-0816-5de9-a3e0-67d3215823f5"}, Branch: "community", Remote: "afterlife",
			ConfURL: "/fwupd/afterlife.conf", CAURL: "/fwupd/afterlife-ca.pem"},
		Timeline: []web.TimelineEvent{
			{At: t0.AddDate(0, -3, 0), Title: "End of life announced", Detail: "Acme stops cloud service."},
			{At: t0.AddDate(0, -2, 0), Title: "The vendor's files were made public", Detail: "The vendor stopped confirming that it still supports the device."},
			{At: t0.AddDate(0, 0, -5), Title: "First community release", Detail: "2.0.1 on stable."},
		},
		Escrow: []web.EscrowState{
			{DepositID: "dep_acme1", Policy: web.Policy{Kind: "dead-man", Every: 30 * 24 * time.Hour, Grace: 7 * 24 * time.Hour, LastCheckIn: t0.AddDate(0, -4, 0), NextDeadline: t0.AddDate(0, -3, 7)}, Released: true, SealedAt: t0.AddDate(-1, 0, 0), ReleasedAt: t0.AddDate(0, -2, 0), URL: "/deposits/dep_acme1"},
			{DepositID: "dep_quorum", Policy: web.Policy{Kind: "quorum", Quorum: 2, Trustees: 3, Approvals: []string{"trustee-ana"}}, SealedAt: t0.AddDate(0, -1, 0)},
		},
		Channels: []web.Channel{
			{Name: "stable", Releases: []web.Release{{Version: "2.0.1", PublishedAt: t0.AddDate(0, 0, -5), Notes: "Local-only mode; no cloud needed.",
				Artifacts: []web.Artifact{{Name: "thermo-2.0.1.bin", Size: int64(len(fw)), SHA256: hex.EncodeToString(sum[:]), URL: "/files/thermo-2.0.1.bin"}},
				Badge:     web.Badge{Agree: 3, Total: 3, VerdictURL: "/builds/bld_good"}, BuildID: "bld_good",
				Rollout: "Phased rollout, stage 2 of 4: 10 % of devices",
				Stages: []web.RolloutStage{{Percent: 1, StartsAt: t0.AddDate(0, 0, -5), Reached: true}, {Percent: 10, StartsAt: t0.AddDate(0, 0, -4), Reached: true},
					{Percent: 50, StartsAt: t0.AddDate(0, 0, -2)}, {Percent: 100, StartsAt: t0}},
				ReportDays: []web.ReportDay{{Day: t0.AddDate(0, 0, -5), Success: 12, Failure: 1}, {Day: t0.AddDate(0, 0, -4), Success: 20, Failure: 1, RolledBack: 1},
					{Day: t0.AddDate(0, 0, -3), Success: 15}}}}},
			{Name: "testing", Releases: []web.Release{{Version: "2.1.0", PublishedAt: t0.AddDate(0, 0, -2), Badge: web.Badge{Agree: 3, Total: 3, VerdictURL: "/builds/bld_good"},
				Yanked: true, YankReason: "drains the battery within a day."}}},
		},
		InstallNotes:    "1. Hold the reset button for 5 seconds.\n2. Connect over USB.\n3. Run: afterlife device install acme-thermo-2",
		RiskNotes:       []string{"Flashing rev-a boards with 2.x firmware is not supported."},
		RecipeRiskNotes: []string{"2.x has not been tried on boards older than rev-b."},
		Reports:         web.ReportStats{Success: 47, Failure: 3},
		APIURL:          "/v1/products/acme-thermo-2",
		FeedURL:         "/v1/products/acme-thermo-2/feed.atom",
	}
	d.catalog.owner["acme-thermo-2"] = "acme"
	d.catalog.products["evil"] = &web.ProductPage{ID: "evil", Vendor: hostile, Model: hostile, DeviceIDs: []string{hostile}, Status: "sunset",
		InstallNotes: hostile, RiskNotes: []string{hostile}, Timeline: []web.TimelineEvent{{At: t0, Title: hostile, Detail: hostile}}}
	d.farm.builds["bld_good"] = &web.BuildPage{ID: "bld_good", Recipe: "thermo-fw", Repo: "https://git.example.org/thermo-fw.git", Ref: "v2.0.1", Commit: strings.Repeat("a", 40),
		Products: []string{"acme-thermo-2"}, SubmittedBy: "maintainer:maint", SubmittedAt: t0.AddDate(0, 0, -6), State: "reproducible",
		Verdict: &web.Verdict{Reproducible: true, Agree: 3, Total: 3, Required: 2, DecidedAt: t0.AddDate(0, 0, -5), Release: "2.0.1", ProductID: "acme-thermo-2"}}
	d.farm.builds["bld_bad"] = &web.BuildPage{ID: "bld_bad", Recipe: "thermo-fw", Repo: "https://git.example.org/thermo-fw.git", Ref: "main", Commit: strings.Repeat("b", 40),
		SubmittedBy: "maintainer:maint", SubmittedAt: t0.AddDate(0, 0, -1), State: "unreproducible",
		Verdict: &web.Verdict{Agree: 1, Total: 2, Required: 2, DecidedAt: t0, Differences: []web.Difference{{Path: "firmware.bin", Digests: []web.BuilderDigest{{Builder: "alpha", SHA256: strings.Repeat("1", 64)}, {Builder: "beta", SHA256: strings.Repeat("2", 64)}}}},
			Diffoscope: "--- alpha/firmware.bin\n+++ beta/firmware.bin\n@@ -0x40 @@\n- 2026-11-19\n+ 2026-11-20"}}
	for _, id := range []string{"bld_good", "bld_bad"} {
		b := d.farm.builds[id]
		for i, name := range []string{"alpha", "beta", "gamma"}[:b.Verdict.Total] {
			digest := strings.Repeat("ab", 32)
			if id == "bld_bad" {
				digest = strings.Repeat(fmt.Sprint(i+1), 64)
			}
			jid := fmt.Sprintf("job%d", i)
			b.Jobs = append(b.Jobs, web.Job{ID: jid, Builder: name, Operator: "op-" + name, Cold: i == 0, State: "done", StartedAt: t0, FinishedAt: t0.Add(time.Minute),
				Outputs: []web.Output{{Path: "firmware.bin", SHA256: digest, Size: 4096}}, AttestationURL: "/files/attestation.json"})
			d.farm.logs[id+"/"+jid] = "+ make firmware.bin\nok\n"
		}
	}
	d.releases = &fakeReleases{rows: []web.RolloutRow{
		{ReleaseID: "rel_new", Product: "acme-thermo-2", Version: "2.1.0", Channel: "stable", State: "active", Stage: 2, Stages: 4, Percent: 10},
		{ReleaseID: "rel_old", Product: "acme-thermo-2", Version: "2.0.1", Channel: "stable"},
	}}
	site, err := web.New(web.Deps{
		Catalog: d.catalog, Farm: d.farm, Escrow: d.escrow, Admin: d.admin, Releases: d.releases,
		Auth: fakeAuth{
			vendorToken:     {TokenID: "tok_v", Name: "acme-web", Role: principal.Vendor, Org: "acme"},
			maintainerToken: {TokenID: "tok_m", Name: "maint", Role: principal.Maintainer},
			adminToken:      {TokenID: "tok_a", Name: "root", Role: principal.Admin},
			trusteeToken:    {TokenID: "tok_t", Name: "trustee-bo", Role: principal.Trustee},
		},
	}, web.Options{
		CSRFSecret:  []byte("0123456789abcdef0123456789abcdef"),
		Feeds:       []web.FeedLink{{Title: "All releases", URL: "/v1/feeds/releases.atom"}, {Title: "Vendor files made public", URL: "/v1/feeds/escrow.atom"}},
		APIDocsURL:  "/v1/openapi.json",
		StatsAPIURL: "/v1/stats",
		Now:         func() time.Time { return t0 },
	})
	if err != nil {
		tb.Fatalf("web.New: %v", err)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	site.Register(e, nil)
	e.GET("/files/:name", func(c *gin.Context) {
		b, ok := d.catalog.files[c.Param("name")]
		if !ok {
			c.Status(http.StatusNotFound)
			return
		}
		c.Data(http.StatusOK, "application/octet-stream", b)
	})
	d.site, d.engine = site, e
	return d
}

// fakeReleases is the registry's rollouts: "maint" maintains every
// product, other maintainers none.
type fakeReleases struct {
	mu   sync.Mutex
	rows []web.RolloutRow
	last web.RolloutForm
}

func (r *fakeReleases) Rollouts(context.Context) ([]web.RolloutRow, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rows), nil
}

func (r *fakeReleases) Rollout(_ context.Context, p principal.Principal, id string, f web.RolloutForm) error {
	if p.Role != principal.Admin && p.Name != "maint" {
		return errs.E(errs.Forbidden, "%s is not a maintainer of the product", p.Name)
	}
	if f.Action != "start" && f.Reason == "" {
		return errs.E(errs.Invalid, "a rollout change needs a reason")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = f
	return nil
}

func (e *fakeEscrow) DepositFiles(_ context.Context, p principal.Principal, id string) (*web.DepositFiles, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.deposits[id]
	if !ok || (d.sum.State != "released" && p.Role != principal.Admin && p.Role != principal.Vendor) {
		return nil, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	out := &web.DepositFiles{ID: id, ProductID: d.sum.ProductID, Released: d.sum.State == "released", SealedAt: d.sum.CreatedAt, JSONURL: "/v1/deposits/" + id}
	if out.Released {
		out.ReleasedAt = t0.AddDate(0, -2, 0)
	}
	paths := make([]string, 0, len(d.manifest))
	for p := range d.manifest {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		m := d.manifest[p]
		out.Files = append(out.Files, web.DepositFile{Path: p, Kind: m.Kind, SHA256: m.SHA256, Size: m.Size, URL: "/v1/deposits/" + id + "/files/" + p})
	}
	return out, nil
}
