package fwupd

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blobhttp"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/registry/fwupd/remoteconf"
)

// The remote's paths under the site root. A mirror copies the tree as it
// is: cabinets and generations never change, the two current names and
// the .conf file do.
const (
	Prefix       = remoteconf.Prefix
	MetadataPath = remoteconf.MetadataPath
	JcatPath     = MetadataPath + ".jcat"
	ConfPath     = remoteconf.ConfPath
	CAPath       = remoteconf.CAPath
)

// GenerationHeader names the generation a current name answered from, so
// a client (or a mirror) can tell that its two downloads belong together.
const GenerationHeader = "X-Fwupd-Generation"

// Served from the current names: they change with each generation.
const currentCacheControl = "public, max-age=60"

// Register mounts the remote's public files on the site root.
func (r *Remote) Register(root *httpapi.Router) {
	const tag = "fwupd"
	root.GET(MetadataPath, httpapi.Op{Public: true, Summary: "The fwupd remote's metadata (AppStream, zstd)", Tag: tag}, r.httpMetadata)
	root.GET(JcatPath, httpapi.Op{Public: true, Summary: "The Jcat file of the fwupd metadata: sha256 and PKCS#7 signature", Tag: tag}, r.httpJcat)
	root.GET(Prefix+"generations/:n/:file", httpapi.Op{Public: true, Summary: "One published generation of the fwupd metadata and its Jcat file (immutable)", Tag: tag}, r.httpGeneration)
	root.GET(Prefix+"cabs/:name", httpapi.Op{Public: true, Summary: "A community release as an fwupd cabinet archive (immutable)", Tag: tag, Stream: true}, r.httpCab)
	root.GET(ConfPath, httpapi.Op{Public: true, Summary: "The fwupd remote's configuration for /etc/fwupd/remotes.d/ (disabled until the owner enables it)", Tag: tag}, r.httpConf)
	root.GET(CAPath, httpapi.Op{Public: true, Summary: "The CA certificate fwupd checks the metadata signature with", Tag: tag}, r.httpCA)
}

func (r *Remote) httpMetadata(c *gin.Context) error {
	g, err := r.Current(c.Request.Context())
	if err != nil {
		return err
	}
	c.Header(GenerationHeader, strconv.FormatInt(g.N, 10))
	return r.serveBytes(c, g.Metadata, "firmware.xml.zst", "application/zstd", currentCacheControl)
}

func (r *Remote) httpJcat(c *gin.Context) error {
	g, err := r.Current(c.Request.Context())
	if err != nil {
		return err
	}
	c.Header(GenerationHeader, strconv.FormatInt(g.N, 10))
	return r.serveBytes(c, g.Jcat, "firmware.xml.zst.jcat", "application/gzip", currentCacheControl)
}

func (r *Remote) httpGeneration(c *gin.Context) error {
	n, err := strconv.ParseInt(c.Param("n"), 10, 64)
	if err != nil || n < 1 {
		return errs.E(errs.NotFound, "fwupd: no generation %q", c.Param("n"))
	}
	g, err := r.Get(c.Request.Context(), n)
	if err != nil {
		return err
	}
	c.Header(GenerationHeader, strconv.FormatInt(g.N, 10))
	switch c.Param("file") {
	case "firmware.xml.zst":
		return r.serveBytes(c, g.Metadata, "firmware.xml.zst", "application/zstd", "")
	case "firmware.xml.zst.jcat":
		return r.serveBytes(c, g.Jcat, "firmware.xml.zst.jcat", "application/gzip", "")
	}
	return errs.E(errs.NotFound, "fwupd: generation %d has no file %q", n, c.Param("file"))
}

// serveBytes sends a stored blob from this server (never a redirect), so
// the metadata and its Jcat file come from where the client asked.
func (r *Remote) serveBytes(c *gin.Context, d blob.Digest, name, ctype, cache string) error {
	c.Header("Content-Type", ctype)
	return blobhttp.Serve(c.Writer, c.Request, r.o.Blobs, d, blobhttp.Options{Filename: name, NoRedirect: true, CacheControl: cache})
}

func (r *Remote) httpCab(c *gin.Context) error {
	cb, err := r.CabByName(c.Request.Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return blobhttp.Serve(c.Writer, c.Request, r.o.Blobs, cb.Digest, blobhttp.Options{Filename: cb.Name, Size: cb.Size})
}

func (r *Remote) httpConf(c *gin.Context) error {
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+RemoteID+`.conf"`)
	c.String(http.StatusOK, r.Conf())
	return nil
}

func (r *Remote) httpCA(c *gin.Context) error {
	c.Header("Content-Disposition", `attachment; filename="`+RemoteID+`-ca.pem"`)
	c.Data(http.StatusOK, "application/x-pem-file", r.o.Signer.CAPEM)
	return nil
}

// Conf is the remote's configuration file for /etc/fwupd/remotes.d/. It
// is disabled: the owner opts in by setting Enabled=true.
func (r *Remote) Conf() string { return remoteconf.Registry(r.o.PublicURL, r.o.Branch) }
