// Package farmhttp carries the build farm protocol over HTTP: the /v1
// routes builders, maintainers and readers call (server side, on top of
// builder/coord), and Client, the builder.Coordinator the agent uses over
// the network with afterlife's retrying HTTP client. The JSON of every
// route is documented in docs/farm-protocol.md.
//
// gin appears here and nowhere else in the farm; it must not decide
// anything the coordinator decides (leases, verdicts, checks of results).
package farmhttp

import (
	"context"
	"errors"
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

// SubmitRequest asks for a recipe to be built.
type SubmitRequest struct {
	Repo        string `json:"repo"`
	Ref         string `json:"ref"`
	Path        string `json:"path,omitempty"`
	RequestedBy string `json:"-"`
}

// SubmitResult is the build a submission made or found.
type SubmitResult struct {
	BuildID string `json:"build_id"`
	Created bool   `json:"created"`
	Commit  string `json:"commit"`
	Recipe  string `json:"recipe"`
	Version string `json:"version"`
}

// Submitter turns a recipe repository into a build (recipes/submit, wired
// by cmd/afterlife).
type Submitter interface {
	Submit(ctx context.Context, req SubmitRequest) (SubmitResult, error)
}

// DefaultMaxUpload bounds one uploaded blob (an output, a log).
const DefaultMaxUpload = 2 << 30

// Options configure a Server.
type Options struct {
	// Submitter handles POST /v1/recipes; nil leaves the route out.
	Submitter Submitter
	// MaxUpload bounds one uploaded blob (default DefaultMaxUpload).
	MaxUpload int64
	Logger    *slog.Logger
}

// Server is the farm's HTTP API.
type Server struct {
	coord *coord.Service
	store blob.Store
	opts  Options
}

// NewServer returns the farm API over c, serving blobs from store.
func NewServer(c *coord.Service, store blob.Store, o Options) *Server {
	if o.MaxUpload <= 0 {
		o.MaxUpload = DefaultMaxUpload
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{coord: c, store: store, opts: o}
}

// Register mounts the farm's routes on the /v1 router.
func (s *Server) Register(r *httpapi.Router) {
	agent := []principal.Role{principal.Builder}
	r.POST("/builders", httpapi.Op{Summary: "Register this token's builder, or update its capabilities", Roles: agent, Tag: "farm"}, s.register)
	r.GET("/builders", httpapi.Op{Public: true, Summary: "List builders with when they were last seen", Tag: "farm"}, s.builders)
	r.DELETE("/builders/:id", httpapi.Op{Summary: "Remove a builder; its jobs go back to the queue", Roles: []principal.Role{principal.Admin}, Tag: "farm"}, s.removeBuilder)
	r.POST("/jobs/next", httpapi.Op{Summary: "Long-poll for a job and lease it", Roles: agent, Scope: httpapi.OwnBuilder, Tag: "farm", Stream: true}, s.next)
	r.POST("/jobs/:id/extend", httpapi.Op{Summary: "Renew the lease on a job", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.extend)
	r.PUT("/jobs/:id/outputs/:digest", httpapi.Op{Summary: "Upload a blob a job produced", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm", MaxBody: -1}, s.upload)
	r.POST("/jobs/:id/log", httpapi.Op{Summary: "Append a chunk to a job's live log", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.appendLog)
	r.POST("/jobs/:id/done", httpapi.Op{Summary: "Report a job's result", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.done)
	r.POST("/jobs/:id/giveback", httpapi.Op{Summary: "Return a job to the queue unfinished", Roles: agent, Scope: httpapi.LeaseHolder, Tag: "farm"}, s.giveBack)
	r.GET("/blobs/:digest", httpapi.Op{Summary: "Fetch a build input or source archive by digest", Roles: agent, Tag: "farm", Stream: true}, s.blob)
	r.GET("/builds", httpapi.Op{Public: true, Summary: "List builds", Tag: "farm"}, s.builds)
	r.GET("/builds/:id", httpapi.Op{Public: true, Summary: "A build with its jobs, results and verdict", Tag: "farm"}, s.build)
	r.GET("/builds/:id/jobs/:job/log", httpapi.Op{Public: true, Summary: "A job's log (live, from an offset, or the final blob with ?raw=1)", Tag: "farm", Stream: true}, s.log)
	r.GET("/builds/:id/jobs/:job/attestation", httpapi.Op{Public: true, Summary: "A job's signed attestation (DSSE envelope)", Tag: "farm", Stream: true}, s.resultBlob(func(r coord.Result) blob.Digest { return r.Attestation }, "attestation.dsse.json"))
	r.GET("/builds/:id/jobs/:job/buildinfo", httpapi.Op{Public: true, Summary: "A job's buildinfo", Tag: "farm", Stream: true}, s.resultBlob(func(r coord.Result) blob.Digest { return r.BuildInfo }, "buildinfo.json"))
	if s.opts.Submitter != nil {
		r.POST("/recipes", httpapi.Op{Summary: "Submit a recipe repository at a ref for building", Roles: []principal.Role{principal.Maintainer}, Tag: "farm"}, s.submit)
	}
}

// me is the builder bound to the caller's token.
func (s *Server) me(c *gin.Context) (builder.Builder, error) {
	return s.coord.BuilderByToken(c.Request.Context(), httpapi.Principal(c).TokenID)
}

func (s *Server) register(c *gin.Context) error {
	var reg builder.Registration
	if err := httpapi.BindJSON(c, &reg); err != nil {
		return err
	}
	b, err := s.coord.Register(c.Request.Context(), httpapi.Principal(c).TokenID, reg)
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

// NextRequest is the body of POST /v1/jobs/next.
type NextRequest struct {
	WaitMillis int64 `json:"wait_ms"`
}

func (s *Server) next(c *gin.Context) error {
	var req NextRequest
	if c.Request.ContentLength != 0 {
		if err := httpapi.BindJSON(c, &req); err != nil {
			return err
		}
	}
	b, err := s.me(c)
	if err != nil {
		return err
	}
	job, err := s.coord.Next(c.Request.Context(), b.ID, time.Duration(req.WaitMillis)*time.Millisecond)
	if err != nil {
		return err
	}
	if job == nil {
		c.Status(http.StatusNoContent)
		return nil
	}
	return httpapi.JSON(c, http.StatusOK, job)
}

// ExtendResponse is the answer to POST /v1/jobs/:id/extend.
type ExtendResponse struct {
	LeaseUntil time.Time `json:"lease_until"`
}

func (s *Server) extend(c *gin.Context) error {
	b, err := s.me(c)
	if err != nil {
		return err
	}
	until, err := s.coord.Extend(c.Request.Context(), c.Param("id"), b.ID)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, ExtendResponse{LeaseUntil: until})
}

func (s *Server) upload(c *gin.Context) error {
	d, err := blob.ParseDigest(c.Param("digest"))
	if err != nil {
		return err
	}
	b, err := s.me(c)
	if err != nil {
		return err
	}
	if err := s.coord.CheckLease(c.Request.Context(), c.Param("id"), b.ID); err != nil {
		return err
	}
	if c.Request.ContentLength > s.opts.MaxUpload {
		return errs.E(errs.TooLarge, "blob is %d bytes, limit %d", c.Request.ContentLength, s.opts.MaxUpload)
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxUpload)
	info, err := s.store.Put(c.Request.Context(), body, d)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.E(errs.TooLarge, "blob larger than %d bytes", s.opts.MaxUpload)
		}
		return err
	}
	if c.Request.ContentLength >= 0 && info.Size != c.Request.ContentLength {
		return errs.E(errs.Invalid, "blob %s is %d bytes, the request said %d", d, info.Size, c.Request.ContentLength)
	}
	return httpapi.JSON(c, http.StatusOK, info)
}

func (s *Server) appendLog(c *gin.Context) error {
	b, err := s.me(c)
	if err != nil {
		return err
	}
	chunk, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return errs.Wrap(errs.TooLarge, err, "log chunk larger than %d bytes", httpapi.DefaultMaxBody)
	}
	if err := s.coord.AppendLog(c.Request.Context(), c.Param("id"), b.ID, chunk); err != nil {
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
	b, err := s.me(c)
	if err != nil {
		return err
	}
	if err := s.coord.Done(c.Request.Context(), c.Param("id"), b.ID, rep); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Server) giveBack(c *gin.Context) error {
	b, err := s.me(c)
	if err != nil {
		return err
	}
	if err := s.coord.GiveBack(c.Request.Context(), c.Param("id"), b.ID); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Server) blob(c *gin.Context) error {
	d, err := blob.ParseDigest(c.Param("digest"))
	if err != nil {
		return err
	}
	return blobhttp.Serve(c.Writer, c.Request, s.store, d, blobhttp.Options{})
}

func (s *Server) builds(c *gin.Context) error {
	f := coord.Filter{Product: c.Query("product"), State: verdict.State(c.Query("state"))}
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
	var req SubmitRequest
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
