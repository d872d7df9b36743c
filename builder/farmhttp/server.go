// Package farmhttp is the server side of the build farm protocol over
// HTTP: the /v1 routes builders, maintainers and readers call (the builder
// protocol's routes call builder.Coordinator as builder/coord implements
// it, coord.Local, and check the protocol version). Its client is
// builder/farmclient, which links none of this. The JSON of every route is
// documented in docs/farm-protocol.md.
//
// gin appears here and nowhere else in the farm; it must not decide
// anything the coordinator decides (leases, verdicts, checks of uploads
// and results).
package farmhttp

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blobhttp"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Submitter turns a recipe repository into a build (recipes/submit, wired
// by cmd/afterlife).
type Submitter interface {
	Submit(ctx context.Context, req builder.SubmitRequest) (builder.SubmitResult, error)
}

// Options configure a Server.
type Options struct {
	// Submitter handles POST /v1/recipes; nil leaves the route out.
	Submitter Submitter
	Logger    *slog.Logger
}

// Server is the farm's HTTP API. The builder protocol's routes are thin
// adapters of builder.Coordinator: each call runs on the coordinator as
// seen by the builder the caller's token is bound to (coord.Local), the
// same implementation in-process builders use, so every check of a lease,
// an upload or a report lives in builder/coord once.
type Server struct {
	coord *coord.Service
	store blob.Store
	opts  Options
}

// NewServer returns the farm API over c, serving blobs from store.
func NewServer(c *coord.Service, store blob.Store, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{coord: c, store: store, opts: o}
}

