package escrow

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blobhttp"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

const tag = "escrow"

// Register mounts the escrow API on v1 (the /v1 router) and the releases
// feed at /feeds/releases.atom on root.
func (s *Service) Register(v1 *httpapi.Router, root *httpapi.Router) {
	vendor := []principal.Role{principal.Vendor}
	admin := []principal.Role{principal.Admin}
	own := httpapi.OwnOrg
	// While a deposit is sealed only its vendor and admins reach it, and
	// the trustees its quorum names see its approval state (canSee,
	// isQuorumTrustee); everyone else gets 404.
	sealedVendor := &httpapi.Sealed{Roles: vendor}
	sealedRead := &httpapi.Sealed{Roles: vendor, NamedTrustee: true}
	v1.POST("/deposits", httpapi.Op{Summary: "Start a deposit: product, release policy and manifest", Roles: vendor, Scope: own, Tag: tag, MaxBody: 64 << 20}, s.httpCreate)
	v1.GET("/deposits", httpapi.Op{Public: true, Summary: "List deposits: released ones, and a vendor's own sealed ones", Tag: tag}, s.httpList)
	v1.GET("/uploads", httpapi.Op{Summary: "List your org's uncommitted uploads", Roles: vendor, Tag: tag}, s.httpUploads)
	v1.GET("/deposits/:id", httpapi.Op{Public: true, Sealed: sealedRead, Summary: "A deposit and its manifest (sealed: its vendor and admins; named trustees see the approval state only)", Tag: tag}, s.httpGet)
	v1.DELETE("/deposits/:id", httpapi.Op{Summary: "Abandon an uncommitted upload (sealed deposits cannot be deleted)", Roles: vendor, Scope: own, Sealed: sealedVendor, Tag: tag}, s.httpAbort)
	v1.GET("/deposits/:id/events", httpapi.Op{Public: true, Sealed: sealedVendor, Summary: "A deposit's append-only event log (sealed: its vendor and admins)", Tag: tag}, s.httpEvents)
	v1.PUT("/deposits/:id/files/*path", httpapi.Op{Summary: "Stream one file of an uploading deposit, or its rest from ?offset= (what the server holds of it)", Roles: vendor, Scope: own, Sealed: sealedVendor, Tag: tag, MaxBody: -1}, s.httpPutFile)
	v1.GET("/deposits/:id/files/*path", httpapi.Op{Public: true, Sealed: sealedVendor, Summary: "Download one file, resumable with Range (released public files: sendfile, or a redirect to the S3 store; sealed: its vendor and admins, digest-checked as decrypted)", Tag: tag, Stream: true}, s.httpGetFile)
	v1.GET("/deposits/:id/upload", httpapi.Op{Summary: "Which files of an upload have arrived, and how many bytes of the others (for resuming)", Roles: vendor, Scope: own, Sealed: sealedVendor, Tag: tag}, s.httpUpload)
	v1.POST("/deposits/:id/commit", httpapi.Op{Summary: "Seal an upload atomically and get a signed receipt", Roles: vendor, Scope: own, Sealed: sealedVendor, Tag: tag}, s.httpCommit)
	v1.GET("/deposits/:id/receipt", httpapi.Op{Public: true, Sealed: sealedVendor, Summary: "The signed receipt of a committed deposit (sealed: its vendor and admins; public once released, so mirrors carry it)", Tag: tag}, s.httpReceipt)
	v1.GET("/deposits/:id/handover", httpapi.Op{Public: true, Sealed: sealedVendor, Summary: "The handover statement a deposit carries: what it claims and its state (sealed: its vendor and admins)", Tag: tag}, s.httpHandover)
	v1.POST("/deposits/:id/handover/revoke", httpapi.Op{Summary: "Revoke a sealed deposit's handover statement: its device ids are free again, it never takes effect", Roles: vendor, Scope: own, Sealed: sealedVendor, Tag: tag}, s.httpRevokeHandover)
	v1.POST("/deposits/:id/completeness", httpapi.Op{Summary: "Start the sealed completeness check: the server's own builder rebuilds the deposit with its recipe and compares the result with the shipped image", Roles: vendor, Scope: own, Sealed: sealedVendor, Tag: tag}, s.httpCheckCompleteness)
	v1.GET("/deposits/:id/completeness", httpapi.Op{Public: true, Sealed: sealedVendor, Summary: "A deposit's completeness check: the score and counts for anyone once released or published, the per-file report for its vendor and admins", Tag: tag}, s.httpCompleteness)
	v1.POST("/deposits/:id/completeness/publish", httpapi.Op{Summary: "Publish a sealed deposit's completeness score and counts before release (the per-file report stays private)", Roles: vendor, Scope: own, Sealed: sealedVendor, Tag: tag}, s.httpPublishCompleteness)
	v1.GET("/deposits/:id/completeness/attestation", httpapi.Op{Public: true, Sealed: sealedVendor, Summary: "The public completeness score as an in-toto statement in a DSSE envelope signed by the receipt key", Tag: tag}, s.httpCompletenessAttestation)
	v1.POST("/deposits/:id/approvals", httpapi.Op{Summary: "A trustee's signed approval of a quorum release", Roles: []principal.Role{principal.Trustee}, Scope: httpapi.NamedTrustee, Sealed: &httpapi.Sealed{NamedTrustee: true}, Tag: tag}, s.httpApprove)
	v1.POST("/vendors/:org/checkin", httpapi.Op{Summary: "Check in: the vendor is alive (postpones dead-man releases)", Roles: vendor, Scope: own, Tag: tag}, s.httpCheckin)
	v1.GET("/vendors/:org/checkin", httpapi.Op{Summary: "When the vendor last checked in", Roles: vendor, Scope: own, Tag: tag}, s.httpLastCheckin)
	v1.POST("/trustees", httpapi.Op{Summary: "Register a trustee and its ed25519 public key", Roles: admin, Tag: tag}, s.httpAddTrustee)
	v1.GET("/trustees", httpapi.Op{Summary: "List trustees", Roles: []principal.Role{principal.Trustee}, Tag: tag}, s.httpTrustees)
	v1.GET("/escrow/receipt-key", httpapi.Op{Public: true, Summary: "The public key that verifies receipts", Tag: tag}, s.httpReceiptKey)
	v1.POST("/admin/scrub", httpapi.Op{Summary: "Re-read and re-hash every escrow blob and release artifact now", Roles: admin, Tag: tag}, s.httpScrub)
	v1.GET("/admin/scrub", httpapi.Op{Summary: "Recent scrubs and blobs marked corrupt or missing", Roles: admin, Tag: tag}, s.httpScrubStatus)
	root.GET("/feeds/releases.atom", httpapi.Op{Public: true, Summary: "Atom feed of released deposits", Tag: tag}, s.httpFeed)
}

