package registry

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/blobhttp"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// UpdateCacheControl is sent with every update check answer: shared
// caches may keep it for a minute; devices revalidate with If-None-Match.
const UpdateCacheControl = "public, max-age=60"

// Register mounts the registry's routes: the API on v1 and the TUF
// repository (metadata and target files) on root under /tuf/.
func (s *Service) Register(v1 *httpapi.Router, root *httpapi.Router) {
	const rel, dev, prod = "releases", "devices", "products"
	v1.GET("/devices/updates", httpapi.Op{Public: true, Summary: "Is there an update for this device? (?id=&version=&channel=&bucket=) 200 with an offer, 204 when up to date, 304 for a matching If-None-Match; cacheable by shared caches (the answer depends only on the query)", Tag: dev}, s.httpUpdates)
	v1.Fast(http.MethodGet, "/devices/updates", s.fastUpdates)
	v1.POST("/devices/reports", httpapi.Op{Public: true, Summary: "Report how an install went (anonymous; counts only with a download receipt; rate-limited per source network)", Tag: dev, MaxBody: maxReportBody}, s.httpReport)

	v1.POST("/releases", httpapi.Op{Summary: "Publish a reproducible build as a release (version defaults to the recipe's)", Roles: []principal.Role{principal.Maintainer}, Scope: httpapi.Granted, Tag: rel}, s.httpPublish)
	v1.GET("/releases", httpapi.Op{Public: true, Summary: "List releases (?product=)", Tag: rel}, s.httpList)
	v1.GET("/releases/:id", httpapi.Op{Public: true, Summary: "A release", Tag: rel}, s.httpGet)
	v1.POST("/releases/:id/promote", httpapi.Op{Summary: "Promote a release from testing to stable", Roles: []principal.Role{principal.Maintainer}, Scope: httpapi.Granted, Tag: rel}, s.httpPromote)
	v1.POST("/releases/:id/yank", httpapi.Op{Summary: "Yank a release: offered to no device, its TUF targets re-signed as yanked with the reason (devices running it move on), kept for audit", Roles: []principal.Role{principal.Maintainer}, Scope: httpapi.Granted, Tag: rel}, s.httpYank)
	v1.POST("/releases/:id/pull-back", httpapi.Op{Summary: "Pull a release back to testing, offered to nobody (a maintainer of the product, or admin)", Roles: []principal.Role{principal.Maintainer}, Scope: httpapi.Granted, Tag: rel}, s.httpPullBack)
	v1.POST("/releases/:id/resume", httpapi.Op{Summary: "Lift the review hold of a release: offered again (a maintainer of the product, or admin)", Roles: []principal.Role{principal.Maintainer}, Scope: httpapi.Granted, Tag: rel}, s.httpResume)
	v1.GET("/releases/:id/reports", httpapi.Op{Public: true, Summary: "Install report counts and top failure reasons of a release", Tag: rel}, s.httpStats)
	v1.GET("/releases/:id/artifacts/:name", httpapi.Op{Public: true, Summary: "Download a release artifact (Range, ETag; redirects to a presigned URL on S3)", Tag: rel, Stream: true}, s.httpArtifact)
	v1.HEAD("/releases/:id/artifacts/:name", httpapi.Op{Public: true, Summary: "Headers of a release artifact", Tag: rel}, s.httpArtifact)

	v1.GET("/search", httpapi.Op{Public: true, Summary: "Find a product by vendor, model or device id (?q=): the total and the best 50, each with its vendor_name", Tag: prod}, s.httpSearch)
	v1.GET("/products/:id/overview", httpapi.Op{Public: true, Summary: "A product's status, escrow, builds, releases and reports", Tag: prod}, s.httpOverview)
	v1.GET("/products/:id/events", httpapi.Op{Public: true, Summary: "The registry's events for a product (releases, yanks, pull-backs)", Tag: prod}, s.httpEvents)
	v1.GET("/products/:id/pullback-policy", httpapi.Op{Public: true, Summary: "When a product's releases are pulled back", Tag: prod}, s.httpGetPolicy)
	v1.POST("/products/:id/pullback-policy", httpapi.Op{Summary: "Set when a product's releases are pulled back (admin or the product's vendor)", Roles: []principal.Role{principal.Vendor}, Scope: httpapi.OwnOrg, Tag: prod}, s.httpSetPolicy)
	v1.GET("/products/:id/maintainers", httpapi.Op{Public: true, Summary: "Maintainers allowed to release a product", Tag: prod}, s.httpMaintainers)
	v1.POST("/products/:id/maintainers", httpapi.Op{Summary: "Allow a maintainer (token name or org) to release a product", Roles: []principal.Role{principal.Admin}, Tag: prod}, s.httpGrant)
	v1.DELETE("/products/:id/maintainers", httpapi.Op{Summary: "Take back a maintainer's grant (?name= or ?org=, as granted)", Roles: []principal.Role{principal.Admin}, Tag: prod}, s.httpRevoke)

	s.registerKeyRoutes(v1)
	s.registerRolloutRoutes(v1)
	s.registerLifecycleRoutes(v1)

	const tag = "tuf"
	root.GET("/feeds/firmware.atom", httpapi.Op{Public: true, Summary: "Atom feed of new firmware releases, every product", Tag: rel}, s.httpFirmwareFeed)
	root.GET("/feeds/products/:id/firmware.atom", httpapi.Op{Public: true, Summary: "Atom feed of a product's new firmware releases", Tag: rel}, s.httpFirmwareFeed)
	root.GET("/tuf/*name", httpapi.Op{Public: true, Summary: "TUF metadata (/tuf/<n>.<role>.json) and target files (/tuf/targets/<dir>/<sha256>.<name>)", Tag: tag, Stream: true}, s.httpTUF)
	root.HEAD("/tuf/*name", httpapi.Op{Public: true, Summary: "Headers of TUF metadata or a target file", Tag: tag}, s.httpTUF)
}

