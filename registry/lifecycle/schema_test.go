package lifecycle

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MustCompileOpenEoXSchemaForTests compiles the committee's core schema
// (dir/eox-core.json) with its meta-schema loaded from dir/meta.json (its
// URL cannot be fetched from tests), asserting formats. Tests of other
// packages reach it through CompileOpenEoXSchema.
func MustCompileOpenEoXSchemaForTests(t testing.TB, dir string) *jsonschema.Schema {
	t.Helper()
	s, err := CompileOpenEoXSchema(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// CompileOpenEoXSchema is MustCompileOpenEoXSchemaForTests without a T.
func CompileOpenEoXSchema(dir string) (*jsonschema.Schema, error) {
	return compileOpenEoX(dir, "meta.json")
}

func compileOpenEoX(dir, meta string) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.UseLoader(noNetwork{})
	for url, file := range map[string]string{
		"https://docs.oasis-open.org/openeox/eox-core/v1.0/schema/meta.json": meta,
		OpenEoXSchema: "eox-core.json",
	} {
		f, err := os.Open(filepath.Join(dir, file))
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
	return c.Compile(OpenEoXSchema)
}

type noNetwork struct{}

func (noNetwork) Load(url string) (any, error) { return nil, os.ErrNotExist }

// CompileOpenEoXWithMeta compiles the core schema with another meta-schema
// file of dir.
func CompileOpenEoXWithMeta(dir, meta string) (*jsonschema.Schema, error) {
	return compileOpenEoX(dir, meta)
}
