#!/usr/bin/env python3
"""`make demo`: a local bastion (OpenSSH sshd) + a MongoDB-wire server (nx-27017) with the sample shop data +
nexus-mcp through the tunnel, all on 127.0.0.1. Prints how to connect a client; Ctrl-C stops everything."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from support import MongoWire, Nexus, Proc, Sshd, keygen  # noqa: E402
from support.procs import free_port, port_open  # noqa: E402
from support.ssh import current_user  # noqa: E402
from sample_data import seed  # noqa: E402

DEMO = REPO / ".demo"
BINARY = REPO / "target" / "debug" / "nexus-mcp"


def main() -> None:
    DEMO.mkdir(exist_ok=True)
    key = DEMO / "id_ed25519"
    if not key.exists():
        keygen(DEMO)
    print("starting the bastion (OpenSSH sshd) and the MongoDB-wire server (nx-27017)…")
    sshd = Sshd(DEMO / "bastion", authorized_keys=[key])
    mongo = MongoWire(DEMO / "mongo")
    with mongo.client() as client:
        counts = seed(client, scale=1.0)
    known_hosts = DEMO / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line())
    port = 3000 if not port_open(3000) else free_port()
    config = {
        "server": {"listen": f"127.0.0.1:{port}"},
        "ssh": {"host": sshd.host, "port": sshd.port, "user": current_user(), "private_key": str(key),
                "known_hosts": str(known_hosts), "keepalive_interval": "2s"},
        "tunnel": {"local_listen": f"127.0.0.1:{free_port()}"},
        "mongo": {"uri": f"mongodb://127.0.0.1:{mongo.port}/shop"},
        "log": {"format": "pretty"},
    }
    nexus = Nexus(DEMO / "nexus", config, start=False)
    stdio_config = {**config, "server": {"listen": f"127.0.0.1:{free_port()}"}}
    stdio = Nexus(DEMO / "nexus-stdio", stdio_config, start=False)
    url = nexus.url
    print(f"""
sample data: {json.dumps(counts)} in database `shop`
bastion:     {sshd.host}:{sshd.port} (its host key is pinned in {known_hosts})
mongo.uri:   {config['mongo']['uri']} (as seen from the bastion; nexus-mcp reaches it through the tunnel)

nexus-mcp endpoints:
  MCP (Streamable HTTP)  {url}/mcp
  probes                 {url}/health  {url}/ready  {url}/startup
  metrics                {url}/metrics

try:
  curl -s {url}/ready
  npx @modelcontextprotocol/inspector@0.15.0 --cli {url}/mcp --transport http --method tools/list
  npx @modelcontextprotocol/inspector@0.15.0 --cli {url}/mcp --transport http --method tools/call \\
      --tool-name count --tool-arg database=shop --tool-arg collection=orders

Claude Desktop / Cursor (stdio), e.g. in claude_desktop_config.json:
{json.dumps({"mcpServers": {"nexus-demo": {"command": str(BINARY), "args": [
    "serve", "--transport", "stdio", "--config", str(stdio.config_path)]}}}, indent=2)}

watch it heal: kill the bastion (kill -9 {sshd.proc.pid}); /ready turns 503, the demo restarts the bastion 5 s later,
and nexus_tunnel_reconnects_total counts the reconnect. Ctrl-C stops everything.
""", flush=True)
    proc = Proc([str(BINARY), "serve", "--config", str(nexus.config_path)], DEMO / "nexus" / "nexus.log",
                stdout=sys.stdout)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    shown = 0
    log = DEMO / "nexus" / "nexus.log"
    try:
        while not stopping and proc.alive():
            text = log.read_text(errors="replace") if log.exists() else ""
            sys.stdout.write(text[shown:])
            sys.stdout.flush()
            shown = len(text)
            if not sshd.proc.alive():
                for _ in range(50):
                    if stopping:
                        break
                    time.sleep(0.1)
                if not stopping:
                    print("demo: restarting the bastion", flush=True)
                    sshd.start()
            time.sleep(0.3)
    finally:
        print(f"\nstopping nexus-mcp (pid {proc.pid}), the bastion (pid {sshd.proc.pid}) and the MongoDB-wire server "
              f"(pid {mongo.proc.pid})…", flush=True)
        proc.stop()
        sshd.kill()
        mongo.stop()
        print("stopped.")


if __name__ == "__main__":
    main()
