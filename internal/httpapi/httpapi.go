// Package httpapi is afterlife's HTTP edge: the gin engine with request ids,
// one access-log line per request, panic recovery, caller identification,
// per-route access declarations (who may call each route, pages included)
// with role checks, body limits, 405 for a wrong method, one JSON error
// shape, and an OpenAPI 3.1 document generated from the routes as they
// are registered. A hot public route may also have a fast handler that
// API.ServeHTTP runs before gin (Router.Fast): it counts its answers in
// the same metrics and logs one in FastLogEvery, and hands everything
// else, errors included, to the route's regular handler.
// Parts register their routes through Router and return errors with an
// errs kind; they never pick status codes for errors by hand.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Authenticator resolves a bearer token.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (principal.Principal, error)
}

// Options configure an API.
type Options struct {
	Auth    Authenticator
	Logger  *slog.Logger
	Title   string
	Version string
	// Metrics, when set, receives request counts and latencies.
	Metrics prometheus.Registerer
	// QuietPaths are route patterns logged at debug level only (hot paths
	// such as the device update check).
	QuietPaths []string
	// OwnAuthPaths are paths whose handlers read the Authorization header
	// themselves (/metrics with --metrics-token-file): the API's tokens
	// are not looked up there.
	OwnAuthPaths []string
}

// API owns the engine and the route table.
type API struct {
	engine *gin.Engine
	opts   Options
	log    *slog.Logger

	mu     sync.Mutex
	routes []route
	fast   map[string]*fastRoute // by path; written while routes are registered

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	quiet    map[string]bool
}

type route struct {
	method, path string
	op           Op
}

// Op describes one operation: what it is for, who may call it, how large a
// body it takes.
//
// Every route declares who may call it: Public, or Roles (optionally
// narrowed by Scope), and Sealed where the resource can be private. The
// access test calls every route as every role, in the resource owner's org
// and in another, and fails on a route that declares nothing or answers
// against its declaration.
type Op struct {
	Summary string
	// Public: anyone may call the route, anonymous callers included.
	Public bool
	// Roles that may call the route; admin always may. httpapi enforces
	// them before the handler runs (401 without a token, 403 otherwise).
	Roles []principal.Role
	// Scope narrows Roles to callers related to the resource the path
	// names. The part that owns the resource enforces it.
	Scope Scope
	// Sealed, for resources that can be private (a sealed deposit), says
	// who may call the route on such a resource; everyone else gets 404,
	// so its existence does not leak. The owning part enforces it.
	Sealed *Sealed
	// MaxBody bounds the request body: 0 means 1 MiB, -1 means unbounded
	// (streaming uploads enforce their own limits).
	MaxBody int64
	// Tag groups operations in the OpenAPI document.
	Tag string
	// Stream marks responses that are streamed (long polls, downloads).
	Stream bool
	// Page marks a server-rendered page or asset (not a JSON API route).
	Page bool
}

// Scope is the relation a caller must have with the resource in the path.
type Scope string

const (
	// AnyResource: any caller with one of Roles.
	AnyResource Scope = ""
	// OwnOrg: callers of the org that owns the resource (a product's or a
	// deposit's vendor, the org in the path); admins always.
	OwnOrg Scope = "own-org"
	// Granted: maintainers an admin granted the resource's product (by
	// token name or org); admins always.
	Granted Scope = "granted-maintainer"
	// OwnBuilder: callers whose token has a registered builder.
	OwnBuilder Scope = "own-builder"
	// LeaseHolder: the builder that holds the lease of the job in the
	// path; others get 409 (the agent drops the job) or 404.
	LeaseHolder Scope = "lease-holder"
	// NamedTrustee: the trustees the resource names (a quorum policy's);
	// admins act through their own trustee tokens.
	NamedTrustee Scope = "named-trustee"
)

// Sealed says who may reach a resource while it is private.
type Sealed struct {
	// Roles of the owning org that see it (admins always).
	Roles []principal.Role
	// NamedTrustee: the trustees the resource names see its approval
	// state, never its content.
	NamedTrustee bool
}

// Declared reports whether op says who may call the route.
func (op Op) Declared() bool { return op.Public != (len(op.Roles) > 0) }

// Who is the x-roles list of the OpenAPI document: "public", or the roles
// that may call the route with admin last, each once.
func (op Op) Who() []string { return who(op.Public, op.Roles) }

func who(public bool, roles []principal.Role) []string {
	if public {
		return []string{"public"}
	}
	out := []string{}
	for _, r := range roles {
		if r != principal.Admin && !slices.Contains(out, string(r)) {
			out = append(out, string(r))
		}
	}
	return append(out, string(principal.Admin))
}

// HandlerFunc handles a request and returns an error with a kind, or nil
// once it has written the response.
type HandlerFunc func(c *gin.Context) error

const (
	principalKey = "afterlife.principal"
	requestIDKey = "afterlife.request_id"
	// DefaultMaxBody bounds request bodies of routes that say nothing.
	DefaultMaxBody = 1 << 20
)

