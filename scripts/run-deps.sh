#!/usr/bin/env bash
# Installs what `make run` needs beyond Go: bubblewrap, the sandbox the two
# local builder agents run recipe steps in, and cyclonedx-gomod, the SBOM
# generator the demo's recipe runs in it. Idempotent; asks for nothing
# else.
set -euo pipefail
"$(dirname "$0")/cyclonedx-gomod.sh" >/dev/null
if command -v bwrap >/dev/null 2>&1; then exit 0; fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "run-deps: installing bubblewrap (the build sandbox)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
