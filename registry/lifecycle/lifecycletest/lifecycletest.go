// Package lifecycletest checks lifecycle documents against the standards'
// own rules, for tests: the OASIS OpenEoX committee's core JSON schema
// (testdata/eox-core.json, copied from the committee draft) and the CLE
// rules summarised from ECMA-428's work in progress.
package lifecycletest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/afterlife-oss/afterlife/registry/lifecycle"
)

// MetaSchemaURL is the $schema of the committee's core schema.
const MetaSchemaURL = "https://docs.oasis-open.org/openeox/eox-core/v1.0/schema/meta.json"

func testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// OpenEoXSchema compiles the committee's core schema with format
// assertions on and its meta-schema loaded from testdata/meta.json (its
// URL cannot be fetched here, and nothing is fetched: every other URL
// fails to load).
func OpenEoXSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	s, err := CompileOpenEoXSchema("meta.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// CompileOpenEoXSchema compiles the core schema with meta, a meta-schema
// file of testdata, in place of the committee's meta-schema URL.
func CompileOpenEoXSchema(meta string) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.UseLoader(noNetwork{})
	for url, file := range map[string]string{MetaSchemaURL: meta, lifecycle.OpenEoXSchema: "eox-core.json"} {
		f, err := os.Open(filepath.Join(testdata(), file))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(url, doc); err != nil {
			return nil, err
		}
	}
	return c.Compile(lifecycle.OpenEoXSchema)
}

type noNetwork struct{}

func (noNetwork) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: not loaded: tests fetch nothing", url)
}

// ValidateOpenEoX checks a wrapped OpenEoX document: its core object
// against the committee's schema, and the wrapper's identification.
func ValidateOpenEoX(t testing.TB, schema *jsonschema.Schema, doc []byte) lifecycle.Wrapper {
	t.Helper()
	core, err := lifecycle.CoreOf(doc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(core))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(v); err != nil {
		t.Fatalf("the OpenEoX core object does not validate against the committee's schema: %v\n%s", err, core)
	}
	var w lifecycle.Wrapper
	if err := json.Unmarshal(doc, &w); err != nil {
		t.Fatal(err)
	}
	if w.Schema != lifecycle.WrapperSchema || w.Product.ID == "" || w.Product.Model == "" || len(w.Product.ModelNumbers) == 0 || w.Product.DeviceIDs == nil || w.GeneralAvailability == "" {
		t.Fatalf("the wrapper does not identify the product with its model and device ids, or lacks general availability:\n%s", doc)
	}
	return w
}

// ValidateCLE checks a CLE-shaped document against the rules of ECMA-428's
// work in progress (no JSON schema is published yet): $schema and events;
// every event has type, effective, published and modified as UTC
// timestamps ending in Z; each type carries its own fields; events are in
// chronological order of effective. Afterlife's own events are claimed by
// a third party, the vendor's by the vendor.
func ValidateCLE(t testing.TB, doc []byte) lifecycle.CLEDocument {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"$schema", "events"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("CLE document without %q:\n%s", k, doc)
		}
	}
	var d lifecycle.CLEDocument
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("CLE document: %v\n%s", err, doc)
	}
	var last time.Time
	for i, e := range d.Events {
		where := fmt.Sprintf("event %d (%s)", i, e.Type)
		var eff time.Time
		for name, v := range map[string]string{"effective": e.Effective, "published": e.Published, "modified": e.Modified} {
			ts, err := time.Parse(time.RFC3339, v)
			if err != nil || !strings.HasSuffix(v, "Z") {
				t.Fatalf("%s: %s %q is not a UTC timestamp ending in Z", where, name, v)
			}
			if name == "effective" {
				eff = ts
			}
		}
		if eff.Before(last) {
			t.Fatalf("%s: effective %s before the previous event's %s: events must be chronological", where, e.Effective, last.Format(time.RFC3339))
		}
		last = eff
		need := map[string]bool{}
		switch e.Type {
		case lifecycle.Released:
			need["version"] = e.Version != ""
		case lifecycle.EndOfSupport:
			need["versions"], need["supportId"] = len(e.Versions) > 0, e.SupportID != ""
			if !slices.ContainsFunc(d.Definitions.Support, func(s lifecycle.SupportDefinition) bool { return s.ID == e.SupportID }) {
				t.Fatalf("%s: supportId %q is not defined", where, e.SupportID)
			}
		case lifecycle.EndOfLife, lifecycle.EndOfMarketing:
			need["versions"] = len(e.Versions) > 0
		case lifecycle.SupersededBy:
			need["supersededByVersion"] = e.SupersededByVersion != ""
		case lifecycle.HandedOver, lifecycle.FirstCommunityRelease:
			if e.Claimant.Role != lifecycle.ByThirdParty {
				t.Fatalf("%s: afterlife's own event claimed by %q, want %q", where, e.Claimant.Role, lifecycle.ByThirdParty)
			}
		default:
			t.Fatalf("%s: unknown type", where)
		}
		for f, ok := range need {
			if !ok {
				t.Fatalf("%s: missing %s", where, f)
			}
		}
		for _, v := range e.Versions {
			if (v.Version == "") == (v.Range == "") || (v.Range != "" && !strings.HasPrefix(v.Range, "vers:")) {
				t.Fatalf("%s: a versions entry is one version or one VERS range: %+v", where, v)
			}
		}
		if e.Claimant.Role != lifecycle.ByVendor && e.Claimant.Role != lifecycle.ByThirdParty || e.Claimant.Name == "" {
			t.Fatalf("%s: no claimant: %+v", where, e.Claimant)
		}
	}
	return d
}