var (
	cacheControlHdr = []string{UpdateCacheControl}
	jsonHdr         = []string{"application/json"}
)

// httpUpdates answers the update checks that fastUpdates hands back
// (errors, overload, unusual query strings) and serves the route when the
// gin engine is used directly: the same rules through the full middleware
// stack.
func (s *Service) httpUpdates(c *gin.Context) error {
	select {
	case s.updateSem <- struct{}{}:
	default:
		s.m.results["busy"].Inc()
		c.Header("Retry-After", "1")
		return errs.E(errs.Unavailable, "too many update checks at once; retry in a second")
	}
	defer func() { <-s.updateSem }()
	q := c.Request.URL.Query()
	uq := updateQuery{id: q.Get("id"), version: q.Get("version"), channel: q.Get("channel"), bucket: q.Get("bucket")}
	bucket, err := uq.check()
	if err != nil {
		return err
	}
	o, ok := s.index.Load().lookup(uq.id, uq.version, uq.channel, bucket, s.now)
	s.writeUpdate(c.Writer, c.Request, o, ok)
	return nil
}

// fastUpdates is the hot path, served before gin (httpapi.Router.Fast):
// no database, no context, no allocation beyond a device id that came
// percent-encoded; the answer is precomputed in the index. What it cannot
// answer with 200, 204 or 304 it hands to httpUpdates.
func (s *Service) fastUpdates(w http.ResponseWriter, r *http.Request) (int, bool) {
	var buf [256]byte
	uq, ok := parseUpdateQuery(r.URL.RawQuery, &buf)
	if !ok {
		return 0, false
	}
	bucket, err := uq.check()
	if err != nil {
		return 0, false
	}
	select {
	case s.updateSem <- struct{}{}:
	default:
		return 0, false
	}
	defer func() { <-s.updateSem }()
	o, ok := s.index.Load().lookup(uq.id, uq.version, uq.channel, bucket, s.now)
	return s.writeUpdate(w, r, o, ok), true
}

