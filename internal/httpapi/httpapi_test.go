package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

type tokens map[string]principal.Principal

func (t tokens) Authenticate(_ context.Context, secret string) (principal.Principal, error) {
	if p, ok := t[secret]; ok {
		return p, nil
	}
	return principal.Principal{}, errs.E(errs.Unauthenticated, "invalid token")
}

func newTestAPI() *API {
	a := New(Options{Auth: tokens{
		"admin":  {Role: principal.Admin, Name: "root"},
		"acme":   {Role: principal.Vendor, Name: "acme-ci", Org: "acme"},
		"globex": {Role: principal.Vendor, Name: "globex-ci", Org: "globex"},
	}})
	v1 := a.V1()
	v1.GET("/public", Op{Summary: "public", Public: true}, func(c *gin.Context) error {
		return JSON(c, http.StatusOK, gin.H{"ok": true})
	})
	v1.GET("/admin-only", Op{Summary: "admin", Roles: []principal.Role{principal.Admin}}, func(c *gin.Context) error {
		return JSON(c, http.StatusOK, gin.H{"ok": true})
	})
	v1.POST("/orgs/:org/things", Op{Summary: "org scoped", Roles: []principal.Role{principal.Vendor}, MaxBody: 64}, func(c *gin.Context) error {
		if err := RequireOrg(c, c.Param("org")); err != nil {
			return err
		}
		var body struct {
			Name string `json:"name"`
		}
		if err := BindJSON(c, &body); err != nil {
			return err
		}
		return JSON(c, http.StatusCreated, body)
	})
	v1.GET("/boom", Op{Summary: "panics"}, func(c *gin.Context) error { panic("boom") })
	v1.GET("/missing", Op{Summary: "not found"}, func(c *gin.Context) error {
		return errs.E(errs.NotFound, "thing 7 not found")
	})
	a.ServeOpenAPI(v1)
	return a
}

func TestRoutesEnforceRolesAndScope(t *testing.T) {
	a := newTestAPI()
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"anyone reads a public route", "GET", "/v1/public", "", "", 200, ""},
		{"no token on an admin route is 401", "GET", "/v1/admin-only", "", "", 401, "unauthenticated"},
		{"a bad token is 401 even on a public route", "GET", "/v1/public", "nope", "", 401, "unauthenticated"},
		{"a vendor token on an admin route is 403", "GET", "/v1/admin-only", "acme", "", 403, "forbidden"},
		{"the admin passes an admin route", "GET", "/v1/admin-only", "admin", "", 200, ""},
		{"a vendor acts for its own org", "POST", "/v1/orgs/acme/things", "acme", `{"name":"x"}`, 201, ""},
		{"a vendor token on another org's route is 403", "POST", "/v1/orgs/acme/things", "globex", `{"name":"x"}`, 403, "forbidden"},
		{"unknown JSON fields are invalid", "POST", "/v1/orgs/acme/things", "acme", `{"nom":"x"}`, 400, "invalid"},
		{"a body over the route's limit is 413", "POST", "/v1/orgs/acme/things", "acme", `{"name":"` + strings.Repeat("x", 100) + `"}`, 413, "too_large"},
		{"a panic is a 500 with the error shape", "GET", "/v1/boom", "", "", 500, "internal"},
		{"a kind maps to its status", "GET", "/v1/missing", "", "", 404, "not_found"},
		{"an unknown route is a JSON 404", "GET", "/v1/nowhere", "", "", 404, "not_found"},
		{"a known path with another method is a JSON 405", "DELETE", "/v1/public", "", "", 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			a.Engine().ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if rec.Header().Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id header")
			}
			if tc.code == "" {
				return
			}
			var body ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
			}
			if body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("error body %+v, want code %s and a message", body, tc.code)
			}
		})
	}
}

func TestOpenAPIListsEveryRegisteredRoute(t *testing.T) {
	a := newTestAPI()
	doc := a.OpenAPI()
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)
	for _, r := range a.Engine().Routes() {
		item, ok := paths[OpenAPIPath(r.Path)].(map[string]any)
		if !ok || item[strings.ToLower(r.Method)] == nil {
			t.Errorf("%s %s is registered but missing from the OpenAPI document", r.Method, r.Path)
		}
	}
	rec := httptest.NewRecorder()
	a.Engine().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"/v1/orgs/{org}/things"`) {
		t.Fatalf("served document: %d %s", rec.Code, rec.Body)
	}
}

func TestAWrongMethodIs405WithAllow(t *testing.T) {
	a := newTestAPI()
	a.Engine().GET("/page", func(c *gin.Context) { c.String(http.StatusOK, "page") })
	for _, tc := range []struct{ name, method, path, allow string }{
		{"an API route answers 405 and names its method", "POST", "/v1/public", "GET"},
		{"a route with a parameter answers 405 too", "GET", "/v1/orgs/acme/things", "POST"},
		{"a page mounted on the engine answers 405", "PUT", "/page", "GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			a.Engine().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != tc.allow {
				t.Fatalf("%s %s: status %d Allow %q, want 405 Allow %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), tc.allow)
			}
		})
	}
}

func TestOpenAPIDeclaresWhoMayCallEachRoute(t *testing.T) {
	a := newTestAPI()
	v1 := a.V1()
	v1.GET("/twice", Op{Summary: "admin named twice", Roles: []principal.Role{principal.Admin, principal.Admin}}, func(c *gin.Context) error { return nil })
	v1.GET("/scoped", Op{Summary: "own org", Roles: []principal.Role{principal.Vendor}, Scope: OwnOrg, Sealed: &Sealed{Roles: []principal.Role{principal.Vendor}, NamedTrustee: true}}, func(c *gin.Context) error { return nil })
	v1.GET("/undeclared", Op{Summary: "says nothing"}, func(c *gin.Context) error { return nil })
	a.Declare("GET", "/page", Op{Summary: "a page", Public: true, Page: true})
	paths := a.OpenAPI()["paths"].(map[string]any)
	op := func(path string) map[string]any {
		for _, o := range paths[path].(map[string]any) {
			return o.(map[string]any)
		}
		return nil
	}
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"an admin route lists admin once", "/v1/admin-only", []string{"admin"}},
		{"admin named twice is still listed once", "/v1/twice", []string{"admin"}},
		{"a vendor route lists vendor, then admin", "/v1/orgs/{org}/things", []string{"vendor", "admin"}},
		{"a public route says public", "/v1/public", []string{"public"}},
		{"a declared page says public", "/page", []string{"public"}},
		{"a scoped route lists its roles", "/v1/scoped", []string{"vendor", "admin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := op(tc.path)["x-roles"].([]string)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("x-roles of %s = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
	if got := op("/v1/scoped")["x-scope"]; got != "own-org" {
		t.Errorf("x-scope = %v", got)
	}
	if sealed, _ := op("/v1/scoped")["x-sealed"].(map[string]any); sealed["named-trustee"] != true {
		t.Errorf("x-sealed = %v", sealed)
	}
	if _, ok := op("/v1/undeclared")["x-roles"]; ok {
		t.Errorf("a route that declares nothing has x-roles %v", op("/v1/undeclared")["x-roles"])
	}
	if (Op{}).Declared() || (Op{Public: true, Roles: []principal.Role{principal.Vendor}}).Declared() || !(Op{Public: true}).Declared() {
		t.Errorf("Declared: an op must say public or roles, not both nor neither")
	}
}
