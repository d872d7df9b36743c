// Package authhttp exposes organisations and tokens over the API: who am I,
// and the admin's token and org management. It is an HTTP adapter of
// internal/auth and holds no logic of its own.
package authhttp

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Register mounts the routes on the /v1 router.
func Register(v1 *httpapi.Router, s *auth.Service) {
	admin := []principal.Role{principal.Admin}
	v1.GET("/whoami", httpapi.Op{Public: true, Summary: "Who the token belongs to", Tag: "auth"}, func(c *gin.Context) error {
		p := httpapi.Principal(c)
		return httpapi.JSON(c, http.StatusOK, gin.H{"token_id": p.TokenID, "name": p.Name, "role": p.Role, "org": p.Org, "anonymous": p.IsAnonymous()})
	})
	v1.POST("/admin/orgs", httpapi.Op{Summary: "Create an organisation", Roles: admin, Tag: "auth"}, func(c *gin.Context) error {
		var req struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Kind string `json:"kind"`
		}
		if err := httpapi.BindJSON(c, &req); err != nil {
			return err
		}
		if err := s.CreateOrg(c.Request.Context(), req.ID, req.Name, req.Kind); err != nil {
			return err
		}
		o, err := s.Org(c.Request.Context(), req.ID)
		if err != nil {
			return err
		}
		return httpapi.JSON(c, http.StatusCreated, o)
	})
	v1.PUT("/admin/orgs/:id", httpapi.Op{Summary: "Rename an organisation (its display name; the id stays)", Roles: admin, Tag: "auth"}, func(c *gin.Context) error {
		var req struct {
			Name string `json:"name"`
		}
		if err := httpapi.BindJSON(c, &req); err != nil {
			return err
		}
		o, err := s.RenameOrg(c.Request.Context(), c.Param("id"), req.Name)
		if err != nil {
			return err
		}
		return httpapi.JSON(c, http.StatusOK, o)
	})
	v1.GET("/admin/orgs", httpapi.Op{Summary: "List organisations", Roles: admin, Tag: "auth"}, func(c *gin.Context) error {
		orgs, err := s.Orgs(c.Request.Context())
		if err != nil {
			return err
		}
		return httpapi.JSON(c, http.StatusOK, gin.H{"orgs": nonNil(orgs)})
	})
	v1.POST("/admin/tokens", httpapi.Op{Summary: "Create a token (its secret is shown once)", Roles: admin, Tag: "auth"}, func(c *gin.Context) error {
		var req struct {
			Name     string `json:"name"`
			Role     string `json:"role"`
			Org      string `json:"org"`
			Operator string `json:"operator"`
			TTL      string `json:"ttl"`
		}
		if err := httpapi.BindJSON(c, &req); err != nil {
			return err
		}
		var ttl time.Duration
		if req.TTL != "" {
			d, err := config.ParseDuration(req.TTL)
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "ttl")
			}
			ttl = d
		}
		secret, tok, err := s.CreateToken(c.Request.Context(), auth.TokenSpec{Name: req.Name, Role: principal.Role(req.Role), Org: req.Org, Operator: req.Operator, TTL: ttl})
		if err != nil {
			return err
		}
		return httpapi.JSON(c, http.StatusCreated, gin.H{"token": secret, "info": tok})
	})
	v1.GET("/admin/tokens", httpapi.Op{Summary: "List tokens (never their secrets)", Roles: admin, Tag: "auth"}, func(c *gin.Context) error {
		toks, err := s.Tokens(c.Request.Context(), c.Query("org"))
		if err != nil {
			return err
		}
		return httpapi.JSON(c, http.StatusOK, gin.H{"tokens": nonNil(toks)})
	})
	v1.PUT("/admin/tokens/:id/operator", httpapi.Op{Summary: "Bind a builder token to an operator organisation", Roles: admin, Tag: "auth"}, func(c *gin.Context) error {
		var req struct {
			Operator string `json:"operator"`
		}
		if err := httpapi.BindJSON(c, &req); err != nil {
			return err
		}
		tok, err := s.BindOperator(c.Request.Context(), c.Param("id"), req.Operator)
		if err != nil {
			return err
		}
		return httpapi.JSON(c, http.StatusOK, tok)
	})
	v1.DELETE("/admin/tokens/:id", httpapi.Op{Summary: "Revoke a token", Roles: admin, Tag: "auth"}, func(c *gin.Context) error {
		if err := s.Revoke(c.Request.Context(), c.Param("id")); err != nil {
			return err
		}
		c.Status(http.StatusNoContent)
		return nil
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
