package httpapi

import (
	"github.com/gin-gonic/gin"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

var pathParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// OpenAPIPath turns a gin route pattern into OpenAPI's: /a/:id/*path → /a/{id}/{path}.
func OpenAPIPath(p string) string { return pathParam.ReplaceAllString(p, "{$1}") }

// OpenAPI is the OpenAPI 3.1 document of every route registered through a
// Router, built from the same records that registered them, so the two
// cannot drift.
func (a *API) OpenAPI() map[string]any {
	a.mu.Lock()
	routes := append([]route(nil), a.routes...)
	a.mu.Unlock()
	sort.Slice(routes, func(i, j int) bool {
		if routes[i].path != routes[j].path {
			return routes[i].path < routes[j].path
		}
		return routes[i].method < routes[j].method
	})
	errorRef := map[string]any{"$ref": "#/components/responses/Error"}
	paths := map[string]any{}
	for _, r := range routes {
		p := OpenAPIPath(r.path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		op := map[string]any{
			"summary":     r.op.Summary,
			"operationId": operationID(r.method, r.path),
			"responses": map[string]any{
				"2XX":     map[string]any{"description": "success"},
				"default": errorRef,
			},
		}
		if r.op.Tag != "" {
			op["tags"] = []string{r.op.Tag}
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(r.path, -1) {
			params = append(params, map[string]any{
				"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"},
			})
		}
		if params != nil {
			op["parameters"] = params
		}
		if len(r.op.Roles) > 0 {
			op["security"] = []any{map[string]any{"bearer": []string{}}}
		}
		if r.op.Declared() {
			op["x-roles"] = r.op.Who()
		}
		if r.op.Scope != AnyResource {
			op["x-scope"] = string(r.op.Scope)
		}
		if sl := r.op.Sealed; sl != nil {
			op["x-sealed"] = map[string]any{"x-roles": who(false, sl.Roles), "x-scope": string(OwnOrg), "named-trustee": sl.NamedTrustee}
		}
		if r.op.Page {
			op["x-page"] = true
		}
		switch r.method {
		case http.MethodPost, http.MethodPut:
			limit := r.op.MaxBody
			if limit == 0 {
				limit = DefaultMaxBody
			}
			op["x-max-body"] = limit
		}
		item[strings.ToLower(r.method)] = op
	}
	title, version := a.opts.Title, a.opts.Version
	if title == "" {
		title = "afterlife API"
	}
	if version == "" {
		version = "dev"
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": title, "version": version},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"responses": map[string]any{"Error": map[string]any{
				"description": `an error: {"error":{"code":"…","message":"…"}}`,
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
					"type": "object",
					"properties": map[string]any{"error": map[string]any{
						"type": "object",
						"properties": map[string]any{
							"code":       map[string]any{"type": "string", "enum": []string{"not_found", "invalid", "conflict", "unauthenticated", "forbidden", "too_large", "unavailable", "internal", "method_not_allowed"}},
							"message":    map[string]any{"type": "string"},
							"request_id": map[string]any{"type": "string"},
						},
						"required": []string{"code", "message"},
					}},
				}}},
			}},
		},
	}
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.Split(path, "/") {
		part = strings.TrimLeft(part, ":*")
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]))
		b.WriteString(strings.NewReplacer("-", "", ".", "", "_", "").Replace(part[1:]))
	}
	return b.String()
}

// ServeOpenAPI registers GET /openapi.json on r.
func (a *API) ServeOpenAPI(r *Router) {
	r.GET("/openapi.json", Op{Summary: "This OpenAPI 3.1 document", Public: true, Tag: "meta"}, func(c *gin.Context) error {
		return JSON(c, http.StatusOK, a.OpenAPI())
	})
}
