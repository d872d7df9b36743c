package catalog

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// RegisterRoutes mounts the product routes on the /v1 router (Register is
// taken by product registration).
func (c *Catalog) RegisterRoutes(v1 *httpapi.Router) {
	const tag = "products"
	v1.POST("/products", httpapi.Op{Summary: "Register a product (vendor of that org, or admin)", Roles: []principal.Role{principal.Vendor}, Scope: httpapi.OwnOrg, Tag: tag}, c.httpRegister)
	v1.GET("/products", httpapi.Op{Public: true, Summary: "List or search products (?q=, ?vendor=, ?status=, ?device_id=); a search answers the total and each product's vendor_name too", Tag: tag}, c.httpList)
	v1.GET("/products/:id", httpapi.Op{Public: true, Summary: "A product and its status history", Tag: tag}, c.httpGet)
	v1.POST("/products/:id/status", httpapi.Op{Summary: "Move a product's status forward", Roles: []principal.Role{principal.Vendor}, Scope: httpapi.OwnOrg, Tag: tag}, c.httpStatus)
	v1.POST("/products/:id/support", httpapi.Op{Summary: "Declare a product's support period (general availability, end of sales, end of security support, end of life: RFC 3339, YYYY-MM-DD or tba)", Roles: []principal.Role{principal.Vendor}, Scope: httpapi.OwnOrg, Tag: tag}, c.httpSupport)
	v1.POST("/products/:id/edit", httpapi.Op{Summary: "Correct a product's model name, hardware revisions, device ids or risk notes (fields left out stay; logged before and after)", Roles: []principal.Role{principal.Vendor}, Scope: httpapi.OwnOrg, Tag: tag}, c.httpEdit)
	v1.POST("/products/:id/retire", httpapi.Op{Summary: "Retire a product registered by mistake: refused while it has a release or a deposit; it gives up its device ids and disappears from lists and search", Roles: []principal.Role{principal.Vendor}, Scope: httpapi.OwnOrg, Tag: tag}, c.httpRetire)
	v1.POST("/admin/device-ids/reassign", httpapi.Op{Summary: "Move a device id to another product (a device id belongs to one product)", Roles: []principal.Role{principal.Admin}, Tag: tag}, c.httpReassign)
	c.registerHandoverRoutes(v1)
}

// ReassignRequest is the body of POST /v1/admin/device-ids/reassign.
type ReassignRequest struct {
	DeviceID string `json:"device_id"`
	To       string `json:"to"`
}

// Reassigned is its answer: the product now holding the id, and the one
// that held it ("" when none did).
type Reassigned struct {
	DeviceID string  `json:"device_id"`
	From     string  `json:"from"`
	Product  Product `json:"product"`
}

func (c *Catalog) httpReassign(g *gin.Context) error {
	var r ReassignRequest
	if err := httpapi.BindJSON(g, &r); err != nil {
		return err
	}
	p, from, err := c.Reassign(g.Request.Context(), httpapi.Principal(g), r.DeviceID, r.To)
	if err != nil {
		return err
	}
	id, _ := ParseDeviceID(r.DeviceID)
	return httpapi.JSON(g, http.StatusOK, Reassigned{DeviceID: id, From: from, Product: p})
}

func (c *Catalog) httpRegister(g *gin.Context) error {
	var r Registration
	if err := httpapi.BindJSON(g, &r); err != nil {
		return err
	}
	p, err := c.Register(g.Request.Context(), httpapi.Principal(g), r)
	if err != nil {
		return err
	}
	return httpapi.JSON(g, http.StatusCreated, p)
}

func (c *Catalog) httpList(g *gin.Context) error {
	limit, _ := strconv.Atoi(g.Query("limit"))
	var ps []Product
	var err error
	switch {
	case g.Query("device_id") != "":
		ps, err = c.ByDeviceID(g.Request.Context(), g.Query("device_id"))
	case g.Query("q") != "":
		found, err := c.Search(g.Request.Context(), g.Query("q"), limit)
		if err != nil {
			return err
		}
		return httpapi.JSON(g, http.StatusOK, found)
	default:
		f := Filter{Vendor: g.Query("vendor"), Limit: limit}
		if s := g.Query("status"); s != "" {
			if f.Status, err = ParseStatus(s); err != nil {
				return err
			}
		}
		ps, err = c.List(g.Request.Context(), f)
	}
	if err != nil {
		return err
	}
	return httpapi.JSON(g, http.StatusOK, gin.H{"products": ps})
}

// ProductWithEvents is the body of GET /v1/products/:id.
type ProductWithEvents struct {
	Product
	Events []Event `json:"events"`
}

func (c *Catalog) httpGet(g *gin.Context) error {
	p, err := c.Get(g.Request.Context(), g.Param("id"))
	if err != nil {
		return err
	}
	evs, err := c.Events(g.Request.Context(), p.ID)
	if err != nil {
		return err
	}
	return httpapi.JSON(g, http.StatusOK, ProductWithEvents{Product: p, Events: evs})
}

// StatusRequest is the body of POST /v1/products/:id/status.
type StatusRequest struct {
	Status string `json:"status"`
}

func (c *Catalog) httpStatus(g *gin.Context) error {
	var r StatusRequest
	if err := httpapi.BindJSON(g, &r); err != nil {
		return err
	}
	to, err := ParseStatus(r.Status)
	if err != nil {
		return err
	}
	p, err := c.SetStatus(g.Request.Context(), g.Param("id"), to, httpapi.Principal(g))
	if err != nil {
		return err
	}
	return httpapi.JSON(g, http.StatusOK, p)
}

func (c *Catalog) httpSupport(g *gin.Context) error {
	var s Support
	if err := httpapi.BindJSON(g, &s); err != nil {
		return err
	}
	p, err := c.SetSupport(g.Request.Context(), httpapi.Principal(g), g.Param("id"), s)
	if err != nil {
		return err
	}
	return httpapi.JSON(g, http.StatusOK, p)
}

func (c *Catalog) httpEdit(g *gin.Context) error {
	var e Edit
	if err := httpapi.BindJSON(g, &e); err != nil {
		return err
	}
	p, err := c.Edit(g.Request.Context(), httpapi.Principal(g), g.Param("id"), e)
	if err != nil {
		return err
	}
	return httpapi.JSON(g, http.StatusOK, p)
}

// RetireRequest is the body of POST /v1/products/:id/retire.
type RetireRequest struct {
	Reason string `json:"reason"`
}

// Retired is its answer.
type Retired struct {
	ID      string `json:"id"`
	Retired bool   `json:"retired"`
}

func (c *Catalog) httpRetire(g *gin.Context) error {
	var r RetireRequest
	if err := httpapi.BindJSON(g, &r); err != nil {
		return err
	}
	if err := c.Retire(g.Request.Context(), httpapi.Principal(g), g.Param("id"), r.Reason); err != nil {
		return err
	}
	return httpapi.JSON(g, http.StatusOK, Retired{ID: g.Param("id"), Retired: true})
}