func (s *Service) httpCreate(c *gin.Context) error {
	var req CreateRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	d, err := s.Create(c.Request.Context(), httpapi.Principal(c), req)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusCreated, d)
}

func (s *Service) httpList(c *gin.Context) error {
	limit, _ := strconv.Atoi(c.Query("limit"))
	ds, err := s.List(c.Request.Context(), httpapi.Principal(c), ListFilter{Product: c.Query("product"), State: State(c.Query("state")), Limit: limit})
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"deposits": ds})
}

func (s *Service) httpUploads(c *gin.Context) error {
	ds, err := s.List(c.Request.Context(), httpapi.Principal(c), ListFilter{State: Uploading})
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"deposits": ds})
}

func (s *Service) httpGet(c *gin.Context) error {
	d, err := s.Get(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, d)
}

func (s *Service) httpAbort(c *gin.Context) error {
	if err := s.Abort(c.Request.Context(), httpapi.Principal(c), c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Service) httpEvents(c *gin.Context) error {
	es, err := s.Events(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"events": es})
}

func (s *Service) httpCheckCompleteness(c *gin.Context) error {
	out, err := s.CheckCompleteness(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusAccepted, out)
}

func (s *Service) httpCompleteness(c *gin.Context) error {
	out, err := s.CompletenessOf(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, out)
}

