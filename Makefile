# phoenix developer targets. CI runs `make test` (see .ci/run).
GO       ?= go
FUZZTIME ?= 30s
GO_FILES  = $(shell find . -name '*.go' -not -path './.git/*')
SCRIPTS   = $(shell find . -name '*.sh' -not -path './.git/*') .ci/run

.PHONY: all build test test-real lint fmt-check vet staticcheck unparam shellcheck fuzz verify demo clean

all: build

## build: bin/phoenix, its version from git describe (dev outside a git checkout)
build:
	$(GO) build -ldflags "-X main.version=$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/phoenix ./cmd/phoenix

# The real-guest tier (e2e/real, providers/sim/lxc, the simulator's real
# backend) runs real LXC containers: it needs root and the lxc tools, and
# skips without them unless PHOENIX_REQUIRE_TOOLS is set. Its root file
# system is cached under PHOENIX_SIM_CACHE (default /var/cache/phoenix-sim).
REAL_PKGS = ./e2e/real ./e2e/scripts ./providers/sim/lxc
TEST_TIMEOUT ?= 60m

## test: the whole suite with the race detector, after lint (the real-guest tier included where the machine can run it)
test: lint
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

## test-real: the real-guest tier alone: real LXC containers converged by the phoenix CLI
test-real:
	$(GO) test -race -timeout $(TEST_TIMEOUT) -count=1 -v $(REAL_PKGS)
	$(GO) test -race -timeout $(TEST_TIMEOUT) -count=1 -v -run 'TestRealGuests' ./providers/sim

## lint: gofmt, go vet, staticcheck, unparam, shellcheck
lint: fmt-check vet staticcheck unparam shellcheck

fmt-check:
	@out=$$(gofmt -l $(GO_FILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck and unparam are Go tools of the module (go.mod's tool block):
# built from the module cache like any dependency, at the version go.sum pins.
staticcheck:
	$(GO) tool staticcheck ./...

unparam:
	$(GO) tool unparam ./...

shellcheck:
	@command -v shellcheck >/dev/null || { echo "shellcheck is not installed: apt-get install shellcheck (Debian/Ubuntu) or see https://www.shellcheck.net" >&2; exit 1; }
	shellcheck $(SCRIPTS)

## fuzz: every fuzz target, FUZZTIME each
fuzz:
	hack/fuzz.sh $(FUZZTIME)

## verify: regenerate what is generated, then fail if the tree changed
verify:
	$(GO) mod tidy
	$(GO) test ./spec -run TestGraphGolden -update
	$(GO) test ./reconciler -run TestPlanGolden -update
	$(GO) run ./cmd/phoenix schema --out schema/phoenix.schema.json
	git diff --exit-code

## demo: converge the example GPU homelab on the embedded simulator
demo:
	$(GO) run ./cmd/phoenix demo

clean:
	rm -rf bin
