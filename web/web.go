// Package web owns afterlife's HTML pages: server-rendered with
// html/template from templates embedded in the binary, with a small
// hand-written stylesheet and a few lines of plain JavaScript that only
// enhance pages which work without it. It gets its data through the small
// interfaces in views.go and must not import escrow, registry, builder or
// recipes, nor run SQL: cmd/afterlife adapts those parts to the interfaces.
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

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/errs"
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
	Auth    Authenticator
	Log     *slog.Logger
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

// Register mounts the pages on e.
func (s *Site) Register(e *gin.Engine) {
	g := e.Group("/", s.headers, s.identify)
	g.StaticFS("/static", http.FS(s.stat))
	g.GET("/", s.home)
	g.GET("/search", s.search)
	g.GET("/products/:id", s.product)
	g.GET("/builds/:id", s.build)
	g.GET("/builds/:id/jobs/:job/log", s.jobLog)
	g.GET("/login", s.loginForm)
	g.POST("/login", s.login)
	g.POST("/logout", s.logout)

	v := g.Group("/vendor", s.require(auth.Vendor))
	v.GET("", s.vendorHome)
	v.POST("/products", s.vendorCreateProduct)
	v.GET("/deposits/new", s.vendorDepositForm)
	v.POST("/deposits", s.vendorCreateDeposit)
	v.PUT("/deposits/:id/files/*path", s.vendorUploadFile)
	v.POST("/deposits/:id/commit", s.vendorCommitDeposit)
	v.POST("/checkin", s.vendorCheckIn)

	m := g.Group("/maintainer", s.require(auth.Maintainer))
	m.GET("", s.maintainerHome)
	m.POST("/recipes", s.maintainerSubmit)

	a := g.Group("/admin", s.require(auth.Admin, auth.Trustee))
	a.GET("", s.adminHome)
	a.POST("/approvals/:id", s.adminApprove)
	a.POST("/tokens", s.adminCreateToken)
	a.POST("/tokens/:id/revoke", s.adminRevokeToken)
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
	User     auth.Principal
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

func (s *Site) newPage(c *gin.Context, title string, data any) *page {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(auth.Principal)
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