// updateQuery is the query string of an update check.
type updateQuery struct{ id, version, channel, bucket string }

// check validates the query and returns the device's rollout bucket
// (device.NoBucket when it sent none).
func (q updateQuery) check() (int, error) {
	if q.id == "" || len(q.id) > 200 {
		return 0, errs.E(errs.Invalid, "id (the device id, e.g. usb:1d6b:0104) is required")
	}
	if !ValidVersion(q.version) {
		return 0, errs.E(errs.Invalid, "version %.64q: want the device's current version (e.g. 1.4.2)", q.version)
	}
	if q.channel != "" && !validChannel(q.channel) {
		return 0, errs.E(errs.Invalid, "channel %q: want testing or stable", q.channel)
	}
	if q.bucket == "" {
		return device.NoBucket, nil
	}
	n := 0
	for i := 0; i < len(q.bucket); i++ {
		c := q.bucket[i]
		if c < '0' || c > '9' || i >= 2 {
			return 0, errs.E(errs.Invalid, "bucket %.8q: want the device's rollout bucket, 0 to 99", q.bucket)
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// parseUpdateQuery reads the four values of an update check from a raw
// query string as url.ParseQuery would (the first of repeated keys wins,
// other keys are ignored), without allocating for values that came
// unescaped; escaped ones are decoded through buf. It returns false for
// what it does not read exactly like url.ParseQuery (a semicolon, a bad
// escape, values longer than buf), which the regular handler then reads.
func parseUpdateQuery(raw string, buf *[256]byte) (updateQuery, bool) {
	var q updateQuery
	var seen [4]bool
	used := 0
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			return q, false
		}
		key, val, _ := strings.Cut(pair, "=")
		var slot int
		switch key {
		case "id":
			slot = 0
		case "version":
			slot = 1
		case "channel":
			slot = 2
		case "bucket":
			slot = 3
		default:
			if strings.ContainsAny(key, "%+") {
				return q, false // an escaped key might be one of ours
			}
			continue
		}
		if seen[slot] {
			continue
		}
		seen[slot] = true
		if strings.ContainsAny(val, "%+") {
			n, ok := unescapeQuery(val, buf[used:])
			if !ok {
				return q, false
			}
			val = string(buf[used : used+n])
			used += n
		}
		switch slot {
		case 0:
			q.id = val
		case 1:
			q.version = val
		case 2:
			q.channel = val
		case 3:
			q.bucket = val
		}
	}
	return q, true
}

// unescapeQuery decodes a query value (%XX and + for space) into dst.
func unescapeQuery(s string, dst []byte) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if n == len(dst) {
			return 0, false
		}
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) {
				return 0, false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return 0, false
			}
			dst[n] = hi<<4 | lo
			i += 2
		case '+':
			dst[n] = ' '
		default:
			dst[n] = c
		}
		n++
	}
	return n, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// writeUpdate writes the answer to an update check: the offer, 204 when
// there is none, 304 when the device (or a cache) holds it already. The
// answer depends only on the query string, so shared caches may keep it
// (UpdateCacheControl, ETag).
func (s *Service) writeUpdate(w http.ResponseWriter, r *http.Request, o offer, ok bool) int {
	h := w.Header()
	h["Cache-Control"] = cacheControlHdr
	if !ok {
		s.m.results["none"].Inc()
		return writeStatus(w, http.StatusNoContent)
	}
	// The header values are strings of the index; net/http takes them in
	// slices, made here in one allocation. (The index keeps no slices of
	// its own for them: two pointers a release for the collector to
	// mark.)
	hdrs := &[2]string{o.etag, o.length}
	h["Etag"] = hdrs[0:1:1]
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagListMatches(inm[0], o.etag) {
		s.m.results["not_modified"].Inc()
		return writeStatus(w, http.StatusNotModified)
	}
	s.m.results["offer"].Inc()
	h["Content-Type"] = jsonHdr
	h["Content-Length"] = hdrs[1:2:2]
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, o.body)
	return http.StatusOK
}

