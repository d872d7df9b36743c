// Package web owns afterlife's HTML pages: server-rendered with
// html/template from templates embedded in the binary, with a small
// hand-written stylesheet and a few lines of plain JavaScript that only
// enhance pages which work without it. It gets its data through the small
// interfaces in views.go, which web/live implements with the parts' public
// APIs (and the tests with fakes); it runs no SQL and never imports the
// database.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

//go:embed templates static
var assets embed.FS

// Deps are the parts the pages read from and act on. Catalog, Farm and
// Auth are required; a nil Escrow or Admin hides that area (404).
type Deps struct {
	Catalog Catalog
	Farm    Farm
	Escrow  Escrow
	Admin   Admin
	// Releases, when set, gives the maintainer page its phased rollouts.
	Releases Releases
	Auth     Authenticator
	// Lifecycle, when set, lets vendors declare support periods and
	// lists products ending without a handover plan.
	Lifecycle Lifecycle
	// Products, when set, lets vendors edit and retire their products.
	Products ProductEditor
	Log      *slog.Logger
}

// Options configure the site.
type Options struct {
	// CSRFSecret keys the HMAC that derives per-session CSRF tokens; at
	// least 32 bytes, and the same on every replica.
	CSRFSecret []byte
	// SecureCookies marks cookies Secure even when the request did not
	// arrive over TLS (behind a TLS-terminating proxy).
	SecureCookies bool
	// Feeds are Atom feeds linked from every page.
	Feeds []FeedLink
	// APIDocsURL links the machine-readable API description (OpenAPI).
	APIDocsURL string
	// StatsAPIURL is the JSON of the home page counts.
	StatsAPIURL string
	// FarmActivityURL is the JSON of the admin page's farm charts.
	FarmActivityURL string
	// PublicURL is how devices and owners reach this registry (e.g.
	// https://registry.example); the product page's update steps name it.
	// Empty: the scheme and host of each request.
	PublicURL string
	// MaxUpload bounds one uploaded deposit file through the browser
	// (default 1 GiB).
	MaxUpload int64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// FeedLink is an Atom feed.
type FeedLink struct {
	Title string
	URL   string
}

// Site serves the pages.
type Site struct {
	deps  Deps
	opts  Options
	log   *slog.Logger
	pages map[string]*template.Template
	bufs  sync.Pool
	stat  fs.FS
}

// New parses the embedded templates and returns the site.
func New(deps Deps, opts Options) (*Site, error) {
	if deps.Catalog == nil || deps.Farm == nil || deps.Auth == nil {
		return nil, errs.E(errs.Invalid, "web: Catalog, Farm and Auth are required")
	}
	if len(opts.CSRFSecret) < 32 {
		return nil, errs.E(errs.Invalid, "web: CSRFSecret must be at least 32 bytes")
	}
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = 1 << 30
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Site{deps: deps, opts: opts, log: log, pages: map[string]*template.Template{}}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	if err := s.parse(); err != nil {
		return nil, err
	}
	st, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static assets: %w", err)
	}
	s.stat = st
	return s, nil
}

