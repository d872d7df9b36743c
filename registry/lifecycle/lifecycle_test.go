package lifecycle_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/afterlife-oss/afterlife/registry/lifecycle"
)

func TestOpenEoXDocumentsValidateAgainstTheCommitteesSchema(t *testing.T) {
	schema := lifecycle.MustCompileOpenEoXSchemaForTests(t, "testdata")
	day := func(s string) lifecycle.Date {
		return lifecycle.Date{Value: s, Published: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Modified: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	}
	facts := lifecycle.Facts{
		Product:     lifecycle.Product{ID: "acme-cam", Vendor: "acme", Model: "Cam 200", DeviceIDs: []string{"usb:1d6b:0104"}},
		LastUpdated: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC),
	}
	for _, c := range []struct {
		name  string
		facts func(lifecycle.Facts) lifecycle.Facts
	}{
		{"a product that declared nothing says tba", func(f lifecycle.Facts) lifecycle.Facts { return f }},
		{"declared dates are RFC 3339 date-times", func(f lifecycle.Facts) lifecycle.Facts {
			f.GeneralAvailability, f.EndOfSales = day("2020-03-01T00:00:00Z"), day("2026-06-30T00:00:00Z")
			f.EndOfSecuritySupport, f.EndOfLife = day("2028-12-31T00:00:00Z"), day("2029-12-31T00:00:00Z")
			return f
		}},
		{"tba stays tba", func(f lifecycle.Facts) lifecycle.Facts {
			f.EndOfSales, f.EndOfSecuritySupport, f.EndOfLife = day("tba"), day("2028-12-31T00:00:00Z"), day("tba")
			return f
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc, err := lifecycle.OpenEoX(c.facts(facts))
			if err != nil {
				t.Fatal(err)
			}
			core, err := lifecycle.CoreOf(doc)
			if err != nil {
				t.Fatal(err)
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(core))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(v); err != nil {
				t.Fatalf("%s\ndoes not validate: %v", core, err)
			}
			var w lifecycle.Wrapper
			if err := json.Unmarshal(doc, &w); err != nil {
				t.Fatal(err)
			}
			if w.Product.ID != "acme-cam" || len(w.Product.DeviceIDs) != 1 || w.Product.ModelNumbers[0] != "Cam 200" || w.GeneralAvailability == "" {
				t.Fatalf("the wrapper does not identify the product: %s", doc)
			}
		})
	}
	for _, c := range []struct {
		name, doc string
		valid     bool
	}{
		{"tba passes", `{"$schema":"` + lifecycle.OpenEoXSchema + `","end_of_life":"tba","end_of_security_support":"tba","last_updated":"2026-01-02T03:04:05Z"}`, true},
		{"a bare date fails", `{"$schema":"` + lifecycle.OpenEoXSchema + `","end_of_life":"2029-12-31","end_of_security_support":"tba","last_updated":"2026-01-02T03:04:05Z"}`, false},
		{"a bare date as last_updated fails", `{"$schema":"` + lifecycle.OpenEoXSchema + `","end_of_life":"tba","end_of_security_support":"tba","last_updated":"2026-01-02"}`, false},
		{"an unknown field fails", `{"$schema":"` + lifecycle.OpenEoXSchema + `","end_of_life":"tba","end_of_security_support":"tba","last_updated":"2026-01-02T03:04:05Z","general_availability":"tba"}`, false},
		{"a missing end of security support fails", `{"$schema":"` + lifecycle.OpenEoXSchema + `","end_of_life":"tba","last_updated":"2026-01-02T03:04:05Z"}`, false},
		{"the example's other schema URI fails, as the draft stands", string(must(os.ReadFile("testdata/example-maximal.json"))), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(c.doc)))
			if err != nil {
				t.Fatal(err)
			}
			err = schema.Validate(v)
			if (err == nil) != c.valid {
				t.Fatalf("valid = %v, want %v (%v)", err == nil, c.valid, err)
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestTheCommitteesMetaSchemaAsDraftedAssertsOnlyFormats(t *testing.T) {
	// Why testdata/meta.json is not the committee's file verbatim: with
	// the drafted one, a validator honouring $vocabulary accepts a
	// document missing every required field.
	schema, err := lifecycle.CompileOpenEoXWithMeta("testdata", "meta-as-drafted.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(`{"anything":"goes"}`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(v); err != nil {
		t.Fatalf("the drafted meta-schema now asserts more (%v): use it verbatim in testdata/meta.json", err)
	}
}
