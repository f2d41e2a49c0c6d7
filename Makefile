# Baton: the one front door for every task. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STACK := infra/stack.sh
# Connection settings of the native stack (overridable: BATON_KAFKA_PORT, BATON_PG_PORT, ...).
STACK_ENV = eval "$$($(STACK) env)"

.PHONY: all python node java stop clean test-docker bench bench-quick bench-peer test-faults help setup deps constraints up down status server dev demo worker-python worker-node worker-java \
        test test-python test-node test-java lint fmt clean-stack

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-14s %s\n", $$1, $$2}'

# ------------------------------------------------------------------ setup
$(VENV)/.stamp: sdk-python/pyproject.toml orchestrator/pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (Python 3.11+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e 'sdk-python[dev,speedups,otel]' -e 'orchestrator[dev]'
	touch $@

sdk-node/node_modules/.stamp: sdk-node/package.json sdk-node/package-lock.json
	cd sdk-node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The example Node worker's tracing packages (OpenTelemetry SDK, exporters), loaded only with BATON_TRACE_DIR/OTEL_EXPORTER_OTLP_ENDPOINT.
examples/node/node_modules/.stamp: examples/node/package.json examples/node/package-lock.json
	cd examples/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

sdk-java/target/.stamp: sdk-java/pom.xml examples/java/pom.xml tests/faults/java/pom.xml
	mvn -q -B -f sdk-java/pom.xml dependency:go-offline install -DskipTests
	mvn -q -B -f examples/java/pom.xml dependency:go-offline test-compile
	mvn -q -B -f tests/faults/java/pom.xml dependency:go-offline
	mkdir -p sdk-java/target && touch $@

setup: deps $(VENV)/.stamp sdk-node/node_modules/.stamp examples/node/node_modules/.stamp sdk-java/target/.stamp ## system packages, .venv, npm ci, Maven builds (no-op when done)

deps: ## install the Debian packages the suites need (Redis, PostgreSQL, docker-compose) when missing
	@infra/deps.sh

constraints: ## regenerate constraints.txt from the current .venv (pins without index URLs)
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' | sort > constraints.txt

# ------------------------------------------------------------------ stack
up: ## start Kafka, PostgreSQL and Redis natively (idempotent)
	@$(STACK) up

down: ## stop everything native that up/dev started (by pid file)
	@$(STACK) down

status: ## show the stack's state and the connection env vars
	@$(STACK) status

# ------------------------------------------------------------ Docker path
# The compose plugin (`docker compose`) or Debian's `docker-compose` v1, whichever exists, and only
# when a Docker engine answers. BATON_BUILD_CA=<PEM file>: an extra CA the image builds trust (behind a
# TLS-intercepting proxy), copied into the build context as infra/docker/ca/extra-ca.pem (git-ignored);
# without it the file is removed, so a build trusts exactly what it was given.
BUILD_CA := infra/docker/ca/extra-ca.pem
compose = @set -e; \
	if docker compose version >/dev/null 2>&1; then dc=(docker compose); \
	elif command -v docker-compose >/dev/null; then dc=(docker-compose); \
	else echo "Docker Compose not found: install the compose plugin or docker-compose (see README, Docker)." >&2; exit 1; fi; \
	docker info >/dev/null 2>&1 || { echo "No Docker engine answers ('docker info' failed): start Docker, or use the native stack (make demo)." >&2; exit 1; }; \
	$(2) "$${dc[@]}" -f docker-compose.yml $(1)
BUILD_CA_STEP = if [ -n "$${BATON_BUILD_CA:-}" ]; then cmp -s "$$BATON_BUILD_CA" $(BUILD_CA) || cp "$$BATON_BUILD_CA" $(BUILD_CA); \
	else rm -f $(BUILD_CA); fi;

# What `make all/python/node/java` print once the containers are up.
define docker_hint
	@echo "Baton is up: API http://127.0.0.1:$${BATON_PORT:-8080} (OpenAPI docs at /docs; make stop / make clean)."
	@echo "Run the polyglot demo (after make setup, for the baton CLI):"
	@echo "  export BATON_API_URL=http://127.0.0.1:$${BATON_PORT:-8080}"
	@echo "  .venv/bin/baton apply examples/workflows/polyglot-demo.yaml"
	@echo "  .venv/bin/baton trigger polyglot-demo --input \"\$$(cat examples/workflows/demo-input.json)\" --wait 120"
endef

all: ## Docker: Kafka, PostgreSQL, Redis, orchestrator and every example worker, built from source
	$(call compose,--profile all up --build -d,$(BUILD_CA_STEP))
	$(docker_hint)

python: ## Docker: infra + orchestrator + the Python example worker
	$(call compose,--profile python up --build -d,$(BUILD_CA_STEP))
	$(docker_hint)

node: ## Docker: infra + orchestrator + the Node example worker
	$(call compose,--profile node up --build -d,$(BUILD_CA_STEP))
	$(docker_hint)

java: ## Docker: infra + orchestrator + the Java example worker
	$(call compose,--profile java up --build -d,$(BUILD_CA_STEP))
	$(docker_hint)

stop: ## Docker: stop and remove the containers (data volumes are kept)
	$(call compose,--profile all down)

clean: ## Docker: stop, then delete the containers and the data volumes
	$(call compose,--profile all down -v --remove-orphans)

test-docker: setup ## Docker: engine (started if none answers), images, make all, demo in containers, stop/clean (~10 min cold)
	@tests/docker/run.sh

# ------------------------------------------------------------ run natively
server: setup up ## run the orchestrator in the foreground (API + engine, port 8080)
	@$(STACK_ENV) && exec $(VENV)/bin/baton server --port $${BATON_PORT:-8080}

dev: setup ## stack + orchestrator + one example worker per language, in the background (.stack/run/)
	@infra/dev.sh start

demo: setup ## dev, then define and run the polyglot demo and print its result
	@infra/dev.sh demo

worker-python: setup ## run the Python example worker in the foreground
	@$(STACK_ENV) && exec $(PY) examples/python/worker.py

worker-node: setup ## run the Node example worker in the foreground
	@$(STACK_ENV) && exec node examples/node/worker.mjs

worker-java: setup ## run the Java example worker in the foreground
	@mvn -q -B -f sdk-java/pom.xml install -DskipTests
	@$(STACK_ENV) && exec mvn -q -B -f examples/java/pom.xml compile exec:java

# ------------------------------------------------------------------ tests
test: setup ## run every test suite (brings the stack up when it is down)
	@$(STACK) up >/dev/null
	@$(MAKE) --no-print-directory test-python test-node test-java

test-python: ## Python suites: stack smoke, orchestrator, SDK, cross-language
	@$(STACK_ENV) && $(VENV)/bin/pytest -q --ignore=tests/faults --ignore=tests/docker

test-faults: setup ## fault and abuse suite (crashes, restarts, poison, load, schemathesis; ~5-7 min)
	@$(STACK) up >/dev/null
	@$(STACK_ENV) && $(VENV)/bin/pytest -q tests/faults

test-node: ## Node SDK tests (node --test)
	@$(STACK_ENV) && cd sdk-node && npm test --silent

test-java: ## Java SDK tests (JUnit 5 via Maven), then the Java example's tests
	@$(STACK_ENV) && mvn -q -B -f sdk-java/pom.xml install && mvn -q -B -f examples/java/pom.xml test

bench: setup up ## benchmark sweeps T0, W3, W1, W2, C1 (< ~10 min); PEER=restate adds Restate beside C1
	@$(STACK_ENV) && $(PY) bench/run.py $(if $(PEER),--peer $(PEER))

bench-quick: setup up ## W3 + a short W1 ramp (~1 min), same JSON keys
	@$(STACK_ENV) && $(PY) bench/run.py --quick

bench-peer: setup up ## C1 at 1 and 20 clients beside Restate (npm-installed into a temp dir), ~2 min
	@$(STACK_ENV) && $(PY) bench/run.py --workloads C1 --closed 1,20 --warmup 2 --measure 5 --peer restate

lint: setup ## ruff, mypy (strict for the SDK), tsc
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd sdk-python && ../$(VENV)/bin/mypy baton
	cd orchestrator && ../$(VENV)/bin/mypy baton_orchestrator
	cd sdk-node && npm run --silent lint

fmt: setup ## format Python sources
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean-stack: down ## stop the stack and delete its data dir (.stack/)
	rm -rf .stack
