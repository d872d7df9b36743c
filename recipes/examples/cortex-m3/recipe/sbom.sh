#!/bin/sh
# Writes the firmware's SBOM, SPDX 2.3 JSON, with Anchore's syft, which
# afterlife.yaml declares under tools (pinned: builders bind exactly that
# version into the sandbox). syft describes a directory laid out here:
#   src/       the vendor's deposited sources, each file with its SHA-256
#              (the digests afterlife.yaml pins)
#   firmware/  the images build.sh wrote, with their digests
#   var/lib/dpkg/status
#              the Debian records of the toolchain's packages, which the
#              builder hands over in AFTERLIFE_DPKG_STATUS: syft lists the
#              compiler, binutils and newlib with their versions
# syft 1.57 writes two things from the clock and chance: creationInfo.created
# and a random UUID in documentNamespace (no option turns them off yet).
# Every builder must write the same bytes, so the first becomes
# SOURCE_DATE_EPOCH and the second a UUID-shaped digest of the document.
set -eu
if [ -z "${AFTERLIFE_DPKG_STATUS:-}" ]; then
  echo "sbom: the builder gave no Debian records of the toolchain (AFTERLIFE_DPKG_STATUS): its gcc-arm-none-eabi is not Debian's" >&2
  exit 1
fi
root=/tmp/sbom
rm -rf "$root"
mkdir -p "$root/src" "$root/firmware" "$root/var/lib/dpkg"
cp /inputs/escrow/vendor/* "$root/src/"
cp /out/firmware.elf /out/firmware.bin "$root/firmware/"
printf '%s\n' "$AFTERLIFE_DPKG_STATUS" >"$root/var/lib/dpkg/status"

SYFT_FILE_METADATA_SELECTION=all SYFT_FILE_METADATA_DIGESTS=sha1,sha256 \
  syft scan "dir:$root" --source-name acme-thermo-firmware --source-version 2.4.1 \
  -q -o spdx-json=/tmp/raw.spdx.json

created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
uuid='[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}'
sed -e "s/\"created\":\"[^\"]*\"/\"created\":\"$created\"/" \
  -e "s/\(\"documentNamespace\":\"[^\"]*-\)$uuid\"/\1UUID\"/" /tmp/raw.spdx.json >/tmp/fixed.spdx.json
grep -q '"documentNamespace":"[^"]*-UUID"' /tmp/fixed.spdx.json
sum=$(sha256sum /tmp/fixed.spdx.json | cut -c1-32)
id=$(echo "$sum" | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)\(.\{12\}\)$/\1-\2-\3-\4-\5/')
sed "s/-UUID\"/-$id\"/" /tmp/fixed.spdx.json >/out/firmware.spdx.json
sha256sum /out/firmware.spdx.json
