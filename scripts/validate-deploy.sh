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

command -v kubectl >/dev/null || { echo "kubectl missing (it carries kustomize): install kubectl >= 1.27" >&2; exit 1; }
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

step "kustomize: k8s/ (the base, istio/ included) builds offline, with no Secret in it"
kubectl kustomize k8s/ > "$build/base.yaml"
# The operator's overlay, built in a copy with stand-in secret files (the real ones are gitignored).
mkdir -p "$build/tree"
cp -r k8s istio k8s-overlay "$build/tree/"
for f in id_ed25519 known_hosts mongo-uri tokens; do echo "validate-deploy stand-in" > "$build/tree/k8s-overlay/secrets/$f"; done
kubectl kustomize "$build/tree/k8s-overlay" > "$build/overlay.yaml"

step "kustomize: istio/oauth/ (optional: the mesh checks access tokens) builds alone and beside the overlay"
kubectl kustomize istio/oauth > "$build/oauth.yaml"
mkdir -p "$build/tree/with-oauth"
printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../k8s-overlay\n  - ../istio/oauth\n' \
  > "$build/tree/with-oauth/kustomization.yaml"
kubectl kustomize "$build/tree/with-oauth" > "$build/with-oauth.yaml"
"$V/python" - "$build" <<'PY'
import sys, yaml
from pathlib import Path
out = Path(sys.argv[1])
names = {n: [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all((out / f"{n}.yaml").read_text()) if d]
         for n in ("overlay", "oauth", "with-oauth")}
if sorted(names["with-oauth"]) != sorted(names["overlay"] + names["oauth"]):
    sys.exit(f"overlay + istio/oauth/ is not the overlay plus {names['oauth']}")
print(f"istio/oauth/: {names['oauth']}")
PY
# One file per API group family: core resources for kubernetes-validate, the CRDs for the node models.
"$V/python" - "$build" <<'PY'
import sys, yaml
from pathlib import Path
out = Path(sys.argv[1])
for name in ("base", "overlay"):
    docs = [d for d in yaml.safe_load_all((out / f"{name}.yaml").read_text()) if d]
    crd = [d for d in docs if d["apiVersion"].split("/")[0].endswith((".istio.io", "monitoring.coreos.com"))]
    core = [d for d in docs if d not in crd]
    (out / f"{name}-core.yaml").write_text(yaml.safe_dump_all(core))
    (out / f"{name}-crd.yaml").write_text(yaml.safe_dump_all(crd))
    secrets = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    print(f"{name}: {len(core)} core + {len(crd)} custom resources; Secrets: {secrets or 'none'}")
    if name == "base" and secrets:
        sys.exit(f"k8s/ must not contain a Secret (found {secrets}): the overlay or the cluster provides them")
PY

step "kubernetes-validate --strict: the built core resources (CRDs are checked by the node models below)"
"$V/kubernetes-validate" --strict --kubernetes-version 1.31.0 "$build/base-core.yaml" "$build/overlay-core.yaml"

step "Istio resources (istio/oauth/ too) and the ServiceMonitor, as built: @kubernetes-models"
node deploy-check/validate.mjs "$build/base-crd.yaml" "$build/oauth.yaml"

step "promtool: alert rules and their unit tests"
.run/tools/promtool check rules monitoring/alerts.rules.yml
(cd monitoring && ../.run/tools/promtool test rules alerts.test.yml)

step "prometheus-adapter: the HPA's custom metric rule renders to valid PromQL"
"$V/python" scripts/check-adapter-rules.py monitoring/prometheus-adapter.yaml "$build/adapter-rules.yml"
.run/tools/promtool check rules "$build/adapter-rules.yml"

step "Grafana dashboard: valid JSON with panels"
"$V/python" -c 'import json,sys; d=json.load(open("monitoring/grafana-dashboard.json")); assert d["panels"], "no panels"; print(len(d["panels"]), "panels")'
echo
echo "all deployment artifacts valid"