// Register mounts the farm's routes on the /v1 router.
func (s *Server) Register(r *httpapi.Router) {
	agent := []principal.Role{principal.Builder}
	r.POST("/builders", httpapi.Op{Summary: "Register this token's builder, or update its capabilities", Roles: agent, Tag: "farm"}, s.speaks(s.register))
	r.GET("/builders", httpapi.Op{Public: true, Summary: "List builders with when they were last seen", Tag: "farm"}, s.builders)
	r.DELETE("/builders/:id", httpapi.Op{Summary: "Remove a builder; its jobs go back to the queue", Roles: []principal.Role{principal.Admin}, Tag: "farm"}, s.removeBuilder)
	r.POST("/jobs/next", httpapi.Op{Summary: "Long-poll for a job and lease it", Roles: agent, Scope: httpapi.OwnBuilder, Tag: "farm", Stream: true}, s.speaks(s.next))
	r.POST("/jobs/:id/extend", httpapi.Op{Summary: "Renew the lease on a job", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.speaks(s.extend))
	r.PUT("/jobs/:id/outputs/:digest", httpapi.Op{Summary: "Upload a blob a job produced", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm", MaxBody: -1}, s.speaks(s.upload))
	r.POST("/jobs/:id/log", httpapi.Op{Summary: "Append a chunk to a job's live log", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.speaks(s.appendLog))
	r.POST("/jobs/:id/done", httpapi.Op{Summary: "Report a job's result", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.speaks(s.done))
	r.POST("/jobs/:id/giveback", httpapi.Op{Summary: "Return a job to the queue unfinished", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.speaks(s.giveBack))
	r.GET("/blobs/:digest", httpapi.Op{Summary: "Fetch a build input or source archive by digest (never a build-only escrow file)", Roles: agent, Tag: "farm", Stream: true}, s.speaks(s.blob))
	r.GET("/jobs/:id/inputs/:digest", httpapi.Op{Summary: "Fetch an input the held job declares, build-only escrow files included", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm", Stream: true}, s.speaks(s.jobInput))
	r.GET("/farm/activity", httpapi.Op{Public: true, Summary: "The farm's queue depth through the last day (hourly) and the durations of its newest decided builds", Tag: "farm"}, s.activity)
	r.GET("/builds", httpapi.Op{Public: true, Summary: "List builds, newest first (product, state, limit; mine=true: the caller's own submissions)", Tag: "farm"}, s.builds)
	r.GET("/builds/:id", httpapi.Op{Public: true, Summary: "A build with its jobs, results and verdict", Tag: "farm"}, s.build)
	r.GET("/builds/:id/jobs/:job/log", httpapi.Op{Public: true, Summary: "A job's log (live, from an offset, or the final blob with ?raw=1)", Tag: "farm", Stream: true}, s.log)
	r.GET("/builds/:id/jobs/:job/attestation", httpapi.Op{Public: true, Summary: "A job's signed attestation (DSSE envelope)", Tag: "farm", Stream: true}, s.resultBlob(func(r coord.Result) blob.Digest { return r.Attestation }, "attestation.dsse.json"))
	r.GET("/builds/:id/jobs/:job/buildinfo", httpapi.Op{Public: true, Summary: "A job's buildinfo", Tag: "farm", Stream: true}, s.resultBlob(func(r coord.Result) blob.Digest { return r.BuildInfo }, "buildinfo.json"))
	if s.opts.Submitter != nil {
		r.POST("/recipes", httpapi.Op{Summary: "Submit a recipe repository at a ref for building", Roles: []principal.Role{principal.Maintainer}, Tag: "farm"}, s.submit)
	}
}

// as is the protocol as seen by the builder bound to the caller's token.
func (s *Server) as(c *gin.Context) builder.Coordinator {
	return s.coord.Local(httpapi.Principal(c).TokenID)
}

// speaks refuses a call in a farm protocol version this server does not
// speak (builder.CheckProtocol); a call without the header is version 1.
// Every answer says which version the server speaks.
func (s *Server) speaks(h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(c *gin.Context) error {
		c.Header(builder.ProtocolHeader, strconv.Itoa(builder.ProtocolVersion))
		v := 0
		if h := c.GetHeader(builder.ProtocolHeader); h != "" {
			n, err := strconv.Atoi(h)
			if err != nil || n < 1 {
				return errs.E(errs.Invalid, "%s %q is not a protocol version; this coordinator speaks %d", builder.ProtocolHeader, h, builder.ProtocolVersion)
			}
			v = n
		}
		if err := builder.CheckProtocol(v); err != nil {
			return err
		}
		return h(c)
	}
}

func (s *Server) register(c *gin.Context) error {
	var reg builder.Registration
	if err := httpapi.BindJSON(c, &reg); err != nil {
		return err
	}
	b, err := s.as(c).Register(c.Request.Context(), reg)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, b)
}

func (s *Server) builders(c *gin.Context) error {
	bs, err := s.coord.Builders(c.Request.Context())
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []builder.Builder{}
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"builders": bs})
}

func (s *Server) removeBuilder(c *gin.Context) error {
	if err := s.coord.RemoveBuilder(c.Request.Context(), c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Server) next(c *gin.Context) error {
	var req builder.NextRequest
	if c.Request.ContentLength != 0 {
		if err := httpapi.BindJSON(c, &req); err != nil {
			return err
		}
	}
	job, err := s.as(c).Next(c.Request.Context(), time.Duration(req.WaitMillis)*time.Millisecond)
	if err != nil {
		return err
	}
	if job == nil {
		c.Status(http.StatusNoContent)
		return nil
	}
	return httpapi.JSON(c, http.StatusOK, job)
}

func (s *Server) extend(c *gin.Context) error {
	until, err := s.as(c).Extend(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, builder.ExtendResponse{LeaseUntil: until})
}

func (s *Server) upload(c *gin.Context) error {
	d, err := blob.ParseDigest(c.Param("digest"))
	if err != nil {
		return err
	}
	if err := s.as(c).Upload(c.Request.Context(), c.Param("id"), d, c.Request.ContentLength, c.Request.Body); err != nil {
		return err
	}
	info := blob.Info{Digest: d, Size: c.Request.ContentLength} // Upload checked both
	if info.Size < 0 {
		if info, err = s.store.Stat(c.Request.Context(), d); err != nil {
			return err
		}
	}
	return httpapi.JSON(c, http.StatusOK, info)
}

func (s *Server) appendLog(c *gin.Context) error {
	chunk, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return errs.Wrap(errs.TooLarge, err, "log chunk larger than %d bytes", httpapi.DefaultMaxBody)
	}
	if err := s.as(c).AppendLog(c.Request.Context(), c.Param("id"), chunk); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Server) done(c *gin.Context) error {
	var rep builder.Report
	if err := httpapi.BindJSON(c, &rep); err != nil {
		return err
	}
	if err := s.as(c).Done(c.Request.Context(), c.Param("id"), rep); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Server) giveBack(c *gin.Context) error {
	if err := s.as(c).GiveBack(c.Request.Context(), c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// blob serves Fetch with Range and presigned redirects (internal/blobhttp);
// like coord.Local.Fetch it checks only the digest.
func (s *Server) blob(c *gin.Context) error {
	d, err := blob.ParseDigest(c.Param("digest"))
	if err != nil {
		return err
	}
	if err := s.coord.Fetchable(c.Request.Context(), d); err != nil {
		return err
	}
	return blobhttp.Serve(c.Writer, c.Request, s.store, d, blobhttp.Options{})
}

// jobInput serves FetchInput: an input of a job the caller's builder holds.
// It never redirects to the store, so a build-only file leaves only through
// this answer to this lease holder.
func (s *Server) jobInput(c *gin.Context) error {
	d, err := blob.ParseDigest(c.Param("digest"))
	if err != nil {
		return err
	}
	if err := s.coord.Local(httpapi.Principal(c).TokenID).CheckInput(c.Request.Context(), c.Param("id"), d); err != nil {
		return err
	}
	return blobhttp.Serve(c.Writer, c.Request, s.store, d, blobhttp.Options{NoRedirect: true, CacheControl: "private, no-store"})
}

func (s *Server) activity(c *gin.Context) error {
	a, err := s.coord.Activity(c.Request.Context())
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, a)
}

func (s *Server) builds(c *gin.Context) error {
	f := coord.Filter{Product: c.Query("product"), State: verdict.State(c.Query("state"))}
	if c.Query("mine") == "true" {
		p := httpapi.Principal(c)
		if p.IsAnonymous() {
			return errs.E(errs.Unauthenticated, "mine=true lists the builds of the caller's token: send one")
		}
		f.RequestedBy = p.Actor()
	}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return errs.E(errs.Invalid, "limit %q is not a positive number", l)
		}
		f.Limit = n
	}
	bs, err := s.coord.Builds(c.Request.Context(), f)
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []coord.Build{}
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"builds": bs})
}

func (s *Server) build(c *gin.Context) error {
	b, err := s.coord.Build(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, b)
}

// LogResponse is the answer to GET /v1/builds/:id/jobs/:job/log.
type LogResponse struct {
	Data string `json:"data"`
	Next int64  `json:"next"`
	Done bool   `json:"done"`
}

func (s *Server) log(c *gin.Context) error {
	ctx := c.Request.Context()
	buildID, jobID := c.Param("id"), c.Param("job")
	if err := s.coord.JobOf(ctx, buildID, jobID); err != nil {
		return err
	}
	if c.Query("raw") != "" {
		r, err := s.coord.JobResult(ctx, buildID, jobID)
		if err != nil {
			return err
		}
		if r.Log == "" {
			return errs.E(errs.NotFound, "job %s uploaded no final log", jobID)
		}
		return blobhttp.Serve(c.Writer, c.Request, s.store, r.Log, blobhttp.Options{Filename: jobID + ".log", NoRedirect: true})
	}
	var offset int64
	if o := c.Query("offset"); o != "" {
		n, err := strconv.ParseInt(o, 10, 64)
		if err != nil || n < 0 {
			return errs.E(errs.Invalid, "offset %q is not a byte offset", o)
		}
		offset = n
	}
	chunk, err := s.coord.Log(ctx, jobID, offset)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, LogResponse{Data: string(chunk.Data), Next: chunk.Next, Done: chunk.Done})
}

func (s *Server) resultBlob(pick func(coord.Result) blob.Digest, filename string) httpapi.HandlerFunc {
	return func(c *gin.Context) error {
		r, err := s.coord.JobResult(c.Request.Context(), c.Param("id"), c.Param("job"))
		if err != nil {
			return err
		}
		d := pick(r)
		if d == "" {
			return errs.E(errs.NotFound, "job %s has no %s", r.JobID, filename)
		}
		return blobhttp.Serve(c.Writer, c.Request, s.store, d, blobhttp.Options{Filename: filename})
	}
}

func (s *Server) submit(c *gin.Context) error {
	var req builder.SubmitRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	req.RequestedBy = httpapi.Principal(c).Actor()
	res, err := s.opts.Submitter.Submit(c.Request.Context(), req)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return httpapi.JSON(c, status, res)
}