// parse builds one template set per page: the layout and partials, plus
// the page's own file, which defines "title" and "content".
func (s *Site) parse() error {
	base, err := template.New("base").Funcs(s.funcs()).ParseFS(assets, "templates/layout.tmpl", "templates/partials.tmpl")
	if err != nil {
		return fmt.Errorf("web: parse layout: %w", err)
	}
	pages, err := fs.Glob(assets, "templates/*/*.tmpl")
	if err != nil {
		return fmt.Errorf("web: list templates: %w", err)
	}
	for _, p := range pages {
		t, err := base.Clone()
		if err != nil {
			return fmt.Errorf("web: clone layout: %w", err)
		}
		if _, err := t.ParseFS(assets, p); err != nil {
			return fmt.Errorf("web: parse %s: %w", p, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".tmpl")
		s.pages[name] = t
	}
	return nil
}

// Declarer records who may call each page; *httpapi.API is one. The
// pages enforce their rules themselves (require); the declarations let the
// access test check every page against what it says.
type Declarer interface {
	Declare(method, path string, op httpapi.Op)
}

// Register mounts the pages on e and declares each one to d (nil: not
// declared).
func (s *Site) Register(e *gin.Engine, d Declarer) {
	g := e.Group("/", s.headers, s.identify)
	page := func(g *gin.RouterGroup, method, path string, op httpapi.Op, h gin.HandlerFunc) {
		g.Handle(method, path, h)
		if d != nil {
			op.Page, op.Tag = true, "pages"
			full := strings.TrimSuffix(g.BasePath(), "/") + path
			if path == "" {
				full = g.BasePath()
			}
			d.Declare(method, full, op)
		}
	}
	public := httpapi.Op{Public: true}
	roles := func(summary string, scope httpapi.Scope, rs ...principal.Role) httpapi.Op {
		return httpapi.Op{Summary: summary, Roles: rs, Scope: scope}
	}
	g.StaticFS("/static", http.FS(s.stat))
	if d != nil {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			d.Declare(m, "/static/*filepath", httpapi.Op{Summary: "Stylesheet, scripts and images", Public: true, Page: true, Tag: "pages"})
		}
	}
	with := func(op httpapi.Op, summary string) httpapi.Op { op.Summary = summary; return op }
	page(g, http.MethodGet, "/", with(public, "Home: counts and recent products"), s.home)
	page(g, http.MethodGet, "/search", with(public, "Search products"), s.search)
	page(g, http.MethodGet, "/products/:id", with(public, "A product: status, released escrow, releases"), s.product)
	page(g, http.MethodGet, "/builds/:id", with(public, "A build: jobs, verdict, differences"), s.build)
	if s.deps.Escrow != nil {
		files := with(public, "A deposit's file list (sealed: its vendor and admins)")
		files.Sealed = &httpapi.Sealed{Roles: []principal.Role{principal.Vendor}}
		page(g, http.MethodGet, "/deposits/:id", files, s.depositFiles)
	}
	page(g, http.MethodGet, "/builds/:id/jobs/:job/log", with(public, "A job's log: as text from ?offset=N (X-Log-Next, X-Log-Done), as a page when a browser opens it without one"), s.jobLog)
	page(g, http.MethodGet, "/login", with(public, "The login form"), s.loginForm)
	page(g, http.MethodPost, "/login", with(public, "Log in with an API token"), s.login)
	page(g, http.MethodPost, "/logout", with(public, "Log out"), s.logout)

	vendor := []principal.Role{principal.Vendor}
	v := g.Group("/vendor", s.require(vendor...))
	page(v, http.MethodGet, "", roles("The vendor's products and deposits", "", vendor...), s.vendorHome)
	page(v, http.MethodPost, "/products", roles("Register a product for the vendor's own org", "", vendor...), s.vendorCreateProduct)
	page(v, http.MethodGet, "/deposits/new", roles("The deposit form", "", vendor...), s.vendorDepositForm)
	page(v, http.MethodPost, "/deposits", roles("Start a deposit for a product of the vendor's org", httpapi.OwnOrg, vendor...), s.vendorCreateDeposit)
	page(v, http.MethodPut, "/deposits/:id/files/*path", roles("Upload one file of the vendor's deposit", httpapi.OwnOrg, vendor...), s.vendorUploadFile)
	page(v, http.MethodPost, "/deposits/:id/commit", roles("Seal the vendor's deposit", httpapi.OwnOrg, vendor...), s.vendorCommitDeposit)
	page(v, http.MethodPost, "/products/:id/edit", roles("Correct a product of the vendor's own org (model, revisions, device ids, risk notes)", httpapi.OwnOrg, vendor...), s.vendorEditProduct)
	page(v, http.MethodPost, "/products/:id/retire", roles("Retire a product of the vendor's own org registered by mistake (refused while it has a release or a deposit)", httpapi.OwnOrg, vendor...), s.vendorRetireProduct)
	page(v, http.MethodPost, "/products/:id/support", roles("Declare the support period of a product of the vendor's own org", httpapi.OwnOrg, vendor...), s.vendorDeclareSupport)
	page(v, http.MethodPost, "/checkin", roles("Check in for the vendor's own org", "", vendor...), s.vendorCheckIn)

	maint := []principal.Role{principal.Maintainer}
	m := g.Group("/maintainer", s.require(maint...))
	page(m, http.MethodGet, "", roles("The maintainer's builds", "", maint...), s.maintainerHome)
	page(m, http.MethodPost, "/recipes", roles("Submit a recipe", "", maint...), s.maintainerSubmit)
	page(m, http.MethodPost, "/releases/:id/rollout", roles("Start, pause, resume or abort a release's phased rollout (a maintainer of the product, or admin)", httpapi.Granted, maint...), s.maintainerRollout)

	a := g.Group("/admin", s.require(principal.Admin, principal.Trustee))
	page(a, http.MethodGet, "", roles("Approvals waiting (trustees: those naming them); builders, scrubs and tokens (admins)", "", principal.Trustee), s.adminHome)
	page(a, http.MethodPost, "/approvals/:id", roles("Explains how a trustee approves (with their own key)", "", principal.Trustee), s.adminApprove)
	page(a, http.MethodPost, "/tokens", roles("Create a token", "", principal.Admin), s.adminCreateToken)
	page(a, http.MethodPost, "/tokens/:id/revoke", roles("Revoke a token", "", principal.Admin), s.adminRevokeToken)
}

