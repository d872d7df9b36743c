#!/usr/bin/env bash
# Builds afterlife for release, reproducibly: the same commit gives the same
# bytes on any machine, in any directory. For each target it writes the
# binary, a CycloneDX SBOM of what the binary links, and one SHA256SUMS.
#
# Usage: scripts/dist.sh
# Env:   DIST     output directory (default dist)
#        VERSION  version to stamp (default: git describe of HEAD)
#        TARGETS  GOOS/GOARCH list (default "linux/amd64 linux/arm64 linux/arm")
#        AFTERLIFE_CACHE  where the SBOM tool is installed (default ~/.cache/afterlife)
set -euo pipefail
cd "$(dirname "$0")/.."

out="${DIST:-dist}"
version="${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}"
targets="${TARGETS:-linux/amd64 linux/arm64 linux/arm}"
cache="${AFTERLIFE_CACHE:-$HOME/.cache/afterlife}"
sbom="$(AFTERLIFE_CACHE="$cache" scripts/cyclonedx-gomod.sh)"

# Nothing of this machine may reach the bytes: no paths (-trimpath), no
# build id, no VCS stamp (the version comes from VERSION), no cgo.
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOARM=7
mkdir -p "$out"
rm -f "$out"/afterlife-* "$out/SHA256SUMS"
for t in $targets; do
  goos="${t%/*}" goarch="${t#*/}"
  name="afterlife-$version-$goos-$goarch"
  echo "dist: $name"
  GOOS="$goos" GOARCH="$goarch" go build -trimpath \
    -ldflags "-s -w -buildid= -X main.version=$version" -o "$out/$name" ./cmd/afterlife
  "$sbom" bin -json -noserial -notimestamp -version "$version" -output "$out/$name.cdx.json" "$out/$name"
done
(cd "$out" && sha256sum afterlife-* >SHA256SUMS)
echo "dist: $(wc -l <"$out/SHA256SUMS") files in $out, listed in $out/SHA256SUMS"
