#!/usr/bin/env bash
# Installs Anchore's SBOM generator syft at the one version afterlife's
# recipes may pin (recipes.KnownTools), into $AFTERLIFE_CACHE/bin (default
# ~/.cache/afterlife/bin), built from source once (a few minutes on two
# cores), and prints its path. Builders find it there and bind it into the
# sandbox of a recipe that declares it (tools: [{name: syft, version:
# v1.57.2}]); the Cortex-M3 example writes its SPDX SBOM with it. Every
# builder must run the same build of it: the SBOM names it.
set -euo pipefail
cache="${AFTERLIFE_CACHE:-$HOME/.cache/afterlife}"
version="v1.57.2"
bin="$cache/bin/syft"
if [ ! -x "$bin" ] || [ "$(cat "$bin.version" 2>/dev/null)" != "$version" ]; then
  echo "installing syft $version into $cache/bin (a few minutes, once)" >&2
  mkdir -p "$cache/bin"
  # -X main.version: syft prints it and writes it into every SBOM as its
  # creator; built without it, it would say "[not provided]".
  GOBIN="$cache/bin" GOFLAGS=-buildvcs=false go install \
    -ldflags "-s -w -X main.version=${version#v}" "github.com/anchore/syft/cmd/syft@$version"
  echo "$version" >"$bin.version"
fi
echo "$bin"
