#!/bin/sh
# Writes the image's SBOM, CycloneDX 1.6 JSON, with CycloneDX's own
# generator for Go binaries, cyclonedx-gomod, which afterlife.yaml declares
# under tools (pinned: builders bind exactly that version into the
# sandbox). It reads the module list Go embedded in the daemon and names the
# daemon's digests. No serial number and no timestamp, so every builder
# writes the same bytes.
set -eu
cyclonedx-gomod bin -json -noserial -notimestamp -std -output-version 1.6 \
  -version v1.0.0 -output /out/afterlife-cam.sbom.json /tmp/rootfs/usr/sbin/afterlife-camd
cat /out/afterlife-cam.sbom.json
