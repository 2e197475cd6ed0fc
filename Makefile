# intermesh — make targets. `make help` lists them.

GO       ?= go
PKGS     ?= ./...
BENCH    ?= .
BENCHTIME ?= 1s
FUZZTIME ?= 10s

.PHONY: help build test test-long crash fuzz bench lint testnet clean soak chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build meshd and meshctl into bin/
	$(GO) build -o bin/ ./cmd/...

test: ## run every test (race detector off, -count=1; fuzz targets run their seed corpus; crash tests kill 20 writers and 3 meshd)
	$(GO) test -count=1 -timeout 20m $(PKGS)

LONGFUZZTIME ?= 60s

test-long: ## the crash tests (log writer and meshd) with 100 kills each, then each fuzz target for LONGFUZZTIME
	INTERMESH_CRASH_KILLS=100 $(GO) test -count=1 -timeout 60m -run Crash $(PKGS)
	./.ci/fuzz $(LONGFUZZTIME)

fuzz: ## run each fuzz target for FUZZTIME
	./.ci/fuzz $(FUZZTIME)

bench: ## run the benchmarks (BENCH=regexp, BENCHTIME=1x|5s|...)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem $(PKGS)

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## gofmt check, tidy module (go mod tidy -diff), go vet and staticcheck (staticcheck.conf)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

TESTNET_FLAGS ?=

testnet: build ## start a local 4-node testnet (Ctrl-C stops it; TESTNET_FLAGS="--http-base-port 9080 --period 2s" passes meshd testnet flags)
	./bin/meshd testnet --nodes 4 $(TESTNET_FLAGS)

SOAK_ENV ?= INTERMESH_SOAK_DURATION=10m INTERMESH_SOAK_NODES=8 INTERMESH_SOAK_RATE=500 \
	INTERMESH_SOAK_ACCOUNTS=1000 INTERMESH_SOAK_CONCURRENCY=512 INTERMESH_SOAK_PERIOD=10s INTERMESH_SOAK_KILL_EVERY=30s \
	INTERMESH_SOAK_PARTITION_EVERY=45s INTERMESH_SOAK_DOWN=20s INTERMESH_SOAK_REPORT=$(CURDIR)/soak-report.json

chaos: ## the 60-second chaos run alone (4 member processes, kills and partitions under load; also part of make test)
	$(GO) test -count=1 -timeout 20m -run TestChaosKillsAndPartitions -v ./testnet/

soak: ## 8 member processes, 500 publishes/s for 10 min, a kill every ~30 s, a partition every ~45 s; then load --verify, audit, rounds; figures in soak-report.json
	$(SOAK_ENV) $(GO) test -count=1 -timeout 60m -run TestChaosKillsAndPartitions -v ./testnet/

clean: ## remove build output
	rm -rf bin/
