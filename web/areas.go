package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// flashes are the fixed confirmations a redirect may ask for (?done=key);
// never user text, so a crafted link cannot put words on our pages.
var flashes = map[string]string{
	"product":  "Product registered.",
	"deposit":  "Deposit sealed. Its receipt is below.",
	"checkin":  "Checked in. The dead-man deadlines moved forward.",
	"support":  "Support period declared. It is published, signed, on the product page.",
	"edited":   "Product changed. The change is recorded in its history.",
	"retired":  "Product retired. Its device ids are free for the right product.",
	"approved": "Approval recorded.",
	"revoked":  "Token revoked.",
	"rollout":  "Rollout changed.",
}

func (s *Site) pageWithFlash(c *gin.Context, title string, data any) *page {
	p := s.newPage(c, title, data)
	p.Flash = flashes[c.Query("done")]
	return p
}

func redirectDone(c *gin.Context, path, key string) {
	c.Redirect(http.StatusSeeOther, path+"?done="+url.QueryEscape(key))
}

// formError shows caller mistakes (Invalid, Conflict, NotFound) on the
// form's page; anything else becomes the error page.
func formError(err error) bool {
	switch errs.KindOf(err) {
	case errs.Invalid, errs.Conflict, errs.NotFound, errs.TooLarge:
		return true
	}
	return false
}

// --- vendor area ---

type vendorData struct {
	Products     []ProductSummary
	Deposits     []DepositSummary
	NextDeadline time.Time // earliest dead-man deadline across deposits
	Form         NewProductForm
	Lifecycle    bool                      // support periods can be declared
	EndingSoon   map[string]*EndingSoonRow // by product id: near the end of security support, nothing deposited
	Editable     bool                      // products can be edited and retired here
	Open         string                    // the product whose edit form a refusal is shown for
}

// NewProductForm keeps what the vendor typed when a form is shown again.
type NewProductForm struct {
	Model, Revisions, DeviceIDs, EOL string
	Support                          SupportDates
}

// vendorRefused answers a vendor form the server refused: the vendor page
// again with the refusal, keep restoring what the form had (nil: nothing),
// or the error page when err is not the form's fault.
func (s *Site) vendorRefused(c *gin.Context, err error, keep func(*vendorData)) {
	if !formError(err) {
		s.fail(c, err)
		return
	}
	d, derr := s.vendorData(c)
	if derr != nil {
		s.fail(c, derr)
		return
	}
	if keep != nil {
		keep(&d)
	}
	p := s.newPage(c, "Vendor", d)
	p.Error = errs.Message(err)
	s.render(c, http.StatusBadRequest, "vendor/index", "", p)
}

func (s *Site) vendorData(c *gin.Context) (vendorData, error) {
	if s.deps.Escrow == nil {
		return vendorData{}, errs.E(errs.NotFound, "the vendor area is not enabled")
	}
	ctx := c.Request.Context()
	p := caller(c)
	prods, err := s.deps.Catalog.VendorProducts(ctx, p.Org)
	if err != nil {
		return vendorData{}, err
	}
	deps, err := s.deps.Escrow.Deposits(ctx, p)
	if err != nil {
		return vendorData{}, err
	}
	d := vendorData{Products: prods, Deposits: deps, Lifecycle: s.deps.Lifecycle != nil, Editable: s.deps.Products != nil}
	if s.deps.Lifecycle != nil {
		soon, err := s.deps.Lifecycle.EndingSoon(ctx, p)
		if err != nil {
			return vendorData{}, err
		}
		d.EndingSoon = map[string]*EndingSoonRow{}
		for _, r := range soon {
			d.EndingSoon[r.ProductID] = &r
		}
	}
	for _, dep := range deps {
		if dep.Policy.Kind == "dead-man" && dep.State == "sealed" && !dep.Policy.NextDeadline.IsZero() {
			if d.NextDeadline.IsZero() || dep.Policy.NextDeadline.Before(d.NextDeadline) {
				d.NextDeadline = dep.Policy.NextDeadline
			}
		}
	}
	return d, nil
}

func (s *Site) vendorHome(c *gin.Context) {
	d, err := s.vendorData(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "vendor/index", "", s.pageWithFlash(c, "Vendor", d))
}

