// Package lifecycle writes the two machine-readable documents the registry
// publishes about a product's life: an OpenEoX core document (OASIS
// OpenEoX core 1.0 committee draft) in a wrapper that identifies the
// product, and a lifecycle event stream in the shape of ECMA-428 (Common
// Lifecycle Enumeration, CLE). Both are pure functions of what the catalog
// and the registry recorded, so the same history always gives the same
// bytes: the registry signs them as TUF targets, and anyone can check a
// copy against the signature.
//
// It is a format package: plain types in, JSON out, no server code.
package lifecycle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// OpenEoXSchema is the $schema the core object carries: the const of the
// committee's core schema (eox-core.json). The committee's maximal example
// names another URI (…/openeox/eox-core/v1.0/schema/core.json); the draft
// is not yet consistent, and the schema file is what validators check.
const OpenEoXSchema = "https://docs.oasis-open.org/openeox/v1.0/schema/core.json"

// WrapperSchema names the wrapper's shape (Wrapper).
const WrapperSchema = "afterlife-eox/1"

// CLESchema names the event stream's shape. ECMA-428 has published no JSON
// schema yet; this names afterlife's reading of it (docs/lifecycle.md).
const CLESchema = "afterlife-cle/1"

// TBA is the date value "to be announced".
const TBA = "tba"

// Product identifies a product.
type Product struct {
	ID        string
	Vendor    string // the vendor organisation
	Model     string
	DeviceIDs []string
}

// Date is one declared date: "" (never declared), TBA, or an RFC 3339
// date-time in UTC. Published is when the vendor first declared the
// field, Modified when it last changed its value.
type Date struct {
	Value               string
	Published, Modified time.Time
}

// Release is one community release the registry published.
type Release struct {
	Version   string
	Channel   string
	Published time.Time
}

// Facts are what the documents are written from.
type Facts struct {
	Product              Product
	GeneralAvailability  Date
	EndOfSales           Date
	EndOfSecuritySupport Date
	EndOfLife            Date
	// LastUpdated is when the support period was last declared (the
	// product's registration when it never was).
	LastUpdated time.Time
	// HandedOver is when the product was handed over to the community
	// (zero while it was not).
	HandedOver time.Time
	// Releases are the registry's community releases, in any order.
	Releases []Release
	// Registry names this registry, the third party its own events are
	// attributed to (e.g. its public URL).
	Registry string
}

// Core is the OpenEoX core object.
type Core struct {
	Schema               string `json:"$schema"`
	EndOfLife            string `json:"end_of_life"`
	EndOfSales           string `json:"end_of_sales,omitempty"`
	EndOfSecuritySupport string `json:"end_of_security_support"`
	LastUpdated          string `json:"last_updated"`
}

// Identification identifies the product, after CSAF's
// product_identification_helper (model numbers), plus the device ids a
// device of this model reports.
type Identification struct {
	ID           string   `json:"id"`
	Vendor       string   `json:"vendor"`
	Model        string   `json:"model"`
	ModelNumbers []string `json:"model_numbers"`
	DeviceIDs    []string `json:"device_ids"`
}

// Wrapper is the served OpenEoX document: the core object with what it
// does not carry, the product's identification and general availability.
type Wrapper struct {
	Schema              string         `json:"schema"`
	Product             Identification `json:"product"`
	GeneralAvailability string         `json:"general_availability"`
	EoX                 Core           `json:"openeox"`
}

func orTBA(s string) string {
	if s == "" {
		return TBA
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// OpenEoX writes the wrapped OpenEoX document. Undeclared ends are TBA;
// end of sales is left out when never declared (it is optional).
func OpenEoX(f Facts) ([]byte, error) {
	devs := append([]string{}, f.Product.DeviceIDs...)
	w := Wrapper{
		Schema: WrapperSchema,
		Product: Identification{ID: f.Product.ID, Vendor: f.Product.Vendor, Model: f.Product.Model,
			ModelNumbers: []string{f.Product.Model}, DeviceIDs: devs},
		GeneralAvailability: orTBA(f.GeneralAvailability.Value),
		EoX: Core{
			Schema:               OpenEoXSchema,
			EndOfLife:            orTBA(f.EndOfLife.Value),
			EndOfSales:           f.EndOfSales.Value,
			EndOfSecuritySupport: orTBA(f.EndOfSecuritySupport.Value),
			LastUpdated:          stamp(f.LastUpdated),
		},
	}
	return marshal(w)
}

// CoreOf returns the core object of a wrapped document.
func CoreOf(doc []byte) (json.RawMessage, error) {
	var w struct {
		EoX json.RawMessage `json:"openeox"`
	}
	if err := json.Unmarshal(doc, &w); err != nil || len(w.EoX) == 0 {
		return nil, fmt.Errorf("lifecycle: not a wrapped OpenEoX document: %v", err)
	}
	return w.EoX, nil
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("lifecycle: %w", err)
	}
	return b.Bytes(), nil
}
