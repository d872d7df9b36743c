// Package examples embeds the example recipes, so the demo and the tests can
// turn them into git repositories without reading the source tree:
// afterlife-cam (a Go daemon for linux/arm, the demo), cortex-m3 (bare-metal
// C from a vendor's escrow deposit) and unreproducible (a recipe that must
// fail the reproducibility check).
package examples

import (
	"embed"
	"io/fs"
)

//go:embed all:afterlife-cam all:cortex-m3 all:unreproducible
var files embed.FS

// Dir returns one example's files: "afterlife-cam", "cortex-m3/recipe",
// "cortex-m3/vendor-deposit" or "unreproducible".
func Dir(name string) (fs.FS, error) { return fs.Sub(files, name) }
