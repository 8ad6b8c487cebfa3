"""The deployment artifacts: valid for their third-party validators, consistent with the real binary — every
port, probe path, config key, env name, CLI flag and metric name they use exists in nexus-mcp — and consistent with
each other as a fleet on Kubernetes + Istio runs them: the kustomize build applies (no placeholder Secret), the
network and mesh policies admit the same callers, the drain fits in the grace period, alerts link their runbooks.
The manifests are checked as `kubectl kustomize k8s/` builds them, which is what `kubectl apply -k` applies. The compose
dev stack is a replica set that its services, the bastion's PermitOpen and the URI gen-dev-keys.sh writes agree on."""

import base64
import functools
import getpass
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from support import Nexus, REPO, Sshd, free_port
from support.nexus import BINARY

PROMTOOL = REPO / ".run" / "tools" / "promtool"
K8S = sorted((REPO / "k8s").glob("*.yaml"))
ISTIO = sorted((REPO / "istio").glob("*.yaml"))
OVERLAY = REPO / "k8s-overlay"
RULES = REPO / "monitoring" / "alerts.rules.yml"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
RUNBOOK_BASE = "https://github.com/example/nexus-mcp/blob/main/docs/deployment.md#"
PROBES = {"/health", "/ready", "/startup"}
PORT = 3000
# The Secrets the Deployment mounts, and the files k8s-overlay/ generates them from (secret key -> file).
SECRETS = {"nexus-mcp-ssh": {"id_ed25519": "id_ed25519", "known_hosts": "known_hosts"},
           "nexus-mcp-mongo": {"uri": "mongo-uri"}, "nexus-mcp-tokens": {"tokens": "tokens"}}
# Metrics the manifests use that the binary is gaining in parallel (issue 16); each must be exposed or listed here.
PLACEHOLDER = re.compile(r"REPLACE|CHANGE.?ME|TODO|<[a-z -]+>|example\.com", re.I)


def docs(paths):
    for p in paths:
        for d in yaml.safe_load_all(p.read_text()):
            if d:
                yield p, d


def kustomize(directory: Path) -> list[dict]:
    """`kubectl kustomize DIR`: what `kubectl apply -k DIR` would apply (offline)."""
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@functools.cache
def built() -> tuple[dict, ...]:
    return tuple(kustomize(REPO / "k8s"))


def by_kind(kind, manifests=None):
    return [d for d in (built() if manifests is None else manifests) if d.get("kind") == kind]


def overlay_with_secret_files(root: Path, files: dict[str, str]) -> Path:
    """A copy of k8s/, istio/ and k8s-overlay/ under `root` with the operator's secret files written in."""
    for part in ("k8s", "istio", "k8s-overlay"):
        shutil.copytree(REPO / part, root / part, dirs_exist_ok=True)
    for name, text in files.items():
        (root / "k8s-overlay" / "secrets" / name).write_text(text)
    return root / "k8s-overlay"


def secret_values(secret: dict) -> dict[str, str]:
    values = dict(secret.get("stringData", {}))
    values.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    return values


def placeholder_secrets(manifests) -> list[str]:
    """Secrets in a build whose values are templates ("REPLACE-WITH...", example hosts): applying them would
    overwrite the real ones and break every pod's next reconnect."""
    return [d["metadata"]["name"] for d in by_kind("Secret", manifests)
            if any(PLACEHOLDER.search(v) for v in secret_values(d).values())]


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert m, duration
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def configmap_toml() -> dict:
    return tomllib.loads(by_kind("ConfigMap")[0]["data"]["config.toml"])


def app_container(pod_template: dict) -> dict:
    return next(c for c in pod_template["spec"]["containers"] if c["name"] == "nexus-mcp")


def alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.fixture(scope="module")
def live_metrics(tmp_path_factory):
    """/metrics of a running nexus-mcp (SSH disabled, MongoDB absent: metrics answer regardless)."""
    n = Nexus(tmp_path_factory.mktemp("metrics"), {"ssh": {"enabled": False},
                                                    "mongo": {"uri": f"mongodb://127.0.0.1:{free_port()}/"}})
    n.wait_until(lambda: n.status("/metrics") == 200, 10, "/metrics")
    text = n.get("/metrics")[1]
    probe_codes = {p: n.status(p) for p in PROBES}
    n.stop()
    return text, probe_codes


def default_keys() -> dict[str, set[str]]:
    """Every key of config/default.toml, including the optional ones it documents as comments."""
    keys: dict[str, set[str]] = {}
    section = None
    for line in (REPO / "config" / "default.toml").read_text().splitlines():
        if m := re.match(r"^\[(\w+)\]", line):
            section = m.group(1)
            keys[section] = set()
        elif section and (m := re.match(r"^#?\s*([a-z_]+)\s*=", line)):
            keys[section].add(m.group(1))
            keys[section].update(re.findall(r"\(or ([a-z_]+) =", line))
    return keys


def help_text(*args) -> str:
    return subprocess.run([str(BINARY), *args, "--help"], capture_output=True, text=True, check=True).stdout


