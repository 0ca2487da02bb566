# Everyday commands. `make run` and `make test` need nothing but Debian, Go,
# Java 17 and Maven: the stack manager installs/fetches the servers.
SHELL := /bin/bash
GO ?= go
COUPONCTL := $(GO) run ./cmd/couponctl

# Test stack ports (override all four to run a second test stack, e.g. in CI
# beside a shared one: make test TEST_STATE=/tmp/x TEST_REDIS_PORT=26379 ...).
TEST_STATE ?= $(CURDIR)/.state/test
TEST_REDIS_PORT ?= 16379
TEST_MYSQL_PORT ?= 13306
TEST_KAFKA_PORT ?= 19092
TEST_KAFKA_CONTROLLER_PORT ?= 19093
TEST_STACK_FLAGS := --profile test --state $(TEST_STATE) --redis-port $(TEST_REDIS_PORT) \
	--mysql-port $(TEST_MYSQL_PORT) --kafka-port $(TEST_KAFKA_PORT) --kafka-controller-port $(TEST_KAFKA_CONTROLLER_PORT)
# COUPON_STACK_KAFKA_NODES=3 and COUPON_STACK_REDIS_MODE=sentinel|cluster (in the
# environment or on the command line) select the replicated shapes of both stacks.
# The tests get every broker (testenv.KafkaBrokers is the list), so a test's
# client can bootstrap from any of them.
TEST_KAFKA_BROKERS := 127.0.0.1:$(TEST_KAFKA_PORT)
ifeq ($(COUPON_STACK_KAFKA_NODES),3)
TEST_KAFKA_BROKERS := $(TEST_KAFKA_BROKERS),127.0.0.1:$(shell echo $$(($(TEST_KAFKA_PORT)+2))),127.0.0.1:$(shell echo $$(($(TEST_KAFKA_PORT)+4)))
endif
TEST_ENV := COUPON_TEST_REDIS_ADDR=127.0.0.1:$(TEST_REDIS_PORT) \
	COUPON_TEST_MYSQL_DSN='root@tcp(127.0.0.1:$(TEST_MYSQL_PORT))/coupon_test?parseTime=true&loc=UTC&multiStatements=true' \
	COUPON_TEST_KAFKA_BROKERS=$(TEST_KAFKA_BROKERS) \
	COUPON_TEST_ARTIFACTS=$(TEST_STATE)/artifacts
# On a Redis Cluster the tests' clients must be cluster clients (testenv.RedisCluster).
ifeq ($(COUPON_STACK_REDIS_MODE),cluster)
TEST_ENV += COUPON_TEST_REDIS_CLUSTER=1
endif
TEST_TIMEOUT ?= 30m
TEST_FLAGS ?=
PKG ?= ./...
BENCH ?= .
BENCHTIME ?= 1x
BENCH_FLAGS ?=

BINARIES := $(notdir $(wildcard cmd/*))

.PHONY: all up down up-test down-test status status-test build run test test-cluster test-short bench gobench k6-check rules-check lint fmt clean migrate-test

all: build

up: ## start the dev stack (Redis 6379, MariaDB 3306, Kafka 9092)
	$(COUPONCTL) stack up --profile dev

down: ## stop the dev stack
	$(COUPONCTL) stack down --profile dev

up-test: ## start the test stack (Redis 16379, MariaDB 13306, Kafka 19092)
	$(COUPONCTL) stack up $(TEST_STACK_FLAGS)

down-test: ## stop the test stack
	$(COUPONCTL) stack down $(TEST_STACK_FLAGS)

status:
	-$(COUPONCTL) stack status --profile dev
	-$(COUPONCTL) stack status $(TEST_STACK_FLAGS)

# Builds bin/<name> for every cmd/<name> that has a main package.
build:
	@mkdir -p bin
	@for b in $(BINARIES); do \
		if ls cmd/$$b/*.go >/dev/null 2>&1 && grep -qs '^package main' cmd/$$b/*.go; then \
			echo "$(GO) build -o bin/$$b ./cmd/$$b"; $(GO) build -o bin/$$b ./cmd/$$b || exit 1; \
		else echo "skip bin/$$b: cmd/$$b has no main package yet"; fi; \
	done

run: build ## the whole system in the foreground on the dev stack (Ctrl-C stops it)
	./bin/couponctl run

migrate-test: up-test
	$(COUPONCTL) migrate $(TEST_STACK_FLAGS)

test: migrate-test ## every test against the test stack; prints a summary line
	@echo "go test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(PKG) (test stack on $(TEST_REDIS_PORT)/$(TEST_MYSQL_PORT)/$(TEST_KAFKA_PORT))"
	@set -o pipefail; $(TEST_ENV) $(GO) test -json -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(PKG) \
		| tee $(TEST_STATE)/go-test.json | $(GO) run ./internal/tools/testsum

# The kill tests (build tag cluster): private replicated stacks (three Kafka
# nodes, Redis with Sentinels), gateways and sinkers as processes, kill -9 of
# each kind of node under load. Slower than the rest; .ci/run runs them.
CLUSTER_RUN ?= ^TestCluster
CLUSTER_PKG ?= ./cmd/gateway
test-cluster: migrate-test ## the kill tests on replicated private stacks (build tag cluster); prints a summary line
	@echo "go test -tags cluster -count=1 -run '$(CLUSTER_RUN)' $(CLUSTER_PKG) (shared MariaDB on $(TEST_MYSQL_PORT))"
	@set -o pipefail; $(TEST_ENV) $(GO) test -json -count=1 -timeout $(TEST_TIMEOUT) -tags cluster -run '$(CLUSTER_RUN)' $(TEST_FLAGS) $(CLUSTER_PKG) \
		| tee $(TEST_STATE)/go-test-cluster.json | $(GO) run ./internal/tools/testsum

test-short: ## unit tests only (no stack)
	$(GO) test -count=1 -short $(PKG)

bench: ## the strategy comparison (db-lock, redis-lock, async) on the dev stack: table, JSON, HTML (BENCH_FLAGS=...)
	$(COUPONCTL) bench $(BENCH_FLAGS)

gobench: migrate-test ## Go benchmarks against the test stack (BENCH=regexp BENCHTIME=1x)
	$(TEST_ENV) $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 60m $(PKG)

rules-check: ## check the Prometheus config and alert rules, and run the rules' unit tests (promtool)
	cd infra/prometheus && promtool check config prometheus.yml && promtool check rules alerts.yml && promtool test rules alerts_test.yml

k6-check: ## check the k6 scripts with node (k6 itself not needed)
	bash infra/k6/check.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.state/*')); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags cluster $(CLUSTER_PKG)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean: ## stop both stacks, remove .state and bin
	-$(COUPONCTL) stack down --profile dev
	-$(COUPONCTL) stack down $(TEST_STACK_FLAGS)
	rm -rf .state bin
