# eventshop: the one entry point. `make` (or `make help`) lists the targets.
# Every target that loops over code loops over the modules of go.work (scripts/modules.sh).

SHELL        := /usr/bin/env bash
.SHELLFLAGS  := -euo pipefail -c
.DEFAULT_GOAL := help

EVENTSHOP_WORK ?= $(CURDIR)/.work
export EVENTSHOP_WORK
BIN          := $(CURDIR)/bin
MODULES      := $(shell scripts/modules.sh)
SERVICES     := $(filter ./services/%,$(MODULES))

say = @printf '\n==> %s\n' "$(1)"

# in_modules: run $(1) in every module, skipping modules without Go packages yet (go vet/test/build
# fail on an empty ./...); keeps going and fails at the end if any module failed.
define in_modules
rc=0; for m in $(MODULES); do \
	if out="$$(cd "$$m" && go list ./... 2>/dev/null)" && [[ -z $$out ]]; then echo "-- $$m: no Go packages yet, skipped"; continue; fi; \
	echo "-- $$m: $(1)"; (cd "$$m" && $(1)) || rc=1; \
done; exit $$rc
endef


.PHONY: help up up-native down demo bench bench-go build-services infra-up infra-down test chaos fuzz build vet fmt tidy proto lint clean

help: ## list the targets
	@echo "eventshop make targets (work folder: $(EVENTSHOP_WORK))"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "modules: $(MODULES)"
	@echo "fallback broker without Java: EVENTSHOP_KAFKA=kfake make up"

up: ## the full local stack: Docker Compose when a Docker engine answers, else native processes
	@if [[ -z "$${EVENTSHOP_NATIVE:-}" ]] && [[ -f docker-compose.yml ]] && docker info >/dev/null 2>&1; then \
		printf '\n==> %s\n' "Docker engine found: docker compose up (EVENTSHOP_NATIVE=1 for the native stack)"; \
		mkdir -p "$(EVENTSHOP_WORK)" && touch "$(EVENTSHOP_WORK)/compose-up"; \
		docker compose up -d --build --wait; \
	else \
		$(MAKE) --no-print-directory up-native; \
	fi

up-native: infra-up build-services ## native stack: PostgreSQL, Kafka and the four services as processes
	$(call say,scripts/services.sh start)
	@scripts/services.sh start
	@scripts/services.sh endpoints

down: ## stop what `make up` started (services, then Kafka and PostgreSQL, or the Compose stack)
	$(call say,stopping the stack)
	@if [[ -f "$(EVENTSHOP_WORK)/compose-up" ]]; then docker compose down && rm -f "$(EVENTSHOP_WORK)/compose-up"; fi
	@scripts/services.sh stop
	@scripts/infra.sh down

demo: ## play the seed scenario against the running stack (make up) and print stock, discounts, orders
	$(call say,go run ./e2e/cmd/demo)
	@go run ./e2e/cmd/demo

build-services: ## go build each service's command and the dev token tool into bin/
	$(call say,building service commands into bin/)
	@mkdir -p "$(BIN)"
	@for m in $(SERVICES); do \
		name="$$(basename "$$m")"; \
		if [[ -d $$m/cmd/$$name ]]; then echo "go build -o bin/$$name ./cmd/$$name   ($$m)"; (cd "$$m" && go build -o "$(BIN)/$$name" "./cmd/$$name"); \
		else echo "skip $$m: no cmd/$$name yet"; fi; \
	done
	@echo "go build -o bin/devtoken ./cmd/devtoken   (./pkg)"; cd pkg && go build -o "$(BIN)/devtoken" ./cmd/devtoken

infra-up: ## start the local PostgreSQL and Kafka (no-op when running)
	$(call say,scripts/infra.sh up)
	@scripts/infra.sh up

infra-down: ## stop the local PostgreSQL and Kafka (only ours)
	$(call say,scripts/infra.sh down)
	@scripts/infra.sh down

test: ## infra up, then go vet + go test every module (TEST_FLAGS=... for extra flags)
	$(call say,scripts/test.sh with TEST_FLAGS=$(TEST_FLAGS))
	@TEST_FLAGS='$(TEST_FLAGS)' scripts/test.sh

chaos: infra-up ## every fault scenario at full scale (e2e/chaos, under 20 min), then a short fuzz run
	$(call say,EVENTSHOP_CHAOS=full go test -v ./chaos (in ./e2e))
	@eval "$$(scripts/infra.sh env)"; cd e2e && EVENTSHOP_CHAOS=full go test -count=1 -v -timeout 20m ./chaos
	@$(MAKE) --no-print-directory fuzz

