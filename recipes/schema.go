package recipes

import _ "embed"

//go:embed schema.json
var schema []byte

// Schema is the JSON Schema (draft 2020-12) of afterlife.yaml, for editors.
// The parser is the authority; a test keeps the two in step.
func Schema() []byte { return append([]byte(nil), schema...) }
