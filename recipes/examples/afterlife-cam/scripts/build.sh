#!/bin/sh
# Cross-compiles the daemon for the camera (ARMv7, Linux) reproducibly.
set -eu
# The builder may lend a cache at /cache; it speeds builds up but never
# changes their output. Without one, a throwaway cache in /tmp is used.
if [ -d /cache ] && [ -w /cache ]; then
  GOCACHE=/cache/go-build
else
  GOCACHE=/tmp/go-build
fi
export GOCACHE
export GOPATH=/tmp/gopath GOMODCACHE=/tmp/gopath/pkg/mod
export GOTOOLCHAIN=local GOFLAGS= GOPROXY=off
export CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7
# A one-module program without dependencies: its go.mod is written here, so
# the recipe also lives as a plain directory inside afterlife's own module.
[ -f go.mod ] || printf 'module afterlife.example/cam\n\ngo 1.26\n' >go.mod
go version
mkdir -p /tmp/rootfs/usr/sbin /tmp/rootfs/etc/afterlife
go build -trimpath -buildvcs=false -ldflags=-buildid= \
  -o /tmp/rootfs/usr/sbin/afterlife-camd ./cmd/afterlife-camd
printf 'firmware=afterlife-cam\nversion=1.0.0\n' >/tmp/rootfs/etc/afterlife/release
