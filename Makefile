# afterlife — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/afterlife
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help build device-client run test test-deps check fmt vet bench fuzz dist clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/afterlife and bin/afterlife-device
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/afterlife
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/afterlife-device ./cmd/afterlife-device

# The device client for the devices it runs on: 32-bit ARM (ARMv7), 64-bit
# ARM, MIPS without an FPU, and x86-64; stripped, static, no local paths.
DEVICE_TARGETS := linux/arm linux/arm64 linux/mips linux/amd64
device-client: ## cross-build bin/afterlife-device-linux-{arm,arm64,mips,amd64} (ARMv7, soft-float MIPS), stripped
	@set -e; for t in $(DEVICE_TARGETS); do \
	  out=bin/afterlife-device-$${t%/*}-$${t#*/}; \
	  GOOS=$${t%/*} GOARCH=$${t#*/} GOARM=7 GOMIPS=softfloat CGO_ENABLED=0 \
	    $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $$out ./cmd/afterlife-device; \
	  awk -v f=$$out -v n=$$(stat -c %s $$out) 'BEGIN { printf "%-40s %6.2f MiB\n", f, n / 1048576 }'; \
	done

run: build ## start the embedded default with the demo on http://127.0.0.1:8080
	@scripts/run-deps.sh
	$(BIN) serve --demo

test-deps: ## install what the tests need (PostgreSQL, MinIO, bubblewrap, ARM toolchain, qemu, Chromium, fwupd tools, cyclonedx-gomod, syft)
	@scripts/test-deps.sh

check: fmt vet ## gofmt and go vet

fmt: ## fail when a Go file is not gofmt-formatted
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet every package
	$(GO) vet ./...

test: test-deps check ## install test dependencies, then vet, gofmt and every test with -race
	$(GO) test -race -count=1 -timeout 25m ./...

bench: build test-deps ## run the benchmarks and print each figure beside its baseline
	@scripts/bench.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 60s; FUZZ=regexp picks targets)
	@FUZZTIME=$(or $(FUZZTIME),60s) scripts/fuzz.sh

dist: ## reproducible release binaries (afterlife for linux/amd64, arm64, arm; afterlife-device also for mips) with SBOMs and SHA256SUMS in dist/
	@VERSION=$(VERSION) scripts/dist.sh

clean: ## remove build outputs and test artifacts (not ./data)
	rm -rf bin dist test-artifacts
