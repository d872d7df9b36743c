package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// The session is the API token itself, kept in an HttpOnly,
// SameSite=Strict cookie and authenticated on every request, so revoking
// the token ends the session at once and no session table is needed
// across replicas. Forms carry a CSRF token derived with HMAC from the
// cookie's value and a server secret; before login, a random nonce cookie
// plays the cookie's part.
const (
	sessionCookie = "afterlife_session"
	nonceCookie   = "afterlife_nonce"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
	ctxPrincipal  = "web.principal"
	ctxSession    = "web.session"
)

// identify authenticates the session cookie, if any. A bad or revoked
// token is dropped silently: the visitor continues anonymously.
func (s *Site) identify(c *gin.Context) {
	tok, err := c.Cookie(sessionCookie)
	if err != nil || tok == "" {
		c.Next()
		return
	}
	p, err := s.deps.Auth.Authenticate(c.Request.Context(), tok)
	if err != nil {
		s.clearCookie(c, sessionCookie)
		c.Next()
		return
	}
	c.Set(ctxPrincipal, p)
	c.Set(ctxSession, tok)
	c.Next()
}

func caller(c *gin.Context) principal.Principal {
	v, _ := c.Get(ctxPrincipal)
	p, _ := v.(principal.Principal)
	return p
}

// require lets through principals with one of roles (admins always);
// anonymous visitors are sent to the login form, others get a 403. Every
// unsafe method must also pass the CSRF check.
func (s *Site) require(roles ...principal.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := caller(c)
		if p.IsAnonymous() {
			if c.Request.Method == http.MethodGet {
				c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
				c.Abort()
				return
			}
			s.fail(c, errs.E(errs.Unauthenticated, "please log in"))
			return
		}
		if !p.Is(append(roles, principal.Admin)...) {
			s.fail(c, errs.E(errs.Forbidden, "this area needs the %s role", roles[0]))
			return
		}
		if !s.csrfOK(c) {
			s.fail(c, errs.E(errs.Forbidden, "the form expired or came from another site; reload the page and try again"))
			return
		}
		c.Next()
	}
}

// csrfKey is the cookie value the CSRF token is bound to, creating the
// pre-login nonce cookie when there is neither.
func (s *Site) csrfKey(c *gin.Context) string {
	if v, ok := c.Get(ctxSession); ok {
		return "s:" + v.(string)
	}
	if n, err := c.Cookie(nonceCookie); err == nil && len(n) >= 16 {
		return "n:" + n
	}
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		return ""
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	n := base64.RawURLEncoding.EncodeToString(b)
	s.setCookie(c, nonceCookie, n, 0)
	c.Request.AddCookie(&http.Cookie{Name: nonceCookie, Value: n})
	return "n:" + n
}

func (s *Site) csrfToken(c *gin.Context) string {
	if v, ok := c.Get("web.csrf"); ok {
		return v.(string)
	}
	k := s.csrfKey(c)
	if k == "" {
		return ""
	}
	m := hmac.New(sha256.New, s.opts.CSRFSecret)
	m.Write([]byte("afterlife-csrf\x00" + k))
	t := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	c.Set("web.csrf", t)
	return t
}

// csrfOK checks unsafe methods: the token comes from the form field or,
// for script requests, from the X-CSRF-Token header.
func (s *Site) csrfOK(c *gin.Context) bool {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	got := c.GetHeader(csrfHeader)
	switch {
	case got != "":
	case strings.HasPrefix(c.ContentType(), "application/x-www-form-urlencoded"):
		got = c.PostForm(csrfField)
	case c.ContentType() == "multipart/form-data":
		got = firstPartCSRF(c)
	}
	want := s.csrfToken(c)
	return want != "" && got != "" && hmac.Equal([]byte(got), []byte(want))
}

func (s *Site) setCookie(c *gin.Context, name, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.opts.SecureCookies || c.Request.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

func (s *Site) clearCookie(c *gin.Context, name string) { s.setCookie(c, name, "", -1) }

// safeNext keeps post-login redirects on this site. next must be a path
// (one leading slash, no scheme, host or user) with no backslash and no
// control or invisible formatting character anywhere, since browsers drop
// tabs and newlines and read "\\" as "/"; it is resolved with net/url
// against this site and must still be a path afterwards (dot segments
// cannot turn it into "//host"). Anything else becomes "/".
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/"
	}
	for _, r := range next {
		if r < 0x20 || r == 0x7f || r == '\\' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	site := &url.URL{Scheme: "https", Host: "afterlife.invalid"}
	r := site.ResolveReference(u)
	if r.Scheme != site.Scheme || r.Host != site.Host || r.User != nil || !strings.HasPrefix(r.Path, "/") || strings.HasPrefix(r.Path, "//") {
		return "/"
	}
	out := r.EscapedPath()
	if strings.HasPrefix(out, "//") || strings.Contains(out, "\\") {
		return "/"
	}
	if r.RawQuery != "" {
		out += "?" + r.RawQuery
	}
	return out
}

func (s *Site) loginForm(c *gin.Context) {
	p := s.newPage(c, "Log in", gin.H{"Next": safeNext(c.Query("next"))})
	s.render(c, http.StatusOK, "auth/login", "", p)
}

func (s *Site) login(c *gin.Context) {
	next := safeNext(c.PostForm("next"))
	if !s.csrfOK(c) {
		s.fail(c, errs.E(errs.Forbidden, "the form expired; reload the page and try again"))
		return
	}
	tok := strings.TrimSpace(c.PostForm("token"))
	pr, err := s.deps.Auth.Authenticate(c.Request.Context(), tok)
	if tok == "" || err != nil {
		p := s.newPage(c, "Log in", gin.H{"Next": next})
		p.Error = "That token was not accepted. Check that you pasted all of it and that it has not been revoked."
		s.render(c, http.StatusUnauthorized, "auth/login", "", p)
		return
	}
	s.setCookie(c, sessionCookie, tok, 0)
	if next == "/" {
		next = homeFor(pr)
	}
	c.Redirect(http.StatusSeeOther, next)
}

// homeFor is where a principal lands after login.
func homeFor(p principal.Principal) string {
	switch {
	case p.Is(principal.Vendor):
		return "/vendor"
	case p.Is(principal.Maintainer):
		return "/maintainer"
	case p.Is(principal.Admin, principal.Trustee):
		return "/admin"
	}
	return "/"
}

func (s *Site) logout(c *gin.Context) {
	if !s.csrfOK(c) {
		s.fail(c, errs.E(errs.Forbidden, "the form expired; reload the page and try again"))
		return
	}
	s.clearCookie(c, sessionCookie)
	c.Redirect(http.StatusSeeOther, "/")
}

// ctxMultipart holds the multipart reader of a form whose CSRF token was
// its first part; the handler reads the rest of the form from it.
const ctxMultipart = "web.multipart"

// firstPartCSRF reads the CSRF token of a multipart form (a deposit
// without script) from its first part, which the form's hidden csrf
// field is, without reading anything else: the files stream on to the
// handler, which reads them only once the token is checked.
func firstPartCSRF(c *gin.Context) string {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return ""
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != csrfField || part.FileName() != "" {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(part, 256))
	if err != nil {
		return ""
	}
	c.Set(ctxMultipart, mr)
	return string(b)
}
