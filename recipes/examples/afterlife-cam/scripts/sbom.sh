#!/bin/sh
# Writes a small SBOM: what went into the image, with digests.
set -eu
bin=/tmp/rootfs/usr/sbin/afterlife-camd
gover=$(go env GOVERSION)
bin_sha=$(sha256sum "$bin" | cut -d' ' -f1)
img_sha=$(sha256sum /out/afterlife-cam.tar.gz | cut -d' ' -f1)
cat >/out/afterlife-cam.sbom.json <<JSON
{
  "sbom_format": "afterlife-sbom/1",
  "name": "afterlife-cam",
  "version": "1.0.0",
  "license": "GPL-2.0-or-later",
  "source_date_epoch": ${SOURCE_DATE_EPOCH},
  "image": {"path": "afterlife-cam.tar.gz", "sha256": "${img_sha}"},
  "components": [
    {"name": "afterlife.example/cam", "version": "1.0.0", "type": "application",
     "path": "usr/sbin/afterlife-camd", "sha256": "${bin_sha}"},
    {"name": "go-stdlib", "version": "${gover}", "type": "library"}
  ]
}
JSON
cat /out/afterlife-cam.sbom.json