// New builds the engine with afterlife's middleware.
func New(opts Options) *API {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.ContextWithFallback = true
	// A known path with another method is 405 with an Allow header
	// (RFC 9110), not 404.
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	// Only a proxy on this machine may say who the client is; otherwise
	// anyone could spoof X-Forwarded-For around per-client limits.
	_ = e.SetTrustedProxies([]string{"127.0.0.1", "::1"})
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{engine: e, opts: opts, log: log, quiet: map[string]bool{}}
	for _, p := range opts.QuietPaths {
		a.quiet[p] = true
	}
	if opts.Metrics != nil {
		a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "afterlife_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"method", "route", "status"})
		a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "afterlife_http_request_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "route"})
		opts.Metrics.MustRegister(a.requests, a.latency)
	}
	e.Use(a.observe, a.recover, a.identify)
	e.NoRoute(func(c *gin.Context) {
		WriteError(c, errs.E(errs.NotFound, "no route for %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(methodNotAllowed)
	return a
}

// methodNotAllowed answers a known path asked with another method; gin has
// set the Allow header.
func methodNotAllowed(c *gin.Context) {
	msg := fmt.Sprintf("%s is not allowed on %s (allowed: %s)", c.Request.Method, c.Request.URL.Path, c.Writer.Header().Get("Allow"))
	var body ErrorBody
	body.Error.Code = "method_not_allowed"
	body.Error.Message = msg
	body.Error.RequestID = RequestID(c)
	c.AbortWithStatusJSON(http.StatusMethodNotAllowed, body)
}

// Engine is the gin engine, for mounting non-API handlers (web pages, TUF
// files) and for serving.
func (a *API) Engine() *gin.Engine { return a.engine }

// Declare records who may call a route mounted on the engine directly
// (web pages, static assets), for the OpenAPI document and the access
// test. It enforces nothing: the page's own middleware does, and the
// access test checks that the two agree.
func (a *API) Declare(method, path string, op Op) {
	a.mu.Lock()
	a.routes = append(a.routes, route{method: method, path: path, op: op})
	a.mu.Unlock()
}

// Declaration is who may call one route, as declared.
type Declaration struct {
	Method, Path string
	Op           Op
}

// Declarations lists every route declared through a Router or Declare.
func (a *API) Declarations() []Declaration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Declaration, len(a.routes))
	for i, r := range a.routes {
		out[i] = Declaration{Method: r.method, Path: r.path, Op: r.op}
	}
	return out
}

// Root is a router at "/" whose routes are recorded in the OpenAPI document.
func (a *API) Root() *Router { return &Router{api: a, g: &a.engine.RouterGroup, prefix: ""} }

// V1 is the router for the versioned API under /v1.
func (a *API) V1() *Router { return a.Root().Group("/v1") }

// Router registers routes on a gin group and records them.
type Router struct {
	api    *API
	g      *gin.RouterGroup
	prefix string
}

// Group returns a router below prefix.
func (r *Router) Group(prefix string) *Router {
	return &Router{api: r.api, g: r.g.Group(prefix), prefix: r.prefix + prefix}
}

func (r *Router) GET(path string, op Op, h HandlerFunc)    { r.Handle(http.MethodGet, path, op, h) }
func (r *Router) HEAD(path string, op Op, h HandlerFunc)   { r.Handle(http.MethodHead, path, op, h) }
func (r *Router) POST(path string, op Op, h HandlerFunc)   { r.Handle(http.MethodPost, path, op, h) }
func (r *Router) PUT(path string, op Op, h HandlerFunc)    { r.Handle(http.MethodPut, path, op, h) }
func (r *Router) DELETE(path string, op Op, h HandlerFunc) { r.Handle(http.MethodDelete, path, op, h) }

// Handle registers h for method and path with op's rules enforced before h
// runs.
func (r *Router) Handle(method, path string, op Op, h HandlerFunc) {
	r.api.mu.Lock()
	r.api.routes = append(r.api.routes, route{method: method, path: r.prefix + path, op: op})
	r.api.mu.Unlock()
	limit := op.MaxBody
	if limit == 0 {
		limit = DefaultMaxBody
	}
	r.g.Handle(method, path, func(c *gin.Context) {
		if limit > 0 && c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		}
		if len(op.Roles) > 0 {
			p := Principal(c)
			if p.IsAnonymous() {
				WriteError(c, errs.E(errs.Unauthenticated, "this route needs a token (Authorization: Bearer …) with role %s", roleList(op.Roles)))
				return
			}
			if !p.Is(op.Roles...) {
				WriteError(c, errs.E(errs.Forbidden, "role %s may not %s %s (needs %s)", p.Role, method, c.FullPath(), roleList(op.Roles)))
				return
			}
		}
		if err := h(c); err != nil {
			WriteError(c, err)
		}
	})
}

func roleList(rs []principal.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

// Principal is the caller of the request; anonymous when no token came.
func Principal(c *gin.Context) principal.Principal {
	if p, ok := c.Get(principalKey); ok {
		return p.(principal.Principal)
	}
	return principal.Principal{}
}

// WithPrincipal sets the caller, for pages that authenticate another way
// (a session cookie).
func WithPrincipal(c *gin.Context, p principal.Principal) { c.Set(principalKey, p) }

// RequestID is the id of the request, also sent as X-Request-Id.
func RequestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// RequireOrg checks that the caller may act for org: admins may, and so may
// principals of that org.
func RequireOrg(c *gin.Context, org string) error {
	p := Principal(c)
	if p.Role == principal.Admin || (p.Org != "" && p.Org == org) {
		return nil
	}
	if p.IsAnonymous() {
		return errs.E(errs.Unauthenticated, "this needs a token of org %s", org)
	}
	return errs.E(errs.Forbidden, "%s may not act for org %s", p.Actor(), org)
}

// BindJSON decodes the body strictly: unknown fields and trailing data are
// Invalid errors.
func BindJSON(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.E(errs.TooLarge, "request body larger than %d bytes", mbe.Limit)
		}
		return errs.Wrap(errs.Invalid, err, "invalid JSON body")
	}
	if dec.More() {
		return errs.E(errs.Invalid, "invalid JSON body: trailing data")
	}
	return nil
}