func (s *Service) httpPublishCompleteness(c *gin.Context) error {
	out, err := s.PublishCompleteness(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, out)
}

func (s *Service) httpCompletenessAttestation(c *gin.Context) error {
	env, err := s.CompletenessAttestation(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, "application/json", env)
	return nil
}

func filePath(c *gin.Context) string { return strings.TrimPrefix(c.Param("path"), "/") }

func (s *Service) httpPutFile(c *gin.Context) error {
	var offset int64
	if o := c.Query("offset"); o != "" {
		var err error
		if offset, err = strconv.ParseInt(o, 10, 64); err != nil || offset < 0 {
			return errs.E(errs.Invalid, "offset %q: want a number of bytes", o)
		}
	}
	st, err := s.PutFileFrom(c.Request.Context(), httpapi.Principal(c), c.Param("id"), filePath(c), offset, c.Request.Body)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, st)
}

// SHA256Header carries a downloaded file's sha256 (hex), so clients check
// what they received.
const SHA256Header = "X-Afterlife-Sha256"

func (s *Service) httpGetFile(c *gin.Context) error {
	ctx, p := c.Request.Context(), httpapi.Principal(c)
	e, plain, err := s.PublicCopy(ctx, p, c.Param("id"), filePath(c))
	if err != nil {
		return err
	}
	if plain != "" {
		return s.servePublicCopy(c, e, plain)
	}
	f, err := s.Open(ctx, p, c.Param("id"), filePath(c))
	if err != nil {
		return err
	}
	defer f.Close()
	h := c.Writer.Header()
	// A first read that fails (the blob store away) is still an API error
	// with its status and Retry-After, not a 200 cut short.
	body := bufio.NewReaderSize(f, 64<<10)
	if _, err := body.Peek(1); err != nil && err != io.EOF {
		return err
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set(SHA256Header, f.SHA256)
	h.Set("X-Afterlife-Kind", string(f.Kind))
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", lastElem(f.Path)))
	// The digest is the ETag, so a download cut short resumes with Range
	// and If-Range (curl -C -, the device client) and never splices two
	// different contents.
	h.Set("ETag", `"`+f.SHA256+`"`)
	if !f.Released {
		h.Set("Cache-Control", "private, no-store")
	}
	content := &forwardSeeker{r: body, size: f.Size}
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, content)
	if content.err != nil {
		// The body stops short of Content-Length (the digest check holds
		// back the last byte): the client sees a truncated transfer,
		// never complete wrong content, and resumes from what it has.
		s.log.Error("escrow: download aborted", "deposit", c.Param("id"), "path", f.Path, "err", content.err)
	}
	return nil
}

// servePublicCopy sends a released public file as the blob store holds
// it: with sendfile from disk, by redirect to a presigned URL on an S3
// store that has a public address, streamed from the store otherwise. It
// is not re-hashed on the way: the copy was checked when the release wrote
// it and by every scrub since, and the client checks the digest it is
// given (X-Afterlife-Sha256, the ETag; mirrors check the manifest's).
func (s *Service) servePublicCopy(c *gin.Context, e manifest.Entry, plain blob.Digest) error {
	h := c.Writer.Header()
	h.Set(SHA256Header, e.SHA256)
	h.Set("X-Afterlife-Kind", string(e.Kind))
	err := blobhttp.Serve(c.Writer, c.Request, s.blobs, plain, blobhttp.Options{Filename: lastElem(e.Path)})
	if errs.Is(err, errs.NotFound) {
		return s.noteMissing(c.Request.Context(), plain, err)
	}
	return err
}

// forwardSeeker lets http.ServeContent answer Range requests over a file
// that can only be read forward (digest-checked, or decrypted on the fly):
// seeking forward skips by reading, so a range that runs to the end still
// has the whole file verified, and seeking back is refused.
type forwardSeeker struct {
	r    io.Reader
	size int64
	pos  int64 // where the next Read starts
	read int64 // bytes consumed from r
	err  error // the first read error other than EOF
}

func (f *forwardSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.size
	}
	if offset < f.read {
		return 0, errs.E(errs.Invalid, "escrow: a file download cannot seek back")
	}
	f.pos = offset
	return offset, nil
}

