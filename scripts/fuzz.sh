#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 60s).
# Targets are found with `go test -list '^Fuzz'`, so a new one is picked up
# without editing this file. New failing inputs land in the package's
# testdata/fuzz/FuzzXxx/ and from then on run as seeds in `make test`.
#
#   scripts/fuzz.sh                 every target, 60s each
#   FUZZTIME=20s scripts/fuzz.sh    shorter
#   FUZZ=FuzzExtract scripts/fuzz.sh   only targets matching a regexp
#
# FUZZMINIMIZE (default 200x) bounds how long the fuzzer minimizes each new
# input: left at go's 60s, a target whose inputs keep finding coverage
# (raw tar bytes, say) spends its whole time minimizing and runs almost
# nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZ=${FUZZ:-.}
FUZZMINIMIZE=${FUZZMINIMIZE:-200x}

failed=()
ran=0
# Only packages with a fuzz function in a test file are compiled to ask.
pkgs=$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u | sed 's|^|./|')
for pkg in $pkgs; do
	targets=$($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep -E '^Fuzz' | grep -E -- "$FUZZ" || true)
	for target in $targets; do
		ran=$((ran + 1))
		echo "== $pkg $target ($FUZZTIME)"
		if ! $GO test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE"; then
			failed+=("$pkg $target")
		fi
	done
done
echo "ran $ran fuzz target(s) for $FUZZTIME each"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'failed: %s\n' "${failed[@]}"
	echo "the failing inputs are under each package's testdata/fuzz/; fix the code, keep the inputs"
	exit 1
fi
