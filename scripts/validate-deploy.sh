#!/usr/bin/env bash
# Validates every deployment artifact offline with third-party validators; fails loudly at the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }
V=.venv/bin
[ -x "$V/hadolint" ] && [ -x .run/tools/promtool ] && [ -d deploy-check/node_modules ] \
  || { echo "validators missing: run scripts/install-deploy-deps.sh" >&2; exit 1; }

step "hadolint: Dockerfile, docker/bastion/Dockerfile"
"$V/hadolint" Dockerfile docker/bastion/Dockerfile

step "compose: the compose-spec JSON schema"
"$V/check-jsonschema" --builtin-schema vendor.compose-spec docker/docker-compose.yml

step "kubernetes-validate --strict: k8s/ (core resources; CRDs are checked by the node models below)"
core=$(grep -L -E '^apiVersion: (monitoring.coreos.com|networking.istio.io|security.istio.io|kustomize.config.k8s.io)' k8s/*.yaml)
# shellcheck disable=SC2086
"$V/kubernetes-validate" --strict --kubernetes-version 1.31.0 $core

step "Istio resources and the ServiceMonitor: @kubernetes-models"
node deploy-check/validate.mjs istio/*.yaml k8s/servicemonitor.yaml

step "promtool: alert rules and their unit tests"
.run/tools/promtool check rules monitoring/alerts.rules.yml
(cd monitoring && ../.run/tools/promtool test rules alerts.test.yml)

step "Grafana dashboard: valid JSON with panels"
"$V/python" -c 'import json,sys; d=json.load(open("monitoring/grafana-dashboard.json")); assert d["panels"], "no panels"; print(len(d["panels"]), "panels")'
echo
echo "all deployment artifacts valid"