# FUZZ_TARGETS: package:FuzzName, run for FUZZTIME each by `make fuzz` (their seed corpora
# under testdata/fuzz/ run as ordinary tests in `make test`).
FUZZTIME     ?= 20s
FUZZ_TARGETS := pkg/envelope:FuzzDecode services/cart/internal/cart:FuzzValidation services/cart/internal/app:FuzzAddItemHTTP

fuzz: infra-up ## go test -fuzz each fuzz target for FUZZTIME (default 20s)
	@eval "$$(scripts/infra.sh env)"; for t in $(FUZZ_TARGETS); do \
		dir="$${t%%:*}"; name="$${t##*:}"; printf '\n==> go test -fuzz %s -fuzztime $(FUZZTIME) ./%s\n' "$$name" "$$dir"; \
		go test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) "./$$dir" || exit 1; \
	done

bench: infra-up ## measure producers, cart load, end-to-end latency, consumer throughput, memory (needs make up); writes bench/results/
	$(call say,go run ./bench/cmd/bench (results in bench/results/))
	@eval "$$(scripts/infra.sh env)"; EVENTSHOP_KAFKA_CLASSPATH="$(EVENTSHOP_WORK)/kafka/classpath.txt" go run ./bench/cmd/bench -out bench/results
	@$(MAKE) --no-print-directory bench-go

# GO_BENCH: module:packages whose testing.B benchmarks `make bench-go` runs.
GO_BENCH := pkg:./envelope,./outbox,./idempotency services/inventory:./internal/stock services/discount:./internal/discount

bench-go: infra-up ## Go benchmarks of the hot paths (envelope, outbox batch, idempotent handler, stock and discount rules); writes bench/results/go-bench.txt
	$(call say,go test -run '^$$' -bench . -benchmem in: $(GO_BENCH))
	@eval "$$(scripts/infra.sh env)"; for mp in $(GO_BENCH); do \
		(cd "$${mp%%:*}" && go test -run '^$$' -bench . -benchmem $$(echo "$${mp#*:}" | tr , ' ')) || exit 1; \
	done | tee bench/results/go-bench.txt

build: ## go build ./... in every module
	$(call say,go build ./... in: $(MODULES))
	@$(call in_modules,go build ./...)

vet: ## go vet ./... in every module
	$(call say,go vet ./... in: $(MODULES))
	@$(call in_modules,go vet ./...)

fmt: ## gofmt -w every module
	$(call say,gofmt -w in: $(MODULES))
	@gofmt -l -w $(MODULES)

tidy: ## go mod tidy in every module, then go work sync
	$(call say,go mod tidy in: $(MODULES))
	@for m in $(MODULES); do echo "-- $$m"; (cd "$$m" && go mod tidy); done
	$(call say,go work sync)
	@go work sync

proto: ## generate the protobuf code (scripts/proto.sh)
	$(call say,scripts/proto.sh)
	@scripts/proto.sh

GOLANGCI := $(EVENTSHOP_WORK)/bin/golangci-lint

lint: ## gofmt, go vet and golangci-lint in every module; buf lint and generated-code freshness
	$(call say,gofmt -l: files listed here need make fmt)
	@out="$$(gofmt -l $(MODULES))"; if [[ -n $$out ]]; then echo "$$out"; echo "gofmt: run make fmt"; exit 1; fi
	$(call say,go vet ./... in: $(MODULES))
	@$(call in_modules,go vet ./...)
	$(call say,golangci-lint (version pinned in tools/lint/go.mod))
	@mkdir -p "$(EVENTSHOP_WORK)/bin" && GOWORK=off go build -C tools/lint -o "$(GOLANGCI)" github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	@$(call in_modules,"$(GOLANGCI)" run --allow-serial-runners --config "$(CURDIR)/.golangci.yml" ./...)
	$(call say,actionlint .github/workflows (version pinned in tools/actionlint/go.mod))
	@GOWORK=off go build -C tools/actionlint -o "$(EVENTSHOP_WORK)/bin/actionlint" github.com/rhysd/actionlint/cmd/actionlint
	@"$(EVENTSHOP_WORK)/bin/actionlint"
	$(call say,buf lint and generated code up to date (scripts/proto.sh check))
	@scripts/proto.sh check
	$(call say,buf breaking against the main branch (scripts/proto.sh breaking))
	@scripts/proto.sh breaking

clean: down ## stop the infra, remove bin/ and the work folder
	$(call say,removing bin/ and $(EVENTSHOP_WORK))
	@rm -rf "$(BIN)" "$(EVENTSHOP_WORK)"
