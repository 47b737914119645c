# The front door. Every tool is pinned here and installed into ./bin through
# the Go module proxy, so a fresh machine with Go needs nothing else.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION := v2.33.0
GRPCURL_VERSION := v1.9.4
GOLANGCI_LINT_VERSION := v2.15.0

# docker compose v2 or docker-compose v1.29, whichever answers.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)

TEST_FLAGS ?= -race -count=1 -timeout 9m
LISTEN ?= 127.0.0.1:7400
DATA ?= ./data

.PHONY: all run build test generate generate-check lint bench fuzz docker compose-check compose-up compose-down e2e-compose chaos tools clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/continuum ./cmd/continuum

## run: the whole mesh in one process (the embedded default).
run: build
	$(BIN)/continuum up --listen $(LISTEN) --data $(DATA)

## test: every test, with the race detector.
test:
	$(GO) test $(TEST_FLAGS) ./...

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/protoc-gen-grpc-gateway:
	GOBIN=$(BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

GEN_TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway

tools: $(GEN_TOOLS) $(BIN)/grpcurl $(BIN)/golangci-lint

## generate: regenerate the Go code beside the protos.
generate: $(GEN_TOOLS)
	find proto -name '*.pb.go' -o -name '*.pb.gw.go' | xargs -r rm -f
	$(BIN)/buf generate

## generate-check: fail when the committed generated code is stale.
generate-check: generate
	@if [ -n "$$(git status --porcelain -- proto)" ]; then \
		echo "generated code is stale; run 'make generate' and commit:"; \
		git status --porcelain -- proto; exit 1; fi

## lint: buf lint and golangci-lint.
lint: $(BIN)/buf $(BIN)/golangci-lint
	$(BIN)/buf lint
	$(BIN)/golangci-lint run ./...

## bench: every headline figure of docs/PERFORMANCE.md beside its anchor, measured
## in one run (about 10 min): one table, also in dist/bench/report.md and .json.
bench:
	$(GO) run ./tools/bench report --out dist/bench

## bench-short: the same report at small sizes (under 3 min; noisier).
.PHONY: bench-short bench-go
bench-short:
	$(GO) run ./tools/bench report --short --out dist/bench

## bench-go: every `go test -bench` benchmark in the module.
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

## fuzz: each fuzz target for FUZZTIME (default 60s).
FUZZTIME ?= 60s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; done

## fuzz-ci: issue 8's named fuzz targets (URI, topic patterns, event filters,
## policy rules, audit lines) for 60s each, every other target for 10s.
.PHONY: fuzz-ci
FUZZ_LONG ?= 60s
FUZZ_SHORT ?= 10s
fuzz-ci:
	GO=$(GO) FUZZ_LONG=$(FUZZ_LONG) FUZZ_SHORT=$(FUZZ_SHORT) .ci/fuzz-ci.sh

IMAGE ?= continuum:dev

## docker: the FROM-scratch image from a static binary built here.
docker:
	rm -rf dist/docker && mkdir -p dist/docker/data
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags='-s -w' -o dist/docker/continuum ./cmd/continuum
	docker build -f deploy/Dockerfile -t $(IMAGE) dist/docker

compose-check:
	@if [ -z "$(COMPOSE)" ]; then echo "neither 'docker compose' nor 'docker-compose' answers"; exit 1; fi

## compose-up: the mesh as one container per service.
compose-up: compose-check docker
	$(COMPOSE) up -d

compose-down: compose-check
	$(COMPOSE) down -v

## e2e-compose: build, bring the mesh up, run the README scenarios, scale, kill, tear down.
e2e-compose: compose-check docker $(BIN)/grpcurl
	COMPOSE="$(COMPOSE)" GRPCURL=$(BIN)/grpcurl deploy/e2e-compose.sh

clean:
	rm -rf $(BIN) dist

## badinput: the bad-input sweep against an embedded node (docs/RELIABILITY.md).
.PHONY: badinput
badinput:
	$(GO) run ./tools/badinput --embedded

## chaos: the fault harness (tools/chaos, docs/RELIABILITY.md): three real
## nodes under mixed load, a seeded 2-minute schedule of kill -9, pause,
## graceful restart and cut-off, then the invariants as JSON.
.PHONY: chaos chaos-ci
CHAOS_SEED ?= 1
chaos:
	$(GO) run ./tools/chaos --duration 2m --seed $(CHAOS_SEED)

## chaos-ci: 30 seconds (CI). Seed 2 draws a pause, a kill and a cut.
CHAOS_CI_SEED ?= 2
chaos-ci:
	$(GO) run ./tools/chaos --duration 30s --seed $(CHAOS_CI_SEED)
