package farmhttp

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Witnessed is the transparency log as the farm's witness routes need it
// (registry/translog, adapted in cmd/afterlife): every builder is also a
// witness of the log.
type Witnessed interface {
	WitnessJob(ctx context.Context, old int64) (builder.WitnessJob, error)
	// Cosign records a builder's cosignature; operator is the operator its
	// token is bound to, the one its cosignature counts for.
	Cosign(ctx context.Context, operator string, c builder.Cosignature) error
}

// RegisterWitness mounts the builders' witness routes on the /v1 router.
func RegisterWitness(r *httpapi.Router, w Witnessed) {
	agent := []principal.Role{principal.Builder}
	h := witnessRoutes{w}
	r.GET("/farm/log/witness", httpapi.Op{Summary: "The log's newest checkpoint and a consistency proof from ?old=, for a builder to witness", Roles: agent, Tag: "farm"}, h.job)
	r.POST("/farm/log/cosignatures", httpapi.Op{Summary: "A builder's cosignature (C2SP tlog-cosignature) of a checkpoint", Roles: agent, Tag: "farm"}, h.cosign)
}

type witnessRoutes struct{ w Witnessed }

func (h witnessRoutes) job(c *gin.Context) error {
	old := int64(0)
	if s := c.Query("old"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return errs.E(errs.Invalid, "old %q: want a size", s)
		}
		old = n
	}
	job, err := h.w.WitnessJob(c.Request.Context(), old)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, job)
}

func (h witnessRoutes) cosign(c *gin.Context) error {
	var req builder.Cosignature
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if err := h.w.Cosign(c.Request.Context(), httpapi.Principal(c).Operator, req); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
