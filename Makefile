# nexus-mcp — the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
VENV  := .venv
PY    := $(VENV)/bin/python

.PHONY: all build release deps demo test test-unit test-integration lint fmt clean

all: build

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

## Installs everything the tests and the demo need (idempotent): openssh-server, the pinned Python venv.
deps:
	scripts/install-test-deps.sh

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

clean:
	$(CARGO) clean
	rm -rf .run .demo
