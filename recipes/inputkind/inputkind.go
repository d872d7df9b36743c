// Package inputkind names the kinds of input a build reads besides its
// recipe repository, as recipe submission records them and builders mount
// them. It is a format package with nothing but constants, so the builder
// agent can share it without linking server code.
package inputkind

const (
	// Escrow is a single released escrow file, mounted read-only as a file.
	Escrow = "escrow"
	// GitArchive is a deterministic tar of a git tree, extracted into a
	// directory.
	GitArchive = "git-archive"
)

// Valid reports whether kind is one of the kinds above.
func Valid(kind string) bool { return kind == Escrow || kind == GitArchive }
