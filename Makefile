# nexus-mcp — the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
VENV  := .venv
PY    := $(VENV)/bin/python
PREFIX ?= /usr/local

.PHONY: all build release deps demo test test-unit test-integration lint fmt clean bench bench-deps bench-peers bench-quick soak

.PHONY: demo-deps demo-heal install pin-images check-pins bench-routes bench-capacity

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

## Installs only what the demo needs: openssh-server/-client (apt-get) and the pinned Python venv (pip).
demo-deps:
	scripts/install-demo-deps.sh

## A local bastion + MongoDB-wire server with sample data + nexus-mcp through the tunnel (the debug build: it builds
## in about half the time of a release build). Ctrl-C stops it all.
demo: demo-deps build
	$(PY) scripts/demo.py

## While `make demo` runs: break its SSH session at the bastion and show the tunnel heal (/ready, /metrics).
demo-heal:
	$(PY) scripts/demo.py heal

## The release build, installed as $(PREFIX)/bin/nexus-mcp (e.g. `make install PREFIX=~/.local`).
install: release
	$(CARGO) install --locked --path . --root $(PREFIX)

## Online, when cutting a release: resolves the image tags of k8s/kustomization.yaml and the Dockerfile's FROMs to
## digests and writes them (crane or skopeo on PATH). Review and commit the diff.
pin-images:
	$(PY) scripts/pin-images.py pin

## The release gate (offline): fails while a built manifest or the Dockerfile uses a tag without a digest.
check-pins:
	$(PY) scripts/pin-images.py check

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
## Per client mode (stateless, legacy JSON, legacy SSE, stdio) × client (Rust loadgen, Python SDK, http.client,
## TypeScript SDK) × 1/8/32 clients; ≈ 12–15 min of runs on 2 cores after the builds.
bench-deps: deps bench-peers
	$(CARGO) build --locked --release -p nexus-mcp -p loadgen

## The pinned official server and the Python packages of the report (the TypeScript SDK comes with `deps`).
bench-peers:
	cd bench/official && npm ci --no-audit --no-fund --silent
	$(VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt

bench: bench-deps
	$(PY) bench/bench.py

## The whole harness end to end against the debug builds in a few minutes: numbers meaningless, structure checked;
## writes its report into a temporary directory (never bench/results or BENCHMARKS.md).
bench-quick: deps build bench-peers
	$(CARGO) build --locked -p loadgen
	$(PY) bench/bench.py --quick --nexus-bin target/debug/nexus-mcp --loadgen-bin target/debug/loadgen

## Issue 11's targets: tunnel.mode forward vs socks on one member (Rust loadgen and Python SDK, 1 and 8 clients,
## interleaved rounds) and step-down → writes succeeding again on the emulated 3-member replica set (default URI and
## heartbeatFrequencyMS=500). ≈ 7 min after the release builds; writes bench/results/<date>-routes.{md,json}.
bench-routes: deps
	$(CARGO) build --locked --release -p nexus-mcp -p loadgen
	$(PY) bench/routes.py

## Issue 16's capacity table: one nexus-mcp (release, the shipped [server] limits, rate_limit 0) under 1 → 256
## closed-loop clients (stateless `find` from the Rust loadgen; legacy sessions from the Python SDK and the loadgen):
## calls/s, p50/p99, errors by kind, peak RSS per step; plus docs/deployment.md's footprint rows side by side with the
## official server. ≈ 5 min after the builds; writes bench/results/<date>-capacity.{md,json}.
bench-capacity: bench-deps
	$(PY) bench/bench.py --capacity

## 50 clients for 10 minutes against nexus-mcp: errors, p99 over time, RSS growth.
soak: bench-deps
	$(PY) bench/bench.py --soak 10

clean:
	$(CARGO) clean
	rm -rf .run .demo
