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

// KnownTool is a tool a recipe may declare beside its toolchain: today the
// SBOM generators. Builders provide a tool at exactly the versions listed
// (scripts/cyclonedx-gomod.sh and scripts/syft.sh install them), and bind it
// into the sandbox only for a recipe that declares it, like a compiler.
type KnownTool struct {
	Name string
	// Versions are the versions builders provide; a recipe pins one.
	Versions    []string
	Description string
}

// KnownTools are the tools a recipe may declare under tools. Each is also
// the command a step runs.
var KnownTools = []KnownTool{
	{"cyclonedx-gomod", []string{"v1.10.0"}, "CycloneDX's SBOM generator for Go modules and binaries (CycloneDX JSON)"},
	{"syft", []string{"v1.57.2"}, "Anchore's SBOM generator for directories, archives and images (CycloneDX or SPDX JSON)"},
}

// ToolNames lists the names of KnownTools.
func ToolNames() []string {
	names := make([]string, len(KnownTools))
	for i, t := range KnownTools {
		names[i] = t.Name
	}
	return names
}

// KnownToolVersions are the versions builders provide of the tool called
// name, nil for an unknown tool.
func KnownToolVersions(name string) []string {
	for _, t := range KnownTools {
		if t.Name == name {
			return t.Versions
		}
	}
	return nil
}