// headers sets security headers on every page: a strict content security
// policy (no inline script or style), no framing, no sniffing.
func (s *Site) headers(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.Next()
}

// page is what every template receives.
type page struct {
	Title    string
	User     principal.Principal
	LoggedIn bool
	CSRF     string
	Feeds    []FeedLink
	APIURL   string
	APIDocs  string
	Path     string
	Flash    string
	Error    string
	Data     any
}

// registryURL is the address devices and owners use for this registry:
// Options.PublicURL, or the scheme and host the request came to.
func (s *Site) registryURL(c *gin.Context) string {
	if s.opts.PublicURL != "" {
		return s.opts.PublicURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

func (s *Site) newPage(c *gin.Context, title string, data any) *page {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(principal.Principal)
	return &page{
		Title:    title,
		User:     pr,
		LoggedIn: !pr.IsAnonymous(),
		CSRF:     s.csrfToken(c),
		Feeds:    s.opts.Feeds,
		APIDocs:  s.opts.APIDocsURL,
		Path:     c.Request.URL.Path,
		Flash:    c.Query("done"),
		Data:     data,
	}
}

// render executes a page (or one of its named fragments) into a pooled
// buffer first, so a template error never leaves half a page behind.
func (s *Site) render(c *gin.Context, status int, name, fragment string, p *page) {
	t, ok := s.pages[name]
	if !ok {
		s.fail(c, errs.E(errs.Internal, "web: no template %s", name))
		return
	}
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer s.bufs.Put(buf)
	if fragment == "" {
		fragment = "layout"
	}
	if err := t.ExecuteTemplate(buf, fragment, p); err != nil {
		s.log.ErrorContext(c.Request.Context(), "web: render", "page", name, "err", err)
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// fail renders an error page whose status follows the error's kind.
func (s *Site) fail(c *gin.Context, err error) {
	k := errs.KindOf(err)
	if errors.Is(err, context.Canceled) {
		c.Abort()
		return
	}
	if k == errs.Internal {
		s.log.ErrorContext(c.Request.Context(), "web: request failed", "path", c.Request.URL.Path, "err", err)
	}
	status := k.HTTPStatus()
	title := http.StatusText(status)
	p := s.newPage(c, title, nil)
	p.Error = errs.Message(err)
	c.Abort()
	s.render(c, status, "error/error", "", p)
}
