#!/usr/bin/env bash
# Builds afterlife and the small device client afterlife-device for release,
# reproducibly: the same commit gives the same bytes on any machine, in any
# directory. For each target it writes the binary, a CycloneDX SBOM of what
# the binary links, and one SHA256SUMS.
#
# Usage: scripts/dist.sh
# Env:   DIST     output directory (default dist)
#        VERSION  version to stamp (default: git describe of HEAD)
#        TARGETS  GOOS/GOARCH list (default "linux/amd64 linux/arm64 linux/arm")
#        DEVICE_TARGETS  the same for afterlife-device (default TARGETS when
#                 TARGETS is set, else those three and linux/mips, soft-float)
#        AFTERLIFE_CACHE  where the SBOM tool is installed (default ~/.cache/afterlife)
set -euo pipefail
cd "$(dirname "$0")/.."

out="${DIST:-dist}"
version="${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}"
targets="${TARGETS:-linux/amd64 linux/arm64 linux/arm}"
device_targets="${DEVICE_TARGETS:-${TARGETS:-$targets linux/mips}}"
cache="${AFTERLIFE_CACHE:-$HOME/.cache/afterlife}"
sbom="$(AFTERLIFE_CACHE="$cache" scripts/cyclonedx-gomod.sh)"

# Nothing of this machine may reach the bytes: no paths (-trimpath), no
# build id, no VCS stamp (the version comes from VERSION), no cgo.
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOARM=7 GOMIPS=softfloat
mkdir -p "$out"
rm -f "$out"/afterlife-* "$out/SHA256SUMS"
# build BINARY TARGETS: one binary of ./cmd/BINARY per target, with its SBOM.
build() {
  local bin=$1 t goos goarch name
  for t in $2; do
    goos="${t%/*}" goarch="${t#*/}"
    name="$bin-$version-$goos-$goarch"
    echo "dist: $name"
    GOOS="$goos" GOARCH="$goarch" go build -trimpath \
      -ldflags "-s -w -buildid= -X main.version=$version" -o "$out/$name" "./cmd/$bin"
    "$sbom" bin -json -noserial -notimestamp -version "$version" -output "$out/$name.cdx.json" "$out/$name"
  done
}
build afterlife "$targets"
build afterlife-device "$device_targets"
(cd "$out" && sha256sum afterlife-* >SHA256SUMS)
echo "dist: $(wc -l <"$out/SHA256SUMS") files in $out, listed in $out/SHA256SUMS"
