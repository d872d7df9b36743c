#!/usr/bin/env bash
# Installs CycloneDX's SBOM generator for Go, cyclonedx-gomod, at the one
# version afterlife uses, into $AFTERLIFE_CACHE/bin (default
# ~/.cache/afterlife/bin), once, and prints its path. scripts/dist.sh runs
# it on afterlife's own binaries; builders find it there and bind it into
# the sandbox of a recipe that declares it (tools: [{name: cyclonedx-gomod,
# version: v1.10.0}], builder/toolchain.ToolCache), where the Go example
# recipe writes its SBOM with it. Every builder must run the same version:
# the SBOM names it.
set -euo pipefail
cache="${AFTERLIFE_CACHE:-$HOME/.cache/afterlife}"
version="v1.10.0"
bin="$cache/bin/cyclonedx-gomod"
if [ ! -x "$bin" ] || [ "$(cat "$bin.version" 2>/dev/null)" != "$version" ]; then
  echo "installing cyclonedx-gomod $version into $cache/bin (once)" >&2
  mkdir -p "$cache/bin"
  GOBIN="$cache/bin" GOFLAGS=-buildvcs=false go install "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$version"
  echo "$version" >"$bin.version"
fi
echo "$bin"