def test_every_validator_passes():
    result = subprocess.run(["scripts/validate-deploy.sh"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all deployment artifacts valid" in result.stdout


def test_live_metrics_pass_promtool(live_metrics):
    assert PROMTOOL.exists(), "run scripts/install-deploy-deps.sh"
    result = subprocess.run([str(PROMTOOL), "check", "metrics"], input=live_metrics[0], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_names_in_rules_dashboard_and_hpa_exist(live_metrics):
    exposed = {line.split()[2] for line in live_metrics[0].splitlines() if line.startswith("# TYPE ")}
    used = set()
    # Recording rules' names (level:metric:operations) are defined by the rules file, not the binary.
    rule_exprs = "\n".join(r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"])
    texts = [re.sub(r"\b\w+:\w+:\w+\b", "", rule_exprs)]
    texts += [(REPO / p).read_text() for p in ("monitoring/grafana-dashboard.json", "k8s/hpa.yaml",
                                               "monitoring/prometheus-adapter.yaml")]
    for text in texts:
        used |= set(re.findall(r"\b(nexus_[a-z_]+|process_[a-z_]+)\b", text))
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    missing = sorted(used - exposed)
    assert not missing, f"metrics used in the manifests but not exposed by the binary: {missing}"
    assert len(used) >= 10


def test_probe_paths_exist_and_ports_agree(live_metrics):
    codes = live_metrics[1]
    assert all(code in (200, 503) for code in codes.values()), codes  # served, not 404

    deployment = by_kind("Deployment")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == PORT
    probes = {k: container[k]["httpGet"]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes == {"startupProbe": "/startup", "readinessProbe": "/ready", "livenessProbe": "/health"}
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 25

    service = by_kind("Service")[0]
    assert service["spec"]["ports"][0]["port"] == PORT
    for vs in by_kind("VirtualService"):
        for route in vs["spec"]["http"]:
            assert route["route"][0]["destination"]["port"]["number"] == PORT
    policy = by_kind("AuthorizationPolicy")[0]
    paths = {p for rule in policy["spec"]["rules"] for op in rule["to"] for p in op["operation"]["paths"]}
    assert PROBES <= paths and "/mcp" in paths and "/metrics" in paths
    assert by_kind("ServiceMonitor")[0]["spec"]["endpoints"][0]["path"] == "/metrics"
    netpol = by_kind("NetworkPolicy")[0]
    assert netpol["spec"]["ingress"][0]["ports"][0]["port"] == PORT

    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"EXPOSE {PORT}" in dockerfile and f"NEXUS_SERVER__LISTEN=0.0.0.0:{PORT}" in dockerfile
    health_urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", dockerfile)
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    nexus_service = compose["services"]["nexus-mcp"]
    health_urls += re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(nexus_service["healthcheck"]["test"]))
    assert health_urls and all(int(p) == PORT and path in PROBES for p, path in health_urls)
    assert nexus_service["ports"][0].endswith(f":{PORT}")


def test_config_keys_and_env_names_exist():
    known = default_keys()
    configmap = by_kind("ConfigMap")[0]["data"]["config.toml"]
    for name, text in [("k8s ConfigMap", configmap), ("docker/nexus/config.toml",
                                                       (REPO / "docker" / "nexus" / "config.toml").read_text())]:
        for section, keys in tomllib.loads(text).items():
            assert section in known, f"{name}: unknown section [{section}]"
            unknown = set(keys) - known[section]
            assert not unknown, f"{name}: unknown keys in [{section}]: {unknown}"

    env_names = set(re.findall(r"\b(NEXUS_[A-Z_]+)", (REPO / "Dockerfile").read_text()))
    env_names |= set(re.findall(r"\b(NEXUS_[A-Z_]+)", (REPO / "docker" / "docker-compose.yml").read_text()))
    for d in built():
        env_names |= set(re.findall(r"\b(NEXUS_[A-Z_]+)", json.dumps(d)))
    assert env_names
    for env in env_names:
        if env == "NEXUS_CONFIG":
            assert "NEXUS_CONFIG" in help_text("serve")
            continue
        section, _, key = env.removeprefix("NEXUS_").lower().partition("__")
        assert key in known.get(section, set()), f"{env} maps to no config key"


def test_cli_subcommands_and_flags_exist():
    top, serve, health = help_text(), help_text("serve"), help_text("health")
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/nexus-mcp"]' in dockerfile and 'CMD ["serve"]' in dockerfile
    assert re.search(r"^\s+serve\b", top, re.M) and re.search(r"^\s+health\b", top, re.M)
    for flag in re.findall(r'"(--[a-z-]+)"', dockerfile):
        assert flag in health, flag
    container = by_kind("Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    for arg in container["args"]:
        assert arg in ("serve",) or arg in serve, arg
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    for word in compose["services"]["nexus-mcp"]["healthcheck"]["test"][1:]:
        if word.startswith("--"):
            assert word in health, word


# ---- The kustomize build ---------------------------------------------------------------------------------------

def test_k8s_builds_offline_with_istio_and_without_a_secret():
    kinds = sorted(d["kind"] for d in built())
    assert kinds == sorted([
        "Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
        "PeerAuthentication", "DestinationRule", "VirtualService", "AuthorizationPolicy", "ServiceEntry"])
    assert all(d["metadata"].get("namespace") == "nexus-mcp" for d in built() if d["kind"] != "Namespace")
    assert by_kind("Secret") == []
    # No file the base or the overlay reads is a Secret template either.
    overlay_files = sorted(OVERLAY.glob("*.yaml"))
    assert [p.name for p, d in docs(K8S + ISTIO + overlay_files) if d.get("kind") == "Secret"] == []


def test_placeholder_secret_check_can_fail():
    template = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nexus-mcp-mongo"},
                "stringData": {"uri": "mongodb://app:REPLACE@mongo.internal:27017/shop"}}
    encoded = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nexus-mcp-ssh"},
               "data": {"known_hosts": base64.b64encode(b"bastion.example.com ssh-ed25519 AAAA").decode()}}
    real = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nexus-mcp-tokens"},
            "data": {"tokens": base64.b64encode(b"agents:s3cr3t-0123456789").decode()}}
    assert placeholder_secrets([template, encoded, real]) == ["nexus-mcp-mongo", "nexus-mcp-ssh"]


def test_overlay_generates_the_mounted_secrets_from_files_and_rolls_pods_on_change(tmp_path):
    files = {"id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
             "known_hosts": "bastion.internal.corp ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
             "mongo-uri": "mongodb://app:s3cr3t@mongo.internal:27017/shop?authSource=shop\n",
             "tokens": "agents:0123456789abcdef0123456789abcdef\n"}
    first = kustomize(overlay_with_secret_files(tmp_path / "a", files))
    secrets = {d["metadata"]["name"]: d for d in by_kind("Secret", first)}
    names = {re.sub(r"-[a-z0-9]{10}$", "", n): n for n in secrets}
    assert sorted(names) == sorted(SECRETS)
    assert all(n != base for base, n in names.items()), "generated names must carry the content hash"
    for base, keys in SECRETS.items():
        assert secret_values(secrets[names[base]]) == {key: files[f] for key, f in keys.items()}
    assert placeholder_secrets(first) == []

    volumes = by_kind("Deployment", first)[0]["spec"]["template"]["spec"]["volumes"]
    mounted = {v["secret"]["secretName"] for v in volumes if "secret" in v}
    assert mounted == set(names.values()), "the Deployment must mount the generated (hashed) names"

    # A rotated value changes that Secret's name, so the Deployment's pod template changes and the pods roll.
    rotated = kustomize(overlay_with_secret_files(tmp_path / "b", files | {"mongo-uri": "mongodb://app:n3w@m:27017/\n"}))
    rotated_names = {d["metadata"]["name"] for d in by_kind("Secret", rotated)}
    assert rotated_names ^ set(names.values()) == {names["nexus-mcp-mongo"]} | (rotated_names - set(names.values()))
    assert len(rotated_names - set(names.values())) == 1


def test_overlay_refuses_to_build_without_the_secret_files(tmp_path):
    root = tmp_path / "tree"
    for part in ("k8s", "istio", "k8s-overlay"):
        shutil.copytree(REPO / part, root / part)
    out = subprocess.run(["kubectl", "kustomize", str(root / "k8s-overlay")], capture_output=True, text=True)
    assert out.returncode != 0 and "secrets/id_ed25519" in out.stderr
    ignored = subprocess.run(["git", "check-ignore", "k8s-overlay/secrets/mongo-uri", "k8s-overlay/secrets/tokens"],
                             cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == ["k8s-overlay/secrets/mongo-uri", "k8s-overlay/secrets/tokens"]


# ---- Policies that agree ---------------------------------------------------------------------------------------

def netpol_ingress_namespaces() -> set[str]:
    netpol = by_kind("NetworkPolicy")[0]
    found = set()
    for rule in netpol["spec"]["ingress"]:
        assert [p["port"] for p in rule["ports"]] == [PORT]
        for peer in rule["from"]:
            assert set(peer) == {"namespaceSelector"}, f"unexpected peer {peer}"
            found.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    return found


def authz_caller_namespaces() -> set[str]:
    policy = by_kind("AuthorizationPolicy")[0]
    assert policy["spec"]["action"] == "ALLOW"
    found = set()
    for rule in policy["spec"]["rules"]:
        for source in (f["source"] for f in rule.get("from", [])):
            found |= set(source.get("namespaces", []))
            for principal in source.get("principals", []):
                m = re.fullmatch(r"cluster\.local/ns/([a-z0-9-]+)/sa/[a-z0-9-]+", principal)
                assert m, principal
                found.add(m.group(1))
    return found


def test_networkpolicy_admits_exactly_the_namespaces_the_authorizationpolicy_allows():
    assert netpol_ingress_namespaces() == authz_caller_namespaces() == {"istio-ingress", "agents", "monitoring"}


def test_bastion_address_port_and_sidecar_bypass_agree():
    netpol = by_kind("NetworkPolicy")[0]
    ssh_egress = [r for r in netpol["spec"]["egress"] if [p["port"] for p in r["ports"]] == [22]]
    assert len(ssh_egress) == 1
    cidrs = [peer["ipBlock"]["cidr"] for peer in ssh_egress[0]["to"]]

    entry = by_kind("ServiceEntry")[0]["spec"]
    assert entry["resolution"] == "STATIC" and entry["location"] == "MESH_EXTERNAL"
    assert entry["addresses"] == cidrs == ["203.0.113.10/32"]
    assert [e["address"] + "/32" for e in entry["endpoints"]] == cidrs
    assert [p["number"] for p in entry["ports"]] == [22]
    assert entry["hosts"] == [configmap_toml()["ssh"]["host"]]
    assert configmap_toml()["ssh"]["port"] == 22

    # SSH leaves the pod without Envoy: nothing in the mesh may originate TLS toward the bastion.
    annotations = by_kind("Deployment")[0]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] == "22"
    assert [d["spec"]["host"] for d in by_kind("DestinationRule")] == ["nexus-mcp.nexus-mcp.svc.cluster.local"]


# ---- Drain with the mesh ---------------------------------------------------------------------------------------

def shutdown_close_budget() -> float:
    """What nexus-mcp may spend after the drain: one CLOSE_GRACE per component it closes once draining
    (src/app/mod.rs: the HTTP server, the tunnels, the background tasks)."""
    app = (REPO / "src" / "app" / "mod.rs").read_text()
    grace = int(re.search(r"const CLOSE_GRACE: Duration = Duration::from_secs\((\d+)\);", app).group(1))
    after_drain = app[app.index("probes.set_draining();"):]
    return grace * after_drain.count("timeout(CLOSE_GRACE")


def test_drain_fits_the_grace_period_and_outlasts_a_request():
    server = configmap_toml()["server"]
    request_timeout, shutdown_grace = seconds(server["request_timeout"]), seconds(server["shutdown_grace"])
    assert (request_timeout, shutdown_grace) == (30, 30)
    assert shutdown_grace >= request_timeout

    pod = by_kind("Deployment")[0]["spec"]["template"]
    pre_stop = app_container(pod)["lifecycle"]["preStop"]["sleep"]["seconds"]
    proxy = yaml.safe_load(pod["metadata"]["annotations"]["proxy.istio.io/config"])
    proxy_min_drain = seconds(proxy["proxyMetadata"]["MINIMUM_DRAIN_DURATION"])
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert (pre_stop, shutdown_close_budget(), proxy_min_drain, grace) == (5, 6, 5, 60)
    assert grace >= pre_stop + shutdown_grace + shutdown_close_budget() + proxy_min_drain

    # The sidecar outlives the app: native (stopped after nexus-mcp), else it waits for zero connections.
    assert pod["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    assert proxy["proxyMetadata"]["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] == "true"
    assert proxy["holdApplicationUntilProxyStarts"] is True


def test_mesh_timeouts_back_up_request_timeout_and_spare_legacy_streams():
    request_timeout = seconds(configmap_toml()["server"]["request_timeout"])
    routes = {r["name"]: r for r in by_kind("VirtualService")[0]["spec"]["http"]}
    assert list(routes) == ["mcp-legacy-session", "mcp", "probes-and-metrics"]
    legacy = routes["mcp-legacy-session"]
    assert legacy["match"] == [{"uri": {"prefix": "/mcp"}, "headers": {"mcp-session-id": {"regex": ".+"}}}]
    assert legacy["timeout"] == "0s"
    assert seconds(routes["mcp"]["timeout"]) == 35 > request_timeout
    assert routes["mcp"]["match"] == [{"uri": {"prefix": "/mcp"}}]
    assert all(routes[name]["retries"] == {"attempts": 0} for name in ("mcp-legacy-session", "mcp"))


# ---- Scaling and disruption ------------------------------------------------------------------------------------

def test_hpa_scales_on_the_app_container_and_a_metric_the_adapter_serves():
    hpa = by_kind("HorizontalPodAutoscaler")[0]["spec"]
    container = app_container(by_kind("Deployment")[0]["spec"]["template"])["name"]
    by_type = [(m["type"], m.get("containerResource", {}).get("name"), m.get("containerResource", {}).get("container"))
               for m in hpa["metrics"]]
    assert by_type == [("ContainerResource", "cpu", container), ("ContainerResource", "memory", container),
                       ("Pods", None, None)]
    assert not [m for m in hpa["metrics"] if m["type"] == "Resource"], "pod-level metrics include istio-proxy"
    pods_metric = hpa["metrics"][2]["pods"]["metric"]["name"]

    adapter = yaml.safe_load((REPO / "monitoring" / "prometheus-adapter.yaml").read_text())["rules"]["custom"]
    assert [r["name"]["as"] for r in adapter] == [pods_metric] == ["nexus_mcp_in_flight"]
    assert adapter[0]["seriesQuery"].startswith(pods_metric + "{")
    assert adapter[0]["resources"]["overrides"] == {"namespace": {"resource": "namespace"},
                                                    "pod": {"resource": "pod"}}


def test_adapter_rule_renders_to_valid_promql(tmp_path):
    out = tmp_path / "adapter.yml"
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), "scripts/check-adapter-rules.py",
                    "monitoring/prometheus-adapter.yaml", str(out)], cwd=REPO, check=True, capture_output=True)
    rendered = yaml.safe_load(out.read_text())["groups"][0]["rules"]
    assert rendered == [{"record": "adapter_check:nexus_mcp_in_flight",
                         "expr": 'max by (pod) (nexus_mcp_in_flight{namespace="nexus-mcp",pod=~"nexus-mcp-.*"})'}]
    check = subprocess.run([str(PROMTOOL), "check", "rules", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_pdb_lets_one_pod_go_at_a_time_and_never_blocks_on_unhealthy_pods():
    pdb = by_kind("PodDisruptionBudget")[0]["spec"]
    assert {k: v for k, v in pdb.items() if k != "selector"} == {"maxUnavailable": 1,
                                                                 "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    assert pdb["selector"] == by_kind("Deployment")[0]["spec"]["selector"]


# ---- Image pinning ---------------------------------------------------------------------------------------------

def pin_images(repo: Path, command: str, resolver: Path | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"PIN_REPO": str(repo)} | ({"PIN_RESOLVER": str(resolver)} if resolver else {})
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(REPO / "scripts" / "pin-images.py"), command],
                          env=env, capture_output=True, text=True)


def test_pin_check_refuses_tags_and_accepts_digests(tmp_path):
    for part in ("k8s", "istio"):
        shutil.copytree(REPO / part, tmp_path / part)
    shutil.copy(REPO / "Dockerfile", tmp_path / "Dockerfile")
    for line in ("FROM rust:1.95-bookworm AS builder", "FROM gcr.io/distroless/cc-debian12:nonroot"):
        assert line in (REPO / "Dockerfile").read_text()
    # The tree as it is in git: tags (no digest can be resolved offline); the release gate says so.
    refused = pin_images(tmp_path, "check")
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[1:] == ["  k8s/: ghcr.io/example/nexus-mcp:0.1.0",
                                               "  Dockerfile: rust:1.95-bookworm",
                                               "  Dockerfile: gcr.io/distroless/cc-debian12:nonroot"]
    # `pin` with a stand-in resolver (the real one asks the registry) writes digests; then the gate passes.
    resolver = tmp_path / "resolver"
    resolver.write_text('#!/bin/sh\necho "sha256:$(printf %s "$1" | sha256sum | cut -c1-64)"\n')
    resolver.chmod(0o755)
    pinned = pin_images(tmp_path, "pin", resolver)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    image = app_container(by_kind("Deployment", kustomize(tmp_path / "k8s"))[0]["spec"]["template"])["image"]
    assert re.fullmatch(r"ghcr\.io/example/nexus-mcp:0\.1\.0@sha256:[0-9a-f]{64}", image)
    assert re.search(r"^FROM rust:1\.95-bookworm@sha256:[0-9a-f]{64} AS builder$",
                     (tmp_path / "Dockerfile").read_text(), re.M)
    assert pin_images(tmp_path, "check").returncode == 0


# ---- Alerts ----------------------------------------------------------------------------------------------------

def test_promtool_unit_tests_of_the_alerts_pass():
    result = subprocess.run([str(PROMTOOL), "test", "rules", "alerts.test.yml"], cwd=REPO / "monitoring",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (REPO / "monitoring" / "alerts.test.yml").read_text()))
    assert tested == {a["alert"] for a in alerts()}, "every alert has a promtool test"


