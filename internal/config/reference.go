package config

import (
	"fmt"
	"io"
	"strings"
)

// Setting describes one serve setting for documentation: its flag, the
// environment variable and YAML key that also set it, its default and what
// it means. docs/settings.md is generated from these, so the page and
// `afterlife serve --help` cannot disagree.
type Setting struct {
	Flag, Env, YAML, Default, Type, Usage string
}

// ServeSettings lists every serve setting in --help order.
func ServeSettings() []Setting {
	out := make([]Setting, 0, len(serveFields))
	for _, f := range serveFields {
		out = append(out, Setting{
			Flag: "--" + f.name, Env: EnvName(f.name), YAML: yamlKey(f.name),
			Default: f.def, Type: f.typeName(), Usage: f.usage,
		})
	}
	return out
}

// WriteServeReference writes the markdown page of every serve setting.
func WriteServeReference(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Settings of `afterlife serve`\n\n")
	b.WriteString("<!-- Generated from internal/config by `go test ./internal/config -update`; do not edit by hand. -->\n\n")
	b.WriteString("Each setting is a flag, an environment variable or a key of the YAML file given\n")
	b.WriteString("with `--config` (which starts with `version: 1`). Flags win over the\n")
	b.WriteString("environment, the environment over the file, the file over the defaults.\n")
	b.WriteString("Sizes take `KiB`, `MiB`, `GiB`, `TiB`; durations take `s`, `m`, `h` and `d`.\n\n")
	b.WriteString("| flag | environment | YAML | default | type | meaning |\n|---|---|---|---|---|---|\n")
	for _, s := range ServeSettings() {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s | %s |\n", s.Flag, s.Env, s.YAML, def, s.Type, strings.ReplaceAll(s.Usage, "|", `\|`))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