// writeStatus writes a status without a body; gin's writer sends it only
// when told to.
func writeStatus(w http.ResponseWriter, code int) int {
	w.WriteHeader(code)
	if g, ok := w.(interface{ WriteHeaderNow() }); ok {
		g.WriteHeaderNow()
	}
	return code
}

func etagListMatches(header, etag string) bool {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ",")
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}

func (s *Service) httpReport(c *gin.Context) error {
	from := sourceNetwork(c.ClientIP())
	if ok, wait := s.limiter.allow(from, s.now()); !ok {
		secs := int(wait.Seconds()) + 1
		c.Header("Retry-After", strconv.Itoa(secs))
		var body httpapi.ErrorBody
		body.Error.Code = "rate_limited"
		body.Error.Message = "too many install reports from this network; retry in " + strconv.Itoa(secs) + "s"
		body.Error.RequestID = httpapi.RequestID(c)
		c.AbortWithStatusJSON(http.StatusTooManyRequests, body)
		return nil
	}
	var r device.Report
	if err := httpapi.BindJSON(c, &r); err != nil {
		return err
	}
	if err := s.Report(c.Request.Context(), r, from); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Service) httpPublish(c *gin.Context) error {
	var req PublishRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	rel, err := s.Publish(c.Request.Context(), httpapi.Principal(c), req)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusCreated, rel)
}

func (s *Service) httpList(c *gin.Context) error {
	rels, err := s.List(c.Request.Context(), c.Query("product"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"releases": rels})
}

func (s *Service) httpGet(c *gin.Context) error {
	rel, err := s.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, rel)
}

func (s *Service) httpPromote(c *gin.Context) error {
	rel, err := s.Promote(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, rel)
}

// YankRequest is the body of POST /v1/releases/:id/yank.
type YankRequest struct {
	Reason string `json:"reason"`
}

func (s *Service) httpYank(c *gin.Context) error {
	var req YankRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	rel, err := s.Yank(c.Request.Context(), httpapi.Principal(c), c.Param("id"), req.Reason)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, rel)
}

func (s *Service) httpStats(c *gin.Context) error {
	if _, err := s.Get(c.Request.Context(), c.Param("id")); err != nil {
		return err
	}
	st, err := s.Stats(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, st)
}

func (s *Service) httpArtifact(c *gin.Context) error {
	rel, err := s.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	for _, a := range rel.Artifacts {
		if a.Name == c.Param("name") {
			s.m.downloads.WithLabelValues("artifact").Inc()
			if c.Request.Method == http.MethodGet {
				s.giveReceipt(c, rel.ID)
			}
			return blobhttp.Serve(c.Writer, c.Request, s.o.Blobs, blobDigest(a), blobhttp.Options{
				Filename: a.Name, Size: a.Size, NoRedirect: c.Query("redirect") == "0",
			})
		}
	}
	return errs.E(errs.NotFound, "release %s has no artifact %q", rel.ID, c.Param("name"))
}

