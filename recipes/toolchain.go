package recipes

// KnownToolchain describes a build environment builders can provide.
type KnownToolchain struct {
	Name        string
	Description string
}

// KnownToolchains are the toolchain names a recipe may ask for.
var KnownToolchains = []KnownToolchain{
	{"go", "the Go toolchain (go build; cross-compiles with GOOS/GOARCH)"},
	{"gcc-arm-none-eabi", "GCC for bare-metal ARM (Cortex-M) with newlib"},
	{"busybox", "a plain POSIX shell with coreutils, tar and gzip"},
}

// ToolchainNames lists the names of KnownToolchains.
func ToolchainNames() []string {
	names := make([]string, len(KnownToolchains))
	for i, t := range KnownToolchains {
		names[i] = t.Name
	}
	return names
}