// splitList splits a free-text list on commas, spaces and newlines.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// splitLines splits a field with one entry per line: device ids, since a
// device-tree id (dt:acme,cam200) holds a comma.
func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (s *Site) vendorCreateProduct(c *gin.Context) {
	f := NewProductForm{
		Model:     strings.TrimSpace(c.PostForm("model")),
		Revisions: c.PostForm("revisions"),
		DeviceIDs: c.PostForm("device_ids"),
		EOL:       strings.TrimSpace(c.PostForm("eol")),
		Support:   supportForm(c),
	}
	np := NewProduct{Model: f.Model, HardwareRevisions: splitList(f.Revisions), DeviceIDs: splitLines(f.DeviceIDs), Support: f.Support}
	var err error
	if f.Model == "" {
		err = errs.E(errs.Invalid, "the model name is required")
	} else if f.EOL != "" {
		np.EOL, err = time.Parse("2006-01-02", f.EOL)
		if err != nil {
			err = errs.E(errs.Invalid, "the end-of-life date must look like 2027-01-31")
		}
	}
	if err == nil {
		_, err = s.deps.Catalog.CreateProduct(c.Request.Context(), caller(c), np)
	}
	if err != nil {
		s.vendorRefused(c, err, func(d *vendorData) { d.Form = f })
		return
	}
	redirectDone(c, "/vendor", "product")
}

func (s *Site) vendorDepositForm(c *gin.Context) {
	s.depositFormPage(c, http.StatusOK, c.Query("product"), "")
}

