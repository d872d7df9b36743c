package registry

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// RotateKey replaces the signing key of a TUF role (root, targets,
// snapshot or timestamp) under the same lease as every other signature,
// so no publish on another replica interleaves with it. A new root is
// signed by the old and the new root key, so devices that trust the old
// root follow the chain.
func (s *Service) RotateKey(ctx context.Context, who principal.Principal, role string) error {
	if who.Role != principal.Admin {
		return errs.E(errs.Forbidden, "only admins rotate keys")
	}
	switch role {
	case "root", "targets", "snapshot", "timestamp":
	default:
		return errs.E(errs.Invalid, "role %q: want root, targets, snapshot or timestamp", role)
	}
	_, err := s.withTUFLease(ctx, true, func() error { return s.o.TUF.Rotate(ctx, role) })
	if err != nil {
		return err
	}
	// Recorded after the new root is published: the transparency log
	// reads the registry's event log (an event of no product).
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		return s.event(ctx, tx, "", "", who.Actor(), "key_rotated", role)
	}); err != nil {
		return fmt.Errorf("registry: record the rotation of the %s key: %w", role, err)
	}
	s.log.Info("tuf key rotated", "role", role, "by", who.Actor())
	return nil
}

func (s *Service) registerKeyRoutes(v1 *httpapi.Router) {
	v1.POST("/admin/keys/rotate", httpapi.Op{Summary: "Rotate a TUF role's signing key (root, targets, snapshot, timestamp)", Roles: []principal.Role{principal.Admin}, Tag: "tuf"},
		func(c *gin.Context) error {
			var req struct {
				Role string `json:"role"`
			}
			if err := httpapi.BindJSON(c, &req); err != nil {
				return err
			}
			if err := s.RotateKey(c.Request.Context(), httpapi.Principal(c), req.Role); err != nil {
				return err
			}
			return httpapi.JSON(c, http.StatusOK, gin.H{"rotated": req.Role})
		})
}
