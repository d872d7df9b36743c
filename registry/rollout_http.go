package registry

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// registerRolloutRoutes mounts the phased rollout routes: a maintainer of
// the product, or an admin, starts, pauses, resumes or aborts one. A
// release's rollout and its current stage are part of GET /v1/releases/:id.
func (s *Service) registerRolloutRoutes(v1 *httpapi.Router) {
	const tag = "releases"
	may := []principal.Role{principal.Maintainer}
	v1.POST("/releases/:id/rollout", httpapi.Op{Summary: "Start a phased rollout of a release: {\"stages\":[{\"percent\",\"dwell_seconds\"}]} (a maintainer of the product, or admin)", Roles: may, Scope: httpapi.Granted, Tag: tag}, s.httpStartRollout)
	for _, action := range []string{RolloutPause, RolloutResume, RolloutAbort} {
		v1.POST("/releases/:id/rollout/"+action, httpapi.Op{Summary: "Rollout: " + action + " ({\"reason\"}; a maintainer of the product, or admin)", Roles: may, Scope: httpapi.Granted, Tag: tag}, s.httpChangeRollout(action))
	}
}

func (s *Service) httpStartRollout(c *gin.Context) error {
	var req RolloutRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	rel, err := s.StartRollout(c.Request.Context(), httpapi.Principal(c), c.Param("id"), req.Stages)
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, rel)
}

func (s *Service) httpChangeRollout(action string) func(c *gin.Context) error {
	return func(c *gin.Context) error {
		var req ReviewRequest
		if err := httpapi.BindJSON(c, &req); err != nil {
			return err
		}
		rel, err := s.ChangeRollout(c.Request.Context(), httpapi.Principal(c), c.Param("id"), action, req.Reason)
		if err != nil {
			return err
		}
		return httpapi.JSON(c, http.StatusOK, rel)
	}
}
