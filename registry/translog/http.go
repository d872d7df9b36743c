package translog

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// Prefix is where the log is served: <public URL>/log/checkpoint and
// <public URL>/log/tile/… in the C2SP tlog-tiles layout.
const Prefix = "/log"

// Register mounts the log's public routes on the root router and its API
// on /v1.
func (l *Log) Register(root, v1 *httpapi.Router) {
	const tag = "log"
	root.GET(Prefix+"/checkpoint", httpapi.Op{Public: true, Summary: "The log's newest checkpoint (C2SP tlog-checkpoint) with its witnesses' cosignatures", Tag: tag}, l.httpCheckpoint)
	root.GET(Prefix+"/tile/*tile", httpapi.Op{Public: true, Summary: "A tile or an entry bundle of the log (C2SP tlog-tiles: tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>])", Tag: tag}, l.httpTile)
	v1.GET("/log", httpapi.Op{Public: true, Summary: "The log's origin, public key and size", Tag: tag}, l.httpInfo)
	v1.GET("/log/entries/:index", httpapi.Op{Public: true, Summary: "One entry of the log", Tag: tag}, l.httpEntry)
	v1.GET("/log/entries/:index/proof", httpapi.Op{Public: true, Summary: "A proof bundle (C2SP tlog-proof) of one entry against the newest checkpoint", Tag: tag}, l.httpProof)
	v1.GET("/log/consistency", httpapi.Op{Public: true, Summary: "A consistency proof between two sizes (?old=&size=), one base64 hash a line", Tag: tag}, l.httpConsistency)
	v1.GET("/log/about/:id", httpapi.Op{Public: true, Summary: "The entries about a product, deposit or release", Tag: tag}, l.httpAbout)
}

// Info is the log's description.
type Info struct {
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	Size        int64  `json:"size"`           // of the newest checkpoint the log signed
	Witnessed   int64  `json:"witnessed_size"` // of the newest that meets the policy (served at /log/checkpoint)
	// Policy is the log's key, its witnesses and the quorum, as `afterlife
	// log verify --policy` reads it. Fetched from the log it is only as
	// good as the log; devices get it from signed TUF root metadata.
	Policy verify.Policy `json:"policy"`
}

func (l *Log) httpInfo(g *gin.Context) error {
	ctx := g.Request.Context()
	size, err := l.checkpointSize(ctx)
	if err != nil {
		return err
	}
	witnessed, err := l.witnessedSize(ctx)
	if err != nil {
		return err
	}
	pol, err := l.Policy(ctx)
	if err != nil {
		return err
	}
	g.JSON(http.StatusOK, Info{Origin: l.origin, VerifierKey: l.vkey, Size: size, Witnessed: witnessed, Policy: pol})
	return nil
}

func (l *Log) httpCheckpoint(g *gin.Context) error {
	cp, _, err := l.Checkpoint(g.Request.Context())
	if err != nil {
		return err
	}
	g.Header("Cache-Control", "no-cache")
	g.Data(http.StatusOK, "text/plain; charset=utf-8", cp)
	return nil
}

func (l *Log) httpTile(g *gin.Context) error {
	rest := strings.TrimPrefix(g.Param("tile"), "/")
	level, index, ok := strings.Cut(rest, "/")
	if !ok {
		return errs.E(errs.NotFound, "no tile %s", rest)
	}
	var data []byte
	var err error
	var partial uint8
	if level == "entries" {
		var n uint64
		n, partial, err = layout.ParseTileIndexPartial(index)
		if err != nil {
			return errs.Wrap(errs.NotFound, err, "no entry bundle %s", index)
		}
		data, err = l.EntryBundle(g.Request.Context(), n, partial)
	} else {
		var lv, n uint64
		lv, n, partial, err = layout.ParseTileLevelIndexPartial(level, index)
		if err != nil {
			return errs.Wrap(errs.NotFound, err, "no tile %s", rest)
		}
		data, err = l.Tile(g.Request.Context(), lv, n, partial)
	}
	if err != nil {
		return err
	}
	// A tile never changes: a full one stays, a partial one is replaced
	// by a wider path.
	g.Header("Cache-Control", "public, max-age=31536000, immutable")
	g.Data(http.StatusOK, "application/octet-stream", data)
	return nil
}

func indexParam(g *gin.Context, name string) (int64, error) {
	n, err := strconv.ParseInt(g.Param(name), 10, 64)
	if err != nil || n < 0 {
		return 0, errs.E(errs.Invalid, "%s %q: want a number", name, g.Param(name))
	}
	return n, nil
}

func (l *Log) httpEntry(g *gin.Context) error {
	idx, err := indexParam(g, "index")
	if err != nil {
		return err
	}
	size, err := l.checkpointSize(g.Request.Context())
	if err != nil {
		return err
	}
	if idx >= size {
		return errs.E(errs.NotFound, "entry %d is not in the log", idx)
	}
	data, err := l.Entry(g.Request.Context(), idx)
	if err != nil {
		return err
	}
	g.Data(http.StatusOK, "application/json", data)
	return nil
}

func (l *Log) httpProof(g *gin.Context) error {
	idx, err := indexParam(g, "index")
	if err != nil {
		return err
	}
	b, err := l.ProofBundle(g.Request.Context(), idx)
	if err != nil {
		return err
	}
	g.Data(http.StatusOK, "text/plain; charset=utf-8", b)
	return nil
}

func (l *Log) httpConsistency(g *gin.Context) error {
	old, err1 := strconv.ParseInt(g.Query("old"), 10, 64)
	size, err2 := strconv.ParseInt(g.Query("size"), 10, 64)
	if err1 != nil || err2 != nil {
		return errs.E(errs.Invalid, "want ?old=<size>&size=<size>")
	}
	have, err := l.checkpointSize(g.Request.Context())
	if err != nil {
		return err
	}
	if size > have {
		return errs.E(errs.NotFound, "the log has no checkpoint of size %d", size)
	}
	p, err := l.Consistency(g.Request.Context(), old, size)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, h := range p {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	g.Data(http.StatusOK, "text/plain; charset=utf-8", b.Bytes())
	return nil
}

func (l *Log) httpAbout(g *gin.Context) error {
	list, err := l.EntriesAbout(g.Request.Context(), g.Param("id"))
	if err != nil {
		return err
	}
	g.JSON(http.StatusOK, list)
	return nil
}