// depositFormPage shows the deposit form for product, with msg as its error.
func (s *Site) depositFormPage(c *gin.Context, status int, product, msg string) {
	d, err := s.vendorData(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p := s.newPage(c, "New deposit", gin.H{"Products": d.Products, "Selected": product, "MaxUpload": s.opts.MaxUpload})
	p.Error = msg
	s.render(c, status, "vendor/deposit", "", p)
}

// The three deposit endpoints below are called by static/deposit.js with
// the CSRF header; they mirror the API's deposit protocol but act with the
// session's principal, so the API token never reaches page scripts.

type depositRequest struct {
	Product  string          `json:"product"`
	Policy   PolicySpec      `json:"policy"`
	Manifest []ManifestEntry `json:"manifest"`
	Rights   []string        `json:"rights"` // PATTERN=CLASS
	Grant    string          `json:"grant"`
}

func jsonError(c *gin.Context, err error) {
	c.AbortWithStatusJSON(errs.KindOf(err).HTTPStatus(), gin.H{"error": gin.H{"code": errs.KindOf(err).String(), "message": errs.Message(err)}})
}

func (s *Site) vendorCreateDeposit(c *gin.Context) {
	if s.deps.Escrow == nil {
		jsonError(c, errs.E(errs.NotFound, "the vendor area is not enabled"))
		return
	}
	if c.ContentType() == "multipart/form-data" {
		s.vendorDepositWithoutScript(c)
		return
	}
	var req depositRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(c, errs.Wrap(errs.Invalid, err, "the deposit request is not valid JSON"))
		return
	}
	if len(req.Manifest) == 0 {
		jsonError(c, errs.E(errs.Invalid, "choose at least one file"))
		return
	}
	choice, err := req.Policy.choice()
	if err != nil {
		jsonError(c, err)
		return
	}
	id, err := s.deps.Escrow.CreateDeposit(c.Request.Context(), caller(c), NewDeposit{ProductID: req.Product, Policy: choice, Manifest: req.Manifest, Rights: req.Rights, Grant: req.Grant})
	if err != nil {
		jsonError(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": id})
}

func (s *Site) vendorUploadFile(c *gin.Context) {
	if s.deps.Escrow == nil {
		jsonError(c, errs.E(errs.NotFound, "the vendor area is not enabled"))
		return
	}
	size := c.Request.ContentLength
	if size < 0 {
		jsonError(c, errs.E(errs.Invalid, "Content-Length is required"))
		return
	}
	if size > s.opts.MaxUpload {
		jsonError(c, errs.E(errs.TooLarge, "files over %d bytes must be deposited with the command-line client", s.opts.MaxUpload))
		return
	}
	path := strings.TrimPrefix(c.Param("path"), "/")
	body := http.MaxBytesReader(c.Writer, c.Request.Body, size)
	if err := s.deps.Escrow.UploadFile(c.Request.Context(), caller(c), c.Param("id"), path, size, body); err != nil {
		jsonError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Site) vendorCommitDeposit(c *gin.Context) {
	if s.deps.Escrow == nil {
		jsonError(c, errs.E(errs.NotFound, "the vendor area is not enabled"))
		return
	}
	r, err := s.deps.Escrow.CommitDeposit(c.Request.Context(), caller(c), c.Param("id"))
	if err != nil {
		jsonError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"receipt": r, "next": "/vendor?done=deposit#" + r.DepositID})
}

func (s *Site) vendorCheckIn(c *gin.Context) {
	if s.deps.Escrow == nil {
		s.fail(c, errs.E(errs.NotFound, "the vendor area is not enabled"))
		return
	}
	if err := s.deps.Escrow.CheckIn(c.Request.Context(), caller(c)); err != nil {
		s.fail(c, err)
		return
	}
	redirectDone(c, "/vendor", "checkin")
}

// --- maintainer area ---

type maintainerData struct {
	Builds   []BuildSummary
	Form     RecipeSubmission
	Rollouts []RolloutRow
	HasRolls bool // the rollout section is enabled
}

func (s *Site) maintainerHome(c *gin.Context) {
	s.maintainerPage(c, http.StatusOK, RecipeSubmission{}, "")
}

func (s *Site) maintainerPage(c *gin.Context, status int, f RecipeSubmission, msg string) {
	p := caller(c)
	filter := BuildFilter{Submitter: p.Actor(), Limit: 50}
	builds, err := s.deps.Farm.Builds(c.Request.Context(), filter)
	if err != nil {
		s.fail(c, err)
		return
	}
	d := maintainerData{Builds: builds, Form: f, HasRolls: s.deps.Releases != nil}
	if d.HasRolls {
		if d.Rollouts, err = s.deps.Releases.Rollouts(c.Request.Context()); err != nil {
			s.fail(c, err)
			return
		}
	}
	pg := s.pageWithFlash(c, "Maintainer", d)
	pg.Error = msg
	s.render(c, status, "maintainer/index", "", pg)
}

func (s *Site) maintainerRollout(c *gin.Context) {
	if s.deps.Releases == nil {
		s.fail(c, errs.E(errs.NotFound, "rollouts are not enabled"))
		return
	}
	f := RolloutForm{Action: c.PostForm("action"), Stages: strings.TrimSpace(c.PostForm("stages")), Reason: strings.TrimSpace(c.PostForm("reason"))}
	var err error
	if h := strings.TrimSpace(c.PostForm("dwell_hours")); h != "" {
		n, perr := strconv.ParseFloat(h, 64)
		if perr != nil || n < 0 {
			err = errs.E(errs.Invalid, "the dwell time is a number of hours")
		}
		f.Dwell = time.Duration(n * float64(time.Hour))
	}
	if err == nil {
		err = s.deps.Releases.Rollout(c.Request.Context(), caller(c), c.Param("id"), f)
	}
	if err != nil {
		if !formError(err) {
			s.fail(c, err)
			return
		}
		s.maintainerPage(c, http.StatusBadRequest, RecipeSubmission{}, errs.Message(err))
		return
	}
	redirectDone(c, "/maintainer#rollouts", "rollout")
}

func (s *Site) maintainerSubmit(c *gin.Context) {
	f := RecipeSubmission{
		Repo: strings.TrimSpace(c.PostForm("repo")),
		Ref:  strings.TrimSpace(c.PostForm("ref")),
		Path: strings.TrimSpace(c.PostForm("path")),
	}
	if f.Repo == "" || f.Ref == "" {
		s.maintainerPage(c, http.StatusBadRequest, f, "The repository URL and the ref are required.")
		return
	}
	id, err := s.deps.Farm.SubmitRecipe(c.Request.Context(), caller(c), f)
	if err != nil {
		if !formError(err) {
			s.fail(c, err)
			return
		}
		s.maintainerPage(c, http.StatusBadRequest, f, errs.Message(err))
		return
	}
	c.Redirect(http.StatusSeeOther, "/builds/"+url.PathEscape(id))
}

// --- admin area ---

type adminData struct {
	IsAdmin   bool
	Builders  []BuilderRow
	Scrubs    []ScrubRow
	Root      RootCustody
	Approvals []ApprovalRow
	Tokens    []TokenRow
	// EndingSoon are the products near the end of security support with
	// nothing in escrow (nil: not enabled).
	EndingSoon []EndingSoonRow
	// Activity is the farm's recent work, charted for admins (nil for
	// trustees).
	Activity  *FarmActivity
	NewSecret string // shown once after creating a token
	NewName   string
	Roles     []principal.Role
}

func (s *Site) adminData(c *gin.Context) (adminData, error) {
	if s.deps.Admin == nil {
		return adminData{}, errs.E(errs.NotFound, "the admin area is not enabled")
	}
	ctx := c.Request.Context()
	p := caller(c)
	d := adminData{IsAdmin: p.Is(principal.Admin), Roles: []principal.Role{principal.Vendor, principal.Maintainer, principal.Builder, principal.Trustee, principal.Admin}}
	var err error
	if d.Approvals, err = s.deps.Admin.Approvals(ctx, p); err != nil {
		return d, err
	}
	if !d.IsAdmin {
		return d, nil
	}
	if d.Builders, err = s.deps.Admin.Builders(ctx); err != nil {
		return d, err
	}
	sort.Slice(d.Builders, func(i, j int) bool { return d.Builders[i].LastSeen.After(d.Builders[j].LastSeen) })
	if d.Scrubs, err = s.deps.Admin.Scrubs(ctx); err != nil {
		return d, err
	}
	if d.Root, err = s.deps.Admin.RootCustody(ctx); err != nil {
		return d, err
	}
	if d.Tokens, err = s.deps.Admin.Tokens(ctx); err != nil {
		return d, err
	}
	act, err := s.deps.Farm.Activity(ctx)
	if err != nil {
		return d, err
	}
	d.Activity = &act
	if s.deps.Lifecycle != nil {
		if d.EndingSoon, err = s.deps.Lifecycle.EndingSoon(ctx, p); err != nil {
			return d, err
		}
		if d.EndingSoon == nil {
			d.EndingSoon = []EndingSoonRow{}
		}
	}
	return d, nil
}

func (s *Site) adminHome(c *gin.Context) {
	d, err := s.adminData(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p := s.pageWithFlash(c, "Admin", d)
	if d.IsAdmin {
		p.APIURL = s.opts.FarmActivityURL
	}
	s.render(c, http.StatusOK, "admin/index", "", p)
}

func (s *Site) adminApprove(c *gin.Context) {
	if s.deps.Admin == nil {
		s.fail(c, errs.E(errs.NotFound, "the admin area is not enabled"))
		return
	}
	if err := s.deps.Admin.Approve(c.Request.Context(), caller(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	redirectDone(c, "/admin", "approved")
}

func (s *Site) adminCreateToken(c *gin.Context) {
	if !caller(c).Is(principal.Admin) {
		s.fail(c, errs.E(errs.Forbidden, "only admins manage tokens"))
		return
	}
	d, err := s.adminData(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	nt := NewToken{Name: strings.TrimSpace(c.PostForm("name")), Role: c.PostForm("role"), Org: strings.TrimSpace(c.PostForm("org"))}
	if days := c.PostForm("days"); days != "" {
		n, perr := strconv.Atoi(days)
		if perr != nil || n < 0 {
			err = errs.E(errs.Invalid, "days must be a whole number")
		}
		nt.TTL = time.Duration(n) * 24 * time.Hour
	}
	if err == nil && nt.Name == "" {
		err = errs.E(errs.Invalid, "the token needs a name")
	}
	var secret string
	if err == nil {
		secret, err = s.deps.Admin.CreateToken(c.Request.Context(), caller(c), nt)
	}
	status := http.StatusOK
	p := s.newPage(c, "Admin", nil)
	if err != nil {
		if !formError(err) {
			s.fail(c, err)
			return
		}
		p.Error = errs.Message(err)
		status = http.StatusBadRequest
	} else {
		d.NewSecret, d.NewName = secret, nt.Name
		if d.Tokens, err = s.deps.Admin.Tokens(c.Request.Context()); err != nil {
			s.fail(c, err)
			return
		}
	}
	p.Data = d
	s.render(c, status, "admin/index", "", p)
}

func (s *Site) adminRevokeToken(c *gin.Context) {
	if !caller(c).Is(principal.Admin) {
		s.fail(c, errs.E(errs.Forbidden, "only admins manage tokens"))
		return
	}
	if s.deps.Admin == nil {
		s.fail(c, errs.E(errs.NotFound, "the admin area is not enabled"))
		return
	}
	if err := s.deps.Admin.RevokeToken(c.Request.Context(), caller(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	redirectDone(c, "/admin", "revoked")
}
