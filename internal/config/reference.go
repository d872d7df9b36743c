package config

import (
	"fmt"
	"io"
	"strings"
)

// Setting describes one setting for documentation: its flag, the
// environment variable and YAML key that also set it, its default and what
// it means. docs/settings.md and docs/builder-settings.md are generated from
// these, so the pages and `afterlife serve --help`, `afterlife builder
// --help` cannot disagree.
type Setting struct {
	Flag, Env, YAML, Default, Type, Usage string
}

// ServeSettings lists every serve setting in --help order.
func ServeSettings() []Setting { return serveSet.settings() }

// BuilderSettings lists every builder setting in --help order.
func BuilderSettings() []Setting { return builderSet.settings() }

func (s settingSet[C]) settings() []Setting {
	out := make([]Setting, 0, len(s.fields))
	for _, f := range s.fields {
		out = append(out, Setting{
			Flag: "--" + f.name, Env: s.envName(f.name), YAML: yamlKey(f.name),
			Default: f.def, Type: s.typeName(f), Usage: f.usage,
		})
	}
	return out
}

// WriteServeReference writes the markdown page of every serve setting.
func WriteServeReference(w io.Writer) error {
	return writeReference(w, "serve", EnvName("config"), "", ServeSettings())
}

// WriteBuilderReference writes the markdown page of every builder setting.
func WriteBuilderReference(w io.Writer) error {
	return writeReference(w, "builder", builderSet.envName("config"),
		"The builder agent runs on the builder operator's machine (see `afterlife builder --help`\n"+
			"and [deploy.md](deploy.md)); the settings of the server are in [settings.md](settings.md).\n\n",
		BuilderSettings())
}

func writeReference(w io.Writer, command, configEnv, intro string, settings []Setting) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Settings of `afterlife %s`\n\n", command)
	b.WriteString("<!-- Generated from internal/config by `go test ./internal/config -update`; do not edit by hand. -->\n\n")
	b.WriteString(intro)
	b.WriteString("Each setting is a flag, an environment variable or a key of the YAML file given\n")
	fmt.Fprintf(&b, "with `--config` or `%s` (which starts with `version: 1`). Flags win over the\n", configEnv)
	b.WriteString("environment, the environment over the file, the file over the defaults.\n")
	b.WriteString("Sizes take `KiB`, `MiB`, `GiB`, `TiB`; durations take `s`, `m`, `h` and `d`.\n\n")
	b.WriteString("| flag | environment | YAML | default | type | meaning |\n|---|---|---|---|---|---|\n")
	for _, s := range settings {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s | %s |\n", s.Flag, s.Env, s.YAML, def, s.Type, strings.ReplaceAll(s.Usage, "|", `\|`))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
