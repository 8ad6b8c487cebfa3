"""The real nexus-mcp binary: config as a dict written to TOML, probes, metrics, logs."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .procs import Proc, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("NEXUS_BIN", REPO / "target" / "debug" / "nexus-mcp"))


def _binary(path: Path = BINARY) -> str:
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `cargo build` (or `make build`)")
    return str(path)


def toml(config: dict) -> str:
    """A tiny TOML writer for {section: {key: scalar | list}}."""
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))
    out = []
    for section, keys in config.items():
        out.append(f"[{section}]")
        out.extend(f"{k} = {value(v)}" for k, v in keys.items())
        out.append("")
    return "\n".join(out)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(extra or {})
    return env


class Nexus:
    """One nexus-mcp process (`serve` by default)."""

    def __init__(self, directory: Path, config: dict, *, args: list[str] = (), env: dict[str, str] | None = None,
                 start: bool = True, binary: Path = BINARY):
        self.binary = binary
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        config = {section: dict(keys) for section, keys in config.items()}
        server = config.setdefault("server", {})
        server.setdefault("listen", f"127.0.0.1:{free_port()}")
        named_targets = any(section.startswith("targets.") for section in config)
        if config.get("ssh", {}).get("enabled", True) and not named_targets:
            config.setdefault("tunnel", {}).setdefault("local_listen", f"127.0.0.1:{free_port()}")
            # The whole suite can run with another route: NEXUS_TEST_TUNNEL_MODE=socks make test-socks.
            if os.environ.get("NEXUS_TEST_TUNNEL_MODE"):
                config["tunnel"].setdefault("mode", os.environ["NEXUS_TEST_TUNNEL_MODE"])
        config.setdefault("log", {}).setdefault("format", "json")
        self.config = config
        self.config_path = self.dir / "nexus.toml"
        self.config_path.write_text(toml(config))
        self.env = clean_env(env)
        self.args = list(args)
        self.log = self.dir / "nexus.log"
        self.proc: Proc | None = None
        if start:
            self.start()

    @property
    def url(self) -> str:
        return f"http://{self.config['server']['listen']}"

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    @property
    def forward_port(self) -> int:
        return int(self.config["tunnel"]["local_listen"].rsplit(":", 1)[1])

    def start(self) -> None:
        self.proc = Proc([_binary(self.binary), "serve", "--config", str(self.config_path), *self.args], self.log,
                         env=self.env)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs another subcommand (check, health, …) with this config; returns the completed process."""
        argv = [_binary(self.binary), *args]
        if args and args[0] in ("check", "serve"):
            argv += ["--config", str(self.config_path)]
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def status(self, path: str) -> int:
        try:
            return self.get(path)[0]
        except OSError:
            return 0

    def metrics(self) -> dict[str, float]:
        status, text = self.get("/metrics")
        assert status == 200, text
        out = {}
        for line in str(text).splitlines():
            if line and not line.startswith("#"):
                series, _, number = line.rpartition(" ")
                out[series] = float(number)
        return out

    def metric(self, series: str) -> float:
        return self.metrics().get(series, 0.0)

    def wait_until(self, predicate, timeout: float, what: str):
        return wait_until(predicate, timeout, what, on_timeout=self.log_tail)

    def wait_ready(self, timeout: float = 30):
        return self.wait_until(lambda: self.status("/ready") == 200, timeout, "/ready to answer 200")

    def wait_unready(self, timeout: float = 15):
        return self.wait_until(lambda: self.status("/ready") == 503, timeout, "/ready to answer 503")

    def check(self, name: str) -> dict:
        return self.get("/ready")[1]["checks"][name]

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def log_tail(self) -> str:
        return "--- nexus-mcp log tail ---\n" + "\n".join(self.logs().splitlines()[-40:])

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.proc.signal(15)
        code = self.proc.wait(timeout)
        self.proc.stop()
        return code

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