def test_every_alert_links_its_own_runbook_section():
    headings = {github_slug(m) for m in re.findall(r"^#{2,4} (.+)$", DEPLOYMENT_DOC.read_text(), re.M)}
    urls = [a["annotations"]["runbook_url"] for a in alerts()]
    assert len(set(urls)) == len(urls) == 11
    for alert, url in zip(alerts(), urls):
        assert url == RUNBOOK_BASE + alert["alert"].lower()
        assert url.removeprefix(RUNBOOK_BASE) in headings, f"docs/deployment.md has no section for {alert['alert']}"


def test_the_capacity_section_is_measured_not_placeholders():
    """Issue 16: the sizing table comes from a measured run (`make bench-capacity`), which it links."""
    section = DEPLOYMENT_DOC.read_text().split("\n## Capacity\n", 1)[1].split("\n## ", 1)[0]
    assert "Not yet" not in section
    assert not re.findall(r"\b(?:NEXUS|OFFICIAL)_[A-Z_]+\b", section), "placeholders left in the capacity table"
    runs = re.findall(r"\]\(\.\./(bench/results/[\w.-]+-capacity\.md)\)", section)
    assert runs and all((REPO / r).exists() for r in runs), "the capacity section links its measured run"


def test_critical_availability_alerts_are_per_namespace_not_per_pod():
    critical = {a["alert"]: a for a in alerts() if a["labels"]["severity"] == "critical"}
    assert sorted(critical) == ["NexusMongoDown", "NexusNoReadyReplicas", "NexusSshHostKeyMismatch",
                                "NexusToolLatencyBudgetBurn", "NexusTunnelDown"]
    for name, alert in critical.items():
        assert "pod" not in alert["expr"], f"{name} must aggregate over pods: one page per outage"
    assert critical["NexusSshHostKeyMismatch"]["labels"]["category"] == "security"
    assert 'class="SSH_HOST_KEY_MISMATCH"' in critical["NexusSshHostKeyMismatch"]["expr"]


