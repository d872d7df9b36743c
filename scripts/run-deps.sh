#!/usr/bin/env bash
# Installs what `make run` needs beyond Go: bubblewrap, the sandbox the two
# local builder agents run recipe steps in. Idempotent; asks for nothing
# else.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then exit 0; fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "run-deps: installing bubblewrap (the build sandbox)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
