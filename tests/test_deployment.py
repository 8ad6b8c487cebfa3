"""The deployment artifacts: valid for their third-party validators, and consistent with the real binary — every
port, probe path, config key, env name, CLI flag and metric name they use exists in nexus-mcp."""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from support import Nexus, REPO, free_port
from support.nexus import BINARY

PROMTOOL = REPO / ".run" / "tools" / "promtool"
K8S = sorted((REPO / "k8s").glob("*.yaml"))
ISTIO = sorted((REPO / "istio").glob("*.yaml"))
PROBES = {"/health", "/ready", "/startup"}
PORT = 3000


def docs(paths):
    for p in paths:
        for d in yaml.safe_load_all(p.read_text()):
            if d:
                yield p, d


def by_kind(kind):
    return [d for _, d in docs(K8S + ISTIO) if d.get("kind") == kind]


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
    sources = [REPO / "monitoring" / "alerts.rules.yml", REPO / "monitoring" / "grafana-dashboard.json",
               REPO / "k8s" / "hpa.yaml"]
    for path in sources:
        used |= set(re.findall(r"\b(nexus_[a-z_]+|process_[a-z_]+)\b", path.read_text()))
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
    for _, d in docs(K8S):
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