// httpTUF serves /tuf/: target files from the blob store by digest, when
// the index lists them, and metadata through the TUF repository.
func (s *Service) httpTUF(c *gin.Context) error {
	p := c.Request.URL.Path
	if !strings.HasPrefix(p, "/tuf/targets/") {
		data, cc, err := s.o.TUF.Meta(c.Request.Context(), strings.TrimPrefix(p, "/tuf/"))
		if err != nil {
			return err
		}
		h := c.Writer.Header()
		h.Set("Cache-Control", cc)
		h.Set("Content-Length", strconv.Itoa(len(data)))
		c.Data(http.StatusOK, "application/json", data)
		return nil
	}
	dir, hash, name, ok := tuf.ParseTargetRequest(p)
	if !ok {
		return errs.E(errs.NotFound, "no TUF target at %s", p)
	}
	target := name
	if dir != "" {
		target = dir + "/" + name
	}
	t, listed := s.index.Load().target(target)
	if !listed {
		if d, size, ok := s.lifecycleTarget(c.Request.Context(), target, hash); ok {
			return blobhttp.Serve(c.Writer, c.Request, s.o.Blobs, d, blobhttp.Options{Filename: name, Size: size})
		}
	}
	if !listed || t.digest().Hex() != hash {
		return errs.E(errs.NotFound, "no published TUF target %s with sha256 %s", target, hash)
	}
	s.m.downloads.WithLabelValues("tuf_target").Inc()
	if c.Request.Method == http.MethodGet {
		s.giveReceipt(c, t.release)
	}
	return blobhttp.Serve(c.Writer, c.Request, s.o.Blobs, t.digest(), blobhttp.Options{Filename: name, Size: t.size})
}

// ReviewRequest is the body of POST /v1/releases/:id/pull-back and
// /resume.
type ReviewRequest struct {
	Reason string `json:"reason"`
}

func (s *Service) httpPullBack(c *gin.Context) error {
	var req ReviewRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	rel, err := s.ConfirmPullBack(c.Request.Context(), httpapi.Principal(c), c.Param("id"), req.Reason)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, rel)
}

func (s *Service) httpResume(c *gin.Context) error {
	var req ReviewRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	rel, err := s.Resume(c.Request.Context(), httpapi.Principal(c), c.Param("id"), req.Reason)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, rel)
}

func (s *Service) httpSearch(c *gin.Context) error {
	found, err := s.Search(c.Request.Context(), c.Query("q"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, found)
}

func (s *Service) httpOverview(c *gin.Context) error {
	ov, err := s.ProductOverview(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, ov)
}

func (s *Service) httpEvents(c *gin.Context) error {
	if _, err := s.o.Catalog.Get(c.Request.Context(), c.Param("id")); err != nil {
		return err
	}
	evs, err := s.Events(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"events": evs})
}

func (s *Service) httpGetPolicy(c *gin.Context) error {
	if _, err := s.o.Catalog.Get(c.Request.Context(), c.Param("id")); err != nil {
		return err
	}
	p, err := s.Policy(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, p)
}

// PolicyRequest is the body of POST /v1/products/:id/pullback-policy.
type PolicyRequest struct {
	MinFailures    int `json:"min_failures"`
	FailurePercent int `json:"failure_percent"`
	MinNetworks    int `json:"min_networks"` // 0: the default
}

func (s *Service) httpSetPolicy(c *gin.Context) error {
	var req PolicyRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	p, err := s.SetPolicy(c.Request.Context(), httpapi.Principal(c), PullBackPolicy{Product: c.Param("id"), MinFailures: req.MinFailures, FailurePercent: req.FailurePercent, MinNetworks: req.MinNetworks})
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, p)
}

func (s *Service) httpMaintainers(c *gin.Context) error {
	gs, err := s.Maintainers(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"maintainers": gs})
}

// GrantRequest is the body of POST /v1/products/:id/maintainers: exactly
// one of a maintainer token's name or an org.
type GrantRequest struct {
	Name string `json:"name"`
	Org  string `json:"org"`
}

func (s *Service) httpGrant(c *gin.Context) error {
	var req GrantRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	g, err := s.GrantMaintainer(c.Request.Context(), httpapi.Principal(c), c.Param("id"), req.Name, req.Org)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusCreated, g)
}

func (s *Service) httpRevoke(c *gin.Context) error {
	if err := s.RevokeMaintainer(c.Request.Context(), httpapi.Principal(c), c.Param("id"), c.Query("name"), c.Query("org")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
