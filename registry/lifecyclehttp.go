package registry

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

func (s *Service) registerLifecycleRoutes(v1 *httpapi.Router) {
	const tag = "lifecycle"
	v1.GET("/products/:id/lifecycle/"+OpenEoXFile, httpapi.Op{Public: true, Summary: "A product's support period as an OpenEoX core document in a wrapper naming the product (signed as the TUF target <product>/lifecycle/openeox.json)", Tag: tag}, s.httpLifecycle(OpenEoXFile))
	v1.GET("/products/:id/lifecycle/"+CLEFile, httpapi.Op{Public: true, Summary: "A product's lifecycle events in the shape of ECMA-428 CLE (signed as the TUF target <product>/lifecycle/cle.json)", Tag: tag}, s.httpLifecycle(CLEFile))
	v1.GET("/lifecycle", httpapi.Op{Public: true, Summary: "Every product's support period and lifecycle documents, with their signed TUF targets", Tag: tag}, s.httpCatalogue)
	v1.GET("/lifecycle/ending-soon", httpapi.Op{Summary: "Products near the end of security support with no deposit: every vendor's for admins, a vendor's own for vendors", Roles: []principal.Role{principal.Vendor}, Tag: tag}, s.httpEndingSoon)
}

func (s *Service) httpLifecycle(file string) func(*gin.Context) error {
	return func(c *gin.Context) error {
		doc, err := s.LifecycleDocument(c.Request.Context(), c.Param("id"), file)
		if err != nil {
			return err
		}
		c.Header("Content-Length", strconv.Itoa(len(doc)))
		c.Data(http.StatusOK, "application/json", doc)
		return nil
	}
}

func (s *Service) httpCatalogue(c *gin.Context) error {
	es, err := s.LifecycleCatalogue(c.Request.Context())
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"products": es})
}

func (s *Service) httpEndingSoon(c *gin.Context) error {
	es, err := s.EndingSoon(c.Request.Context(), httpapi.Principal(c))
	if err != nil {
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"products": es, "window_days": int(s.o.EndingSoonWindow.Hours() / 24)})
}
