# nexus-mcp — the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
VENV  := .venv
PY    := $(VENV)/bin/python

.PHONY: all build release deps demo test test-unit test-integration lint fmt clean bench bench-deps soak

all: build

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

## Installs everything the tests and the demo need (idempotent): openssh-server, the pinned Python venv, and the
## offline validators of the deployment artifacts (hadolint, kubernetes-validate, promtool, kubernetes-models).
deps:
	scripts/install-test-deps.sh
	scripts/install-deploy-deps.sh

## A local bastion + MongoDB-wire server with sample data + nexus-mcp through the tunnel. Ctrl-C stops it all.
demo: deps build
	$(PY) scripts/demo.py

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test-unit:
	$(CARGO) test --locked

test-integration: deps build
	$(PY) -m pytest tests -n 2 -q

## Installs the test dependencies, then runs lint, unit and integration tests.
test: deps lint test-unit test-integration

## Side-by-side benchmark against the official MongoDB MCP server (see BENCHMARKS.md); not part of `make test`.
bench-deps: deps
	$(CARGO) build --locked --release -p nexus-mcp -p loadgen
	cd bench/official && npm ci --no-audit --no-fund --silent
	$(VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt

bench: bench-deps
	$(PY) bench/bench.py

## 50 clients for 10 minutes against nexus-mcp: errors, p99 over time, RSS growth.
soak: bench-deps
	$(PY) bench/bench.py --soak 10

clean:
	$(CARGO) clean
	rm -rf .run .demo
