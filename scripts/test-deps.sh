#!/usr/bin/env bash
# Installs what afterlife's tests need on a bare Debian machine, idempotently:
# PostgreSQL, bubblewrap, the ARM toolchain and emulator, Chromium, wrk/nginx
# for benchmarks, openssl (the hashing baseline of the ingest benchmarks),
# zstd (delta updates are checked against its --patch-from),
# fwupd's tools (fwupdtool with its test plugin, gcab, jcat-tool) for the
# fwupd remote, a MinIO server built once into a cache directory, and the SBOM
# generators the example recipes declare (cyclonedx-gomod, syft).
#
# Usage: scripts/test-deps.sh            (as root, or with sudo available)
# Env:   AFTERLIFE_CACHE  cache dir (default ~/.cache/afterlife)
set -euo pipefail

cache="${AFTERLIFE_CACHE:-$HOME/.cache/afterlife}"
minio_version="v0.0.0-20260212201848-7aac2a2c5b7c"
mkdir -p "$cache/bin"

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

packages=(postgresql bubblewrap gcc-arm-none-eabi libnewlib-arm-none-eabi
  qemu-system-arm chromium wrk nginx-light git ca-certificates diffoscope-minimal
  util-linux grub-common zstd openssl fwupd fwupd-tests gcab jcat)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# npm may come from Debian or with a separately installed Node.js: only ask
# Debian for it when there is none.
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The deploy manifests are checked with systemd-analyze and kubectl; kubectl
# may come from a package other than Debian's, so only a missing command counts.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MinIO: a real S3 server, built from source once and cached.
stamp="$cache/bin/minio.version"
if [ ! -x "$cache/bin/minio" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$minio_version" ]; then
  echo "test-deps: building MinIO $minio_version into $cache/bin (about 3 minutes, once)"
  GOBIN="$cache/bin" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$minio_version"
  echo "$minio_version" >"$stamp"
fi
# The SBOM generators recipes declare under tools (recipes.KnownTools):
# cyclonedx-gomod (the Go example) and syft (the Cortex-M3 example), run
# inside the sandbox (builders find them here, builder/toolchain.ToolCache).
# Every builder must run the same version: the SBOM names it.
AFTERLIFE_CACHE="$cache" "$(dirname "$0")/cyclonedx-gomod.sh" >/dev/null
AFTERLIFE_CACHE="$cache" "$(dirname "$0")/syft.sh" >/dev/null
# axe-core: the accessibility checker the browser tests inject into pages.
if [ ! -f "$cache/npm/node_modules/axe-core/axe.min.js" ]; then
  echo "test-deps: installing axe-core into $cache/npm"
  npm install --silent --no-audit --no-fund --prefix "$cache/npm" axe-core@4 >/dev/null
fi
echo "test-deps: ready (MinIO at $cache/bin/minio)"