// JSON writes v with status and returns nil, so handlers can end with
// `return httpapi.JSON(c, http.StatusOK, v)`.
func JSON(c *gin.Context, status int, v any) error {
	c.JSON(status, v)
	return nil
}

// ErrorBody is the one error shape of the API.
type ErrorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// WriteError writes err as {"error":{"code","message"}} with the status of
// its kind. Internal errors are logged with their cause; callers see only a
// generic message and the request id.
func WriteError(c *gin.Context, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) && errs.KindOf(err) == errs.Internal {
		err = errs.Wrap(errs.TooLarge, err, "request body larger than %d bytes", mbe.Limit)
	}
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		c.Abort()
		return // the client went away; nobody is listening
	}
	k := errs.KindOf(err)
	if k == errs.Internal || k == errs.Unavailable {
		c.Set("afterlife.error", err)
	}
	if k == errs.Unavailable && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "2")
	}
	if c.Writer.Written() {
		c.Abort()
		return
	}
	var body ErrorBody
	body.Error.Code = k.String()
	body.Error.Message = errs.Message(err)
	body.Error.RequestID = RequestID(c)
	c.AbortWithStatusJSON(k.HTTPStatus(), body)
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (a *API) observe(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		id = ids.New("req")
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-Id", id)
	c.Next()
	status := c.Writer.Status()
	routePath := c.FullPath()
	if routePath == "" {
		routePath = "unmatched"
	}
	dur := time.Since(start)
	if a.requests != nil {
		a.requests.WithLabelValues(c.Request.Method, routePath, strconv.Itoa(status)).Inc()
		a.latency.WithLabelValues(c.Request.Method, routePath).Observe(dur.Seconds())
	}
	level := slog.LevelInfo
	if a.quiet[routePath] && status < 500 {
		level = slog.LevelDebug
	}
	if !a.log.Enabled(c.Request.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", id),
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Duration("took", dur),
		slog.Int64("bytes", bodyBytes(c)),
		slog.String("remote", c.ClientIP()),
	}
	if p := Principal(c); !p.IsAnonymous() {
		attrs = append(attrs, slog.String("who", p.Actor()))
	}
	if v, ok := c.Get("afterlife.error"); ok {
		attrs = append(attrs, slog.String("err", fmt.Sprint(v)))
		if status >= 500 {
			level = slog.LevelError
		}
	}
	a.log.LogAttrs(c.Request.Context(), level, "request", attrs...)
}

// bodyBytes is the size of the response body. A file sent with sendfile
// bypasses gin's byte count (internal/blobhttp), so Content-Length stands
// in for it.
func bodyBytes(c *gin.Context) int64 {
	if n := c.Writer.Size(); n > 0 {
		return int64(n)
	}
	if c.Request.Method == http.MethodHead {
		return 0
	}
	n, err := strconv.ParseInt(c.Writer.Header().Get("Content-Length"), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func (a *API) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			WriteError(c, fmt.Errorf("panic: %v", r))
		}
	}()
	c.Next()
}

func (a *API) identify(c *gin.Context) {
	h := c.GetHeader("Authorization")
	if h == "" || a.opts.Auth == nil || slices.Contains(a.opts.OwnAuthPaths, c.Request.URL.Path) {
		return
	}
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		WriteError(c, errs.E(errs.Unauthenticated, "Authorization header must be \"Bearer <token>\""))
		return
	}
	p, err := a.opts.Auth.Authenticate(c.Request.Context(), strings.TrimSpace(secret))
	if err != nil {
		WriteError(c, err)
		return
	}
	c.Set(principalKey, p)
}
