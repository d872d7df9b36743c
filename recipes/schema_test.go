package recipes

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// schemaNode is the part of JSON Schema this test reads.
type schemaNode struct {
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	Required             []string               `json:"required"`
	AdditionalProperties *bool                  `json:"additionalProperties"`
	Items                *schemaNode            `json:"items"`
	Enum                 []string               `json:"enum"`
	Pattern              string                 `json:"pattern"`
	MaxItems             *int                   `json:"maxItems"`
	Ref                  string                 `json:"$ref"`
}

func loadSchema(t *testing.T) *schemaNode {
	t.Helper()
	var s schemaNode
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatalf("schema.json is not JSON: %v", err)
	}
	var meta map[string]any
	_ = json.Unmarshal(Schema(), &meta)
	if meta["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", meta["$schema"])
	}
	return &s
}

// TestSchemaAndParserAgreeOnFields walks the Go types by their yaml tags and
// the schema by its properties: every field, required list and nesting must
// match, so neither can grow a field the other lacks.
func TestSchemaAndParserAgreeOnFields(t *testing.T) {
	s := loadSchema(t)
	var walk func(path string, typ reflect.Type, n *schemaNode)
	walk = func(path string, typ reflect.Type, n *schemaNode) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch {
		case typ.Kind() == reflect.Slice:
			if n.Items == nil {
				t.Errorf("%s: Go has a list, the schema has no items", path)
				return
			}
			walk(path+"[]", typ.Elem(), n.Items)
		case typ.Kind() == reflect.Struct:
			if n.AdditionalProperties == nil || *n.AdditionalProperties {
				t.Errorf("%s: schema must set additionalProperties: false (the parser refuses unknown fields)", path)
			}
			var goFields, goRequired []string
			for i := range typ.NumField() {
				f := typ.Field(i)
				name := yamlName(f)
				if name == "" {
					continue
				}
				goFields = append(goFields, name)
				if f.Tag.Get("recipe") == "required" {
					goRequired = append(goRequired, name)
				}
				sub, ok := n.Properties[name]
				if !ok {
					t.Errorf("%s: field %q is parsed but missing from schema.json", path, name)
					continue
				}
				walk(join(path, name), f.Type, sub)
			}
			for name := range n.Properties {
				if !slices.Contains(goFields, name) {
					t.Errorf("%s: schema.json has %q, which the parser does not know", path, name)
				}
			}
			slices.Sort(goRequired)
			schemaRequired := slices.Sorted(slices.Values(n.Required))
			if !slices.Equal(goRequired, schemaRequired) {
				t.Errorf("%s: required fields: Go %v, schema %v", path, goRequired, schemaRequired)
			}
		}
	}
	walk("", reflect.TypeFor[Recipe](), s)
}

func TestSchemaAndParserAgreeOnValues(t *testing.T) {
	s := loadSchema(t)
	p := s.Properties
	checks := []struct {
		what           string
		schema, parser []string
	}{
		{"toolchain names", p["toolchain"].Properties["name"].Enum, ToolchainNames()},
		{"tool names", p["tools"].Items.Properties["name"].Enum, ToolNames()},
		{"output kinds", p["outputs"].Items.Properties["kind"].Enum, OutputKinds},
		{"arches", p["arch"].Enum, KnownArches},
		{"name pattern", []string{p["name"].Pattern}, []string{NamePattern}},
		{"git input name pattern", []string{p["inputs"].Properties["git"].Items.Properties["name"].Pattern}, []string{NamePattern}},
		{"version pattern", []string{p["version"].Pattern}, []string{VersionPattern}},
		{"product pattern", []string{p["products"].Items.Pattern}, []string{ProductPattern}},
		{"commit pattern", []string{p["inputs"].Properties["git"].Items.Properties["commit"].Pattern}, []string{CommitPattern}},
		{"digest pattern", []string{p["inputs"].Properties["escrow"].Items.Properties["digest"].Pattern}, []string{DigestPattern}},
		{"git url schemes", []string{p["inputs"].Properties["git"].Items.Properties["url"].Pattern}, []string{"^(" + strings.Join(GitSchemes, "|") + ")://"}},
	}
	for _, c := range checks {
		if !slices.Equal(c.schema, c.parser) {
			t.Errorf("%s: schema %q, parser %q", c.what, c.schema, c.parser)
		}
	}
	limits := []struct {
		what string
		n    *schemaNode
		max  int
	}{
		{"steps", p["steps"], MaxSteps},
		{"outputs", p["outputs"], MaxOutputs},
		{"products", p["products"], MaxProducts},
		{"escrow inputs", p["inputs"].Properties["escrow"], MaxEscrowFiles},
		{"git inputs", p["inputs"].Properties["git"], MaxGitInputs},
		{"tools", p["tools"], MaxTools},
	}
	for _, l := range limits {
		if l.n.MaxItems == nil || *l.n.MaxItems != l.max {
			t.Errorf("%s: schema maxItems %v, parser %d", l.what, l.n.MaxItems, l.max)
		}
	}
}

func TestSchemaReturnsACopy(t *testing.T) {
	a := Schema()
	a[0] = 'X'
	if Schema()[0] == 'X' {
		t.Error("Schema hands out its backing array")
	}
}
