#!/bin/sh
# Writes the image's SBOM, CycloneDX 1.6 JSON, with CycloneDX's own
# generator for Go binaries, cyclonedx-gomod: it reads the module list Go
# embedded in the daemon and names the daemon's digests. No serial number
# and no timestamp, so every builder writes the same bytes.
set -eu
want=v1.10.0
have="${AFTERLIFE_CYCLONEDX_GOMOD:-}"
if [ "$have" != "$want" ]; then
  echo "sbom: this recipe needs cyclonedx-gomod $want with the builder's Go toolchain; this builder has ${have:-none}" >&2
  exit 1
fi
cyclonedx-gomod bin -json -noserial -notimestamp -std -output-version 1.6 \
  -version v1.0.0 -output /out/afterlife-cam.sbom.json /tmp/rootfs/usr/sbin/afterlife-camd
cat /out/afterlife-cam.sbom.json
