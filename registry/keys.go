package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// RotateKey replaces the signing key of a TUF role (root, targets,
// snapshot or timestamp) under the same lease as every other signature,
// so no publish on another replica interleaves with it. A new root is
// signed by the old and the new root key, so devices that trust the old
// root follow the chain. When the root is held by custodians (or its one
// key is offline) an online key cannot rotate at once: RotateKey returns
// the next root version as a proposal for the root's key holders to sign,
// and PublishRoot publishes it.
func (s *Service) RotateKey(ctx context.Context, who principal.Principal, role string) (proposal []byte, err error) {
	if who.Role != principal.Admin {
		return nil, errs.E(errs.Forbidden, "only admins rotate keys")
	}
	switch role {
	case "root", "targets", "snapshot", "timestamp":
	default:
		return nil, errs.E(errs.Invalid, "role %q: want root, targets, snapshot or timestamp", role)
	}
	_, err = s.withTUFLease(ctx, true, func() error {
		proposal, err = s.o.TUF.RotateOrPropose(ctx, role)
		return err
	})
	if err != nil {
		return nil, err
	}
	if proposal != nil {
		s.log.Info("tuf key rotation proposed", "role", role, "by", who.Actor())
		return proposal, nil
	}
	// Recorded after the new root is published: the transparency log
	// reads the registry's event log (an event of no product).
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		return s.event(ctx, tx, "", "", who.Actor(), "key_rotated", role)
	}); err != nil {
		return nil, fmt.Errorf("registry: record the rotation of the %s key: %w", role, err)
	}
	s.log.Info("tuf key rotated", "role", role, "by", who.Actor())
	return nil, nil
}

// PublishRoot publishes a root proposal signed by a threshold of the
// current root's keys and of its own (see registry/tuf PublishRoot),
// under the TUF lease.
func (s *Service) PublishRoot(ctx context.Context, who principal.Principal, root []byte) (int64, error) {
	if who.Role != principal.Admin {
		return 0, errs.E(errs.Forbidden, "only admins publish a root")
	}
	var version int64
	_, err := s.withTUFLease(ctx, true, func() error {
		var err error
		version, err = s.o.TUF.PublishRoot(ctx, root)
		return err
	})
	if err != nil {
		return 0, err
	}
	// A new root is a change of the keys devices trust: the transparency
	// log reads it from the registry's event log like a rotation.
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		return s.event(ctx, tx, "", "", who.Actor(), "root_published", fmt.Sprint(version))
	}); err != nil {
		return 0, fmt.Errorf("registry: record the publication of root version %d: %w", version, err)
	}
	s.log.Info("tuf root published", "root_version", version, "by", who.Actor())
	return version, nil
}

// RootCustody says who holds the TUF root.
func (s *Service) RootCustody(ctx context.Context) (tuf.Custody, error) {
	return s.o.TUF.Custody(ctx)
}

func (s *Service) registerKeyRoutes(v1 *httpapi.Router) {
	v1.POST("/admin/keys/rotate", httpapi.Op{Summary: "Rotate a TUF role's signing key (root, targets, snapshot, timestamp); under a root held by custodians, answer 202 with a root proposal to sign", Roles: []principal.Role{principal.Admin}, Tag: "tuf"},
		func(c *gin.Context) error {
			var req struct {
				Role string `json:"role"`
			}
			if err := httpapi.BindJSON(c, &req); err != nil {
				return err
			}
			proposal, err := s.RotateKey(c.Request.Context(), httpapi.Principal(c), req.Role)
			if err != nil {
				return err
			}
			if proposal != nil {
				return httpapi.JSON(c, http.StatusAccepted, gin.H{"proposal": json.RawMessage(proposal)})
			}
			return httpapi.JSON(c, http.StatusOK, gin.H{"rotated": req.Role})
		})
	v1.POST("/admin/root", httpapi.Op{Summary: "Publish the next TUF root version, signed by a threshold of the current root's keys and of its own", Roles: []principal.Role{principal.Admin}, Tag: "tuf"},
		func(c *gin.Context) error {
			var req struct {
				Root json.RawMessage `json:"root"`
			}
			if err := httpapi.BindJSON(c, &req); err != nil {
				return err
			}
			if len(req.Root) == 0 {
				return errs.E(errs.Invalid, "no root: send {\"root\": <signed root metadata>}")
			}
			v, err := s.PublishRoot(c.Request.Context(), httpapi.Principal(c), req.Root)
			if err != nil {
				return err
			}
			return httpapi.JSON(c, http.StatusOK, gin.H{"root_version": v})
		})
}
