package registry

import (
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
	v1.GET("/devices/updates", httpapi.Op{Public: true, Summary: "Is there an update for this device? (?id=&version=&channel=) 200 with an offer, 204 when up to date", Tag: dev}, s.httpUpdates)
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

	v1.GET("/search", httpapi.Op{Public: true, Summary: "Find a product by vendor, model or device id (?q=)", Tag: prod}, s.httpSearch)
	v1.GET("/products/:id/overview", httpapi.Op{Public: true, Summary: "A product's status, escrow, builds, releases and reports", Tag: prod}, s.httpOverview)
	v1.GET("/products/:id/events", httpapi.Op{Public: true, Summary: "The registry's events for a product (releases, yanks, pull-backs)", Tag: prod}, s.httpEvents)
	v1.GET("/products/:id/pullback-policy", httpapi.Op{Public: true, Summary: "When a product's releases are pulled back", Tag: prod}, s.httpGetPolicy)
	v1.POST("/products/:id/pullback-policy", httpapi.Op{Summary: "Set when a product's releases are pulled back (admin or the product's vendor)", Roles: []principal.Role{principal.Vendor}, Scope: httpapi.OwnOrg, Tag: prod}, s.httpSetPolicy)
	v1.GET("/products/:id/maintainers", httpapi.Op{Public: true, Summary: "Maintainers allowed to release a product", Tag: prod}, s.httpMaintainers)
	v1.POST("/products/:id/maintainers", httpapi.Op{Summary: "Allow a maintainer (token name or org) to release a product", Roles: []principal.Role{principal.Admin}, Tag: prod}, s.httpGrant)
	v1.DELETE("/products/:id/maintainers", httpapi.Op{Summary: "Take back a maintainer's grant (?name= or ?org=, as granted)", Roles: []principal.Role{principal.Admin}, Tag: prod}, s.httpRevoke)

	s.registerKeyRoutes(v1)
	s.registerRolloutRoutes(v1)

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

// httpUpdates is the hot path: no database, no allocation beyond what
// the HTTP stack needs; the answer is precomputed in the index.
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
	id, current, channel := q.Get("id"), q.Get("version"), q.Get("channel")
	if id == "" || len(id) > 200 {
		return errs.E(errs.Invalid, "id (the device id, e.g. usb:1d6b:0104) is required")
	}
	if !ValidVersion(current) {
		return errs.E(errs.Invalid, "version %.64q: want the device's current version (e.g. 1.4.2)", current)
	}
	if channel != "" && !validChannel(channel) {
		return errs.E(errs.Invalid, "channel %q: want testing or stable", channel)
	}
	bucket := device.NoBucket
	if b := q.Get("bucket"); b != "" {
		n, err := strconv.Atoi(b)
		if err != nil || n < 0 || n > 99 {
			return errs.E(errs.Invalid, "bucket %.8q: want the device's rollout bucket, 0 to 99", b)
		}
		bucket = n
	}
	o := s.index.Load().lookup(id, current, channel, bucket, s.now)
	h := c.Writer.Header()
	h["Cache-Control"] = cacheControlHdr
	if o == nil {
		s.m.results["none"].Inc()
		c.Writer.WriteHeader(http.StatusNoContent)
		c.Writer.WriteHeaderNow()
		return nil
	}
	h["Etag"] = o.etagHdr
	if inm := c.Request.Header.Get("If-None-Match"); inm != "" && etagListMatches(inm, o.etag) {
		s.m.results["not_modified"].Inc()
		c.Writer.WriteHeader(http.StatusNotModified)
		c.Writer.WriteHeaderNow()
		return nil
	}
	s.m.results["offer"].Inc()
	h["Content-Type"] = jsonHdr
	h["Content-Length"] = o.lengthHdr
	c.Writer.WriteHeader(http.StatusOK)
	_, _ = c.Writer.Write(o.body)
	return nil
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
	t, listed := s.index.Load().targets[target]
	if !listed || t.digest.Hex() != hash {
		return errs.E(errs.NotFound, "no published TUF target %s with sha256 %s", target, hash)
	}
	s.m.downloads.WithLabelValues("tuf_target").Inc()
	if c.Request.Method == http.MethodGet {
		s.giveReceipt(c, t.release)
	}
	return blobhttp.Serve(c.Writer, c.Request, s.o.Blobs, t.digest, blobhttp.Options{Filename: name, Size: t.size})
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
	ps, err := s.Search(c.Request.Context(), c.Query("q"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"products": ps})
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