func (f *forwardSeeker) Read(p []byte) (int, error) {
	if f.read < f.pos {
		n, err := io.CopyN(io.Discard, f.r, f.pos-f.read)
		f.read += n
		if err != nil {
			f.err = err
			return 0, err
		}
	}
	n, err := f.r.Read(p)
	f.read += int64(n)
	f.pos = f.read
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
	return n, err
}

func lastElem(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func (s *Service) httpUpload(c *gin.Context) error {
	st, err := s.Upload(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, st)
}

func (s *Service) httpCommit(c *gin.Context) error {
	r, err := s.Commit(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, r)
}

func (s *Service) httpHandover(c *gin.Context) error {
	h, err := s.HandoverOf(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, h)
}

func (s *Service) httpRevokeHandover(c *gin.Context) error {
	h, err := s.RevokeHandover(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, h)
}

func (s *Service) httpReceipt(c *gin.Context) error {
	r, err := s.Receipt(c.Request.Context(), httpapi.Principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, r)
}

// ApprovalRequest is the body of POST /v1/deposits/:id/approvals.
type ApprovalRequest struct {
	Trustee   string `json:"trustee"`
	Signature string `json:"signature"` // base64 ed25519 over ApprovalMessage
}

func (s *Service) httpApprove(c *gin.Context) error {
	var req ApprovalRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	res, err := s.Approve(c.Request.Context(), httpapi.Principal(c), c.Param("id"), req.Trustee, req.Signature)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, res)
}

// CheckinResponse is the answer to a check-in.
type CheckinResponse struct {
	Org string `json:"org"`
	At  string `json:"at"` // RFC 3339; empty: never
}

func (s *Service) httpCheckin(c *gin.Context) error {
	at, err := s.Checkin(c.Request.Context(), httpapi.Principal(c), c.Param("org"))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, CheckinResponse{Org: c.Param("org"), At: at.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
}

func (s *Service) httpLastCheckin(c *gin.Context) error {
	org := c.Param("org")
	if err := httpapi.RequireOrg(c, org); err != nil {
		return err
	}
	at, err := s.LastCheckin(c.Request.Context(), org)
	if err != nil {
		return err
	}
	resp := CheckinResponse{Org: org}
	if !at.IsZero() {
		resp.At = at.Format("2006-01-02T15:04:05.000Z07:00")
	}
	return httpapi.JSON(c, http.StatusOK, resp)
}

// TrusteeRequest is the body of POST /v1/trustees.
type TrusteeRequest struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"` // ed25519:<base64>, or PEM
}

func (s *Service) httpAddTrustee(c *gin.Context) error {
	var req TrusteeRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	t, err := s.AddTrustee(c.Request.Context(), httpapi.Principal(c), req.Name, req.PublicKey)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusCreated, t)
}

func (s *Service) httpTrustees(c *gin.Context) error {
	ts, err := s.Trustees(c.Request.Context())
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"trustees": ts})
}

// ReceiptKey is the body of GET /v1/escrow/receipt-key.
type ReceiptKey struct {
	Algorithm string `json:"algorithm"` // ed25519
	PublicKey string `json:"public_key"`
	KeyID     string `json:"key_id"`
}

func (s *Service) httpReceiptKey(c *gin.Context) error {
	pub := s.ReceiptPublicKey()
	return httpapi.JSON(c, http.StatusOK, ReceiptKey{Algorithm: "ed25519", PublicKey: receipt.FormatPublicKey(pub), KeyID: receipt.KeyID(pub)})
}

func (s *Service) httpScrub(c *gin.Context) error {
	p := httpapi.Principal(c)
	rep, err := s.Scrubber("api").Run(c.Request.Context(), p.Actor())
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, rep)
}

func (s *Service) httpScrubStatus(c *gin.Context) error {
	st, err := s.ScrubStatus(c.Request.Context(), httpapi.Principal(c))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, st)
}

func (s *Service) httpFeed(c *gin.Context) error {
	b, err := s.ReleasesFeed(c.Request.Context())
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, "application/atom+xml; charset=utf-8", b)
	return nil
}