# ---- The compose dev stack: a replica set behind the bastion ------------------------------------------------------

DOCKER = REPO / "docker"
RS_INIT = DOCKER / "mongo-rs" / "initiate.js"
RS_MEMBERS = ["mongo-0:27017", "mongo-1:27017", "mongo-2:27017"]
GENERATED_URI = ("mongodb://app:{password}@mongo-0:27017,mongo-1:27017,mongo-2:27017/shop"
                 "?replicaSet=rs0&authSource=shop\n")


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def sshd_option(name: str) -> str:
    """One option of the dev bastion's sshd_config, as written."""
    found = re.findall(rf"^{name} (.+)$", (DOCKER / "bastion" / "sshd_config").read_text(), re.M)
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def generate_dev_secrets(root: Path, stale: dict[str, str] | None = None) -> Path:
    """Copies docker/ (without anyone's real .secrets) to `root`, writes `stale` files into its .secrets first, runs
    gen-dev-keys.sh there and returns the .secrets directory."""
    shutil.copytree(DOCKER, root, ignore=shutil.ignore_patterns(".secrets"))
    secrets = root / ".secrets"
    for name, text in (stale or {}).items():
        (secrets / name).parent.mkdir(parents=True, exist_ok=True)
        (secrets / name).write_text(text)
    run = subprocess.run(["bash", str(root / "gen-dev-keys.sh")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return secrets


def test_compose_runs_a_three_member_replica_set_that_the_bastion_and_the_generated_uri_name(tmp_path):
    services = compose()["services"]
    members = sorted(name for name, s in services.items() if "--replSet" in s.get("command", []))
    assert members == ["mongo-0", "mongo-1", "mongo-2"]
    for name in members:
        s = services[name]
        assert s["image"] == "mongo:7"
        args = s["command"]
        assert args[args.index("--replSet") + 1] == "rs0"
        assert s["networks"] == ["data"]
        assert s["volumes"][-1] == f"{name}-data:/data/db"
        # Healthy = answers at its member address (not the loopback-only mongod of mongo-0's first start).
        assert s["healthcheck"]["test"][:5] == ["CMD", "mongosh", "--quiet", "--host", name]
    # Only the preferred primary creates the root user and runs the init scripts (app user, sample data).
    assert [n for n in members if "environment" in services[n]] == ["mongo-0"]
    init_scripts = "./mongo-init:/docker-entrypoint-initdb.d:ro"
    assert [n for n in members if init_scripts in services[n]["volumes"]] == ["mongo-0"]
    assert services["mongo-0"]["environment"]["MONGO_INITDB_ROOT_PASSWORD_FILE"] == "/run/secrets/mongo_root_password"

    # The one-shot init service initiates exactly these members; the bastion waits for it to succeed.
    init = services["mongo-rs-init"]
    assert init["environment"]["RS_NAME"] == "rs0"
    assert init["environment"]["RS_MEMBERS"].split(",") == RS_MEMBERS
    assert [h.removesuffix(":27017") for h in RS_MEMBERS] == members
    root = services["mongo-0"]["environment"]["MONGO_INITDB_ROOT_USERNAME"]
    assert (init["environment"]["MONGO_ROOT_USERNAME"], root) == ("root", "root")
    assert init["depends_on"] == {m: {"condition": "service_healthy"} for m in members}
    assert services["bastion"]["depends_on"] == {"mongo-rs-init": {"condition": "service_completed_successfully"}}

    # The bastion forwards to exactly the members, by name, and nothing else.
    assert sshd_option("PermitOpen").split() == RS_MEMBERS
    assert sshd_option("AllowTcpForwarding") == "local"

    # gen-dev-keys.sh writes the replica-set URI with these members, also over a URI of the old single-host shape.
    secrets = generate_dev_secrets(tmp_path / "docker",
                                   {"mongo_uri": "mongodb://app:old@mongo:27017/shop?authSource=shop\n"})
    password = (secrets / "mongo_app_password").read_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{20,}", password)
    uri = (secrets / "mongo_uri").read_text()
    assert uri == GENERATED_URI.format(password=password)
    assert re.search(r"@([^/]+)/", uri).group(1).split(",") == RS_MEMBERS

    # Idempotent: a second run keeps every key and password (all members must share the keyfile) and the URI.
    before = {str(p.relative_to(secrets)): p.read_bytes() for p in secrets.rglob("*") if p.is_file()}
    again = subprocess.run(["bash", str(tmp_path / "docker" / "gen-dev-keys.sh")], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert {str(p.relative_to(secrets)): p.read_bytes() for p in secrets.rglob("*") if p.is_file()} == before


def test_every_member_gets_the_keyfile_as_mongod_requires_it(tmp_path):
    c = compose()
    assert c["secrets"]["mongo_keyfile"] == {"file": "./.secrets/mongo_keyfile"}
    for name in ("mongo-0", "mongo-1", "mongo-2"):
        s = c["services"][name]
        assert "mongo_keyfile" in s["secrets"]
        keyfile = s["command"][s["command"].index("--keyFile") + 1]
        # The bind-mounted secret keeps the host file's owner and mode: the wrapper copies it for mongod (uid 999,
        # 0400) and then runs the image's own entrypoint with the command (`$$` is Compose's escape for `$`).
        assert s["entrypoint"] == [
            "bash", "-c",
            f'install -o 999 -g 999 -m 0400 /run/secrets/mongo_keyfile {keyfile} && exec docker-entrypoint.sh "$$@"',
            "mongod-keyfile"]
        assert keyfile == "/etc/mongo-keyfile"
    # The generated key is what mongod accepts: base64 characters only, 6 to 1024 of them (whitespace ignored).
    key = (generate_dev_secrets(tmp_path / "docker") / "mongo_keyfile").read_text()
    assert re.fullmatch(r"[A-Za-z0-9+/=\n]+", key)
    assert len(re.sub(r"\s", "", key)) == 1008


def run_rs_init(env: dict[str, str], statuses: list[dict]) -> dict:
    """Runs docker/mongo-rs/initiate.js under node with stand-ins for what mongosh gives it (`rs`, `db`, `fs`,
    `print`, `sleep`, `process.env`). `statuses` are rs.status()'s successive answers: {"error": codeName} to throw,
    else {"set": name, "states": [stateStr per member]} (the last one repeats). Returns the calls and the error."""
    harness = r"""
const vm = require("vm");
const [script, spec] = [require("fs").readFileSync(process.argv[1], "utf8"), JSON.parse(process.argv[2])];
const calls = [];
let n = 0;
const sandbox = {
  process: { env: spec.env },
  fs: { readFileSync: (path, enc) => { calls.push(["read", path, enc]); return "s3cret-root\n"; } },
  print: (text) => calls.push(["print", text]),
  sleep: (ms) => calls.push(["sleep", ms]),
  db: { getSiblingDB: (db) => ({ auth: (user, pwd) => { calls.push(["auth", db, user, pwd]); return { ok: 1 }; } }) },
  rs: {
    status: () => {
      const s = spec.statuses[Math.min(n++, spec.statuses.length - 1)];
      calls.push(["status"]);
      if (s.error) { const e = new Error(s.error); e.codeName = s.error; throw e; }
      return { set: s.set, members: s.states.map((stateStr, i) => ({ name: `mongo-${i}:27017`, stateStr })) };
    },
    initiate: (config) => { calls.push(["initiate", config]); return { ok: 1 }; },
  },
};
let error = null;
try { vm.runInNewContext(script, sandbox, { filename: process.argv[1] }); } catch (e) { error = e.message; }
console.log(JSON.stringify({ calls, error }));
"""
    out = subprocess.run(["node", "-e", harness, str(RS_INIT), json.dumps({"env": env, "statuses": statuses})],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_init_service_initiates_the_set_once_and_waits_for_a_writable_primary():
    env = compose()["services"]["mongo-rs-init"]["environment"]
    ready = {"set": "rs0", "states": ["PRIMARY", "SECONDARY", "SECONDARY"]}

    fresh = run_rs_init(env, [{"error": "NotYetInitialized"},
                              {"set": "rs0", "states": ["STARTUP2", "STARTUP", "STARTUP"]},
                              {"set": "rs0", "states": ["SECONDARY", "SECONDARY", "STARTUP2"]}, ready])
    assert fresh["error"] is None
    assert fresh["calls"][:2] == [["read", "/run/secrets/mongo_root_password", "utf8"],
                                  ["auth", "admin", "root", "s3cret-root"]]
    assert [c[1] for c in fresh["calls"] if c[0] == "initiate"] == [
        {"_id": "rs0", "members": [{"_id": 0, "host": "mongo-0:27017", "priority": 2},
                                   {"_id": 1, "host": "mongo-1:27017", "priority": 1},
                                   {"_id": 2, "host": "mongo-2:27017", "priority": 1}]}]
    assert [c[0] for c in fresh["calls"]].count("sleep") == 2
    assert fresh["calls"][-1] == ["print", "replica set rs0: ready (mongo-0:27017 PRIMARY, mongo-1:27017 SECONDARY, "
                                           "mongo-2:27017 SECONDARY)"]

    # Run again on an initiated set (every `docker compose up` runs it): no second initiate, only the wait.
    rerun = run_rs_init(env, [ready])
    assert rerun["error"] is None
    assert [c[0] for c in rerun["calls"]] == ["read", "auth", "status", "print", "status", "print"]
    assert rerun["calls"][3] == ["print", "replica set rs0: already initiated"]

    # No primary in time: a non-zero exit (init.sh retries, then the bastion never starts on a broken set).
    no_primary = {"set": "rs0", "states": ["SECONDARY", "SECONDARY", "SECONDARY"]}
    stuck = run_rs_init(env | {"RS_WAIT_SECONDS": "0"}, [no_primary])
    assert stuck["error"] == ("replica set rs0: no writable primary with 2 secondaries within 0 s (mongo-0:27017 "
                              "SECONDARY, mongo-1:27017 SECONDARY, mongo-2:27017 SECONDARY)")
    assert "initiate" not in [c[0] for c in stuck["calls"]]
    other = run_rs_init(env, [{"set": "rs9", "states": ["PRIMARY"]}])
    assert other["error"] == "this member belongs to replica set rs9, not rs0"
    denied = run_rs_init(env, [{"error": "Unauthorized"}])
    assert denied["error"] == "Unauthorized"


def test_the_dev_nexus_config_dials_every_member_by_name_through_the_dev_bastions_permitopen(tmp_path):
    """nexus-mcp with docker/nexus/config.toml (no [tunnel]: auto) and the URI gen-dev-keys.sh writes, against an sshd
    with the dev bastion's forwarding rules: it serves the SOCKS route and asks the bastion for each member by name,
    and the bastion admits each one (no `mongo-N` resolves on this machine, so the connects themselves fail)."""
    assert "tunnel" not in tomllib.loads((DOCKER / "nexus" / "config.toml").read_text())
    secrets = generate_dev_secrets(tmp_path / "docker")
    sshd = Sshd(tmp_path / "sshd", authorized_keys=[secrets / "client" / "id_ed25519"],
                permit_open=sshd_option("PermitOpen").split(), allow_tcp_forwarding=sshd_option("AllowTcpForwarding"))
    try:
        (tmp_path / "known_hosts").write_text(sshd.known_hosts_line())
        env = os.environ | {
            "NEXUS_SSH__HOST": sshd.host, "NEXUS_SSH__PORT": str(sshd.port), "NEXUS_SSH__USER": getpass.getuser(),
            "NEXUS_SSH__PRIVATE_KEY": str(secrets / "client" / "id_ed25519"),
            "NEXUS_SSH__KNOWN_HOSTS": str(tmp_path / "known_hosts"),
            "NEXUS_SERVER__AUTH_TOKENS_FILE": str(secrets / "tokens"),
            "NEXUS_MONGO__URI_FILE": str(secrets / "mongo_uri")}
        check = subprocess.run([str(BINARY), "check", "--config", str(DOCKER / "nexus" / "config.toml")], env=env,
                               capture_output=True, text=True, timeout=60)
    finally:
        sshd.stop()
    assert check.returncode == 12, check.stdout + check.stderr
    tunnel, mongodb = check.stdout.splitlines()[:2]
    assert re.search(r"session up; forward 127\.0\.0\.1:\d+ → mongo-0:27017, socks5 127\.0\.0\.1:\d+ → any host",
                     tunnel), tunnel
    refused = "SSH_FORWARD_REFUSED: the bastion refused to forward to mongo-0:27017, mongo-1:27017, mongo-2:27017"
    assert refused in mongodb, mongodb
    log = sshd.log_text()
    assert sorted(set(re.findall(r"connect_to (mongo-\d)\b", log))) == ["mongo-0", "mongo-1", "mongo-2"], log
    assert "denied" not in log, log
    # Without the replica-set route the same URI is refused at startup: the compose config relies on auto.
    forced = subprocess.run([str(BINARY), "check", "--config", str(DOCKER / "nexus" / "config.toml")],
                            env=env | {"NEXUS_TUNNEL__MODE": "forward"}, capture_output=True, text=True, timeout=30)
    assert forced.returncode == 64 and "lists several hosts" in forced.stderr, forced.stdout + forced.stderr


def test_nexus_mcp_gets_the_time_to_drain_before_docker_kills_it():
    service = compose()["services"]["nexus-mcp"]
    assert "shutdown_grace" not in tomllib.loads((DOCKER / "nexus" / "config.toml").read_text()).get("server", {})
    default_grace = seconds(tomllib.loads((REPO / "config" / "default.toml").read_text())["server"]["shutdown_grace"])
    assert (seconds(service["stop_grace_period"]), default_grace, shutdown_close_budget()) == (40, 30, 6)
    assert seconds(service["stop_grace_period"]) >= default_grace + shutdown_close_budget()


# ---- The optional OAuth alternative: istio/oauth/ + the ConfigMap's [server.oauth] example ---------------------

ISTIO_OAUTH = REPO / "istio" / "oauth"
OAUTH_KINDS = [("AuthorizationPolicy", "nexus-mcp-oauth-metadata"), ("AuthorizationPolicy", "nexus-mcp-require-token"),
               ("RequestAuthentication", "nexus-mcp-oauth")]


def oauth_example_toml() -> str:
    """k8s/configmap.yaml's config.toml with its commented [server.oauth] example uncommented."""
    text = by_kind("ConfigMap")[0]["data"]["config.toml"]
    block = re.search(r"^# \[server\.oauth\]\n(?:^#.*\n)+", text, re.M)
    assert block, "k8s/configmap.yaml has no commented [server.oauth] example"
    return text.replace(block.group(0), re.sub(r"^# ?", "", block.group(0), flags=re.M))


def istio_path_matches(pattern: str, path: str) -> bool:
    """Istio's path match: exact, `prefix*` or `*suffix`."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    return path == pattern


def test_istio_oauth_is_optional_and_builds_alone_and_with_the_overlay(tmp_path):
    oauth = kustomize(ISTIO_OAUTH)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in oauth) == OAUTH_KINDS
    assert all(d["metadata"]["namespace"] == "nexus-mcp" for d in oauth)
    # The default build is unchanged: k8s/ loads istio/kustomization.yaml only.
    assert by_kind("RequestAuthentication") == []
    assert [d["metadata"]["name"] for d in by_kind("AuthorizationPolicy")] == ["nexus-mcp"]
    # As docs/oauth.md tells: an overlay listing the operator's overlay (or k8s/) and ../istio/oauth.
    overlay = overlay_with_secret_files(tmp_path, {f: "validate stand-in\n" for f in
                                                   ("id_ed25519", "known_hosts", "mongo-uri", "tokens")})
    (tmp_path / "with-oauth").mkdir()
    (tmp_path / "with-oauth" / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../k8s-overlay", "../istio/oauth"]}))
    plain = kustomize(overlay)
    combined = kustomize(tmp_path / "with-oauth")
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, combined)) == sorted([*map(key, plain), *OAUTH_KINDS])


def test_istio_oauth_agrees_with_the_configmap_example_and_the_base_policies():
    oauth = {d["metadata"]["name"]: d for d in kustomize(ISTIO_OAUTH)}
    example = tomllib.loads(oauth_example_toml())["server"]["oauth"]
    assert (example["issuer"], example["audience"]) == ("https://idp.example.com/realms/ops",
                                                        "https://mcp.example.com/mcp")
    pod_labels = by_kind("Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    for d in oauth.values():
        selector = d["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items(), d["metadata"]["name"]

    # The sidecar checks the same issuer and audience nexus-mcp does, and hands the token on to nexus-mcp (which
    # needs it for the scopes): without forwardOriginalToken it would strip the Authorization header.
    assert oauth["nexus-mcp-oauth"]["spec"]["jwtRules"] == [{
        "issuer": example["issuer"], "audiences": [example["audience"]], "forwardOriginalToken": True}]
    audience_host = example["audience"].split("://", 1)[1].split("/", 1)[0]
    assert audience_host in configmap_toml()["server"]["allowed_hosts"]

    # Token-less /mcp is denied; a request principal (`<iss>/<sub>`) of exactly that issuer is needed.
    base = by_kind("AuthorizationPolicy")[0]["spec"]
    mcp_rule = next(r for r in base["rules"] if "/mcp" in r["to"][0]["operation"]["paths"])
    deny = oauth["nexus-mcp-require-token"]["spec"]
    assert (deny["action"], deny["rules"]) == ("DENY", [{
        "from": [{"source": {"notRequestPrincipals": [f"{example['issuer']}/*"]}}],
        "to": [{"operation": {"paths": mcp_rule["to"][0]["operation"]["paths"]}}]}])

    # The metadata document nexus-mcp serves for this audience is readable by exactly the callers of /mcp.
    metadata = oauth["nexus-mcp-oauth-metadata"]["spec"]
    assert metadata["action"] == "ALLOW"
    [rule] = metadata["rules"]
    assert rule["from"] == mcp_rule["from"]
    paths = rule["to"][0]["operation"]["paths"]
    for served in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        assert any(istio_path_matches(p, served) for p in paths), served
    assert not any(istio_path_matches(p, "/mcp") for p in paths)
    assert rule["to"][0]["operation"]["methods"] == ["GET"]


def test_the_configmaps_oauth_example_is_accepted_by_nexus_mcp(tmp_path):
    # The ConfigMap with [server.oauth] uncommented, its mounted files and bastion replaced by local stand-ins: the
    # configuration stage passes (the tunnel then fails: nothing listens on the stand-in bastion port).
    (tmp_path / "ssh").mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ssh" / "id_ed25519")],
                   check=True)
    (tmp_path / "ssh" / "known_hosts").write_text("")
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "tokens").write_text("agents:0123456789abcdef0123456789abcdef\n")
    (tmp_path / "mongo").mkdir()
    (tmp_path / "mongo" / "uri").write_text("mongodb://127.0.0.1:27017/\n")
    text = oauth_example_toml().replace("/etc/nexus-mcp/", f"{tmp_path}/")
    text = re.sub(r'^host = ".*"$', 'host = "127.0.0.1"', text, count=1, flags=re.M)
    text = re.sub(r"^port = 22$", f"port = {free_port()}", text, count=1, flags=re.M)
    config = tmp_path / "config.toml"
    for variant, expect in ((text, 11), (text.replace('audience = "https://', 'audience = "'), 64)):
        config.write_text(variant)
        check = subprocess.run([str(BINARY), "check", "--config", str(config)], capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == expect, check.stdout + check.stderr
        if expect == 11:
            assert re.match(r"tunnel\s+FAILED .* SSH_UNREACHABLE", check.stdout), check.stdout
        else:
            assert check.stderr.strip() == ("nexus-mcp: configuration error: server.oauth.audience: must be the "
                                            "absolute URL clients use for this server's /mcp, e.g. "
                                            "https://nexus.example.com/mcp"), check.stderr
