#!/usr/bin/env python3
"""`make demo`: a local bastion (OpenSSH sshd) + a MongoDB-wire server (nx-27017) with the sample shop data +
nexus-mcp through the tunnel, all on 127.0.0.1. Prints how to connect a client; Ctrl-C stops everything.

`make demo-heal` (`scripts/demo.py heal`), while the demo runs: SIGKILLs the bastion's per-connection SSH session
processes (the listener stays up, as when a bastion drops a connection) and reports what nexus-mcp does about it
through /ready and /metrics.

The running demo is described in `$NEXUS_DEMO_DIR/state.json` (default `.demo/state.json`), removed when it stops.
Environment: NEXUS_DEMO_DIR (the demo's directory, default .demo), NEXUS_DEMO_PORT (the HTTP port, default 3000,
0 = any free port; a busy 3000 also means any free port), NEXUS_BIN (the binary, default target/debug/nexus-mcp).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from support import MongoWire, Nexus, Proc, Sshd, keygen  # noqa: E402
from support.nexus import BINARY as _BINARY  # noqa: E402
from support.procs import descendants, free_port, port_open  # noqa: E402
from support.ssh import current_user  # noqa: E402
from sample_data import seed  # noqa: E402

DEMO = Path(os.environ.get("NEXUS_DEMO_DIR") or REPO / ".demo").resolve()
STATE = DEMO / "state.json"
BINARY = Path(_BINARY).resolve()
READY_TIMEOUT = 60.0  # first start of a debug build on a busy machine included
HEAL_TIMEOUT = 60.0
RESTART_DELAY = 5.0   # a dead bastion listener is restarted after this long (the demo's "bastion comes back")


def rel(path: Path) -> str:
    """`path` relative to the repository when inside it (shorter banner lines), else absolute."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def heal_command() -> str:
    """How to run the heal step against this demo (the state dir travels in NEXUS_DEMO_DIR when not the default)."""
    default = (REPO / ".demo").resolve()
    return "make demo-heal" if DEMO == default else f"NEXUS_DEMO_DIR={DEMO} make demo-heal"


# --- state.json: how `heal` (and tests) find the running demo ------------------------------------------------------

def write_state(state: dict) -> None:
    tmp = STATE.with_name(STATE.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(STATE)


def read_state() -> dict | None:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True if `pid` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


# --- HTTP helpers (stdlib only) --------------------------------------------------------------------------------------

def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return 0, ""


def reconnects(url: str) -> float | None:
    """nexus_tunnel_reconnects_total from /metrics (None when /metrics does not answer)."""
    status, text = http_get(f"{url}/metrics")
    if status != 200:
        return None
    for line in text.splitlines():
        if line.startswith("nexus_tunnel_reconnects_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def ssh_check(body: str) -> str:
    """The sshTunnel check of a /ready body, shortened for a line of output."""
    try:
        check = json.loads(body)["checks"]["sshTunnel"]
    except (ValueError, KeyError, TypeError):
        return body.strip()[:120]
    return ", ".join(f"{k}: {v}" for k, v in check.items() if k in ("status", "error", "class"))


# --- `demo.py` -------------------------------------------------------------------------------------------------------

def banner(*, counts: dict, sshd: Sshd, mongo_uri: str, known_hosts: Path, url: str, nexus_pid: int,
           stdio: Nexus, ready_after: float | None) -> str:
    stdio_snippet = json.dumps({"mcpServers": {"nexus-demo": {"command": str(BINARY), "args": [
        "serve", "--transport", "stdio", "--config", str(stdio.config_path)]}}}, indent=2)
    inspector = "npx -y @modelcontextprotocol/inspector@0.15.0 --cli"
    state = (f"ready in {ready_after:.1f} s" if ready_after is not None
             else f"NOT ready after {READY_TIMEOUT:.0f} s: see the log above and {url}/ready")
    return f"""
==================================================================================================================
nexus-mcp demo: {state}

sample data: {json.dumps(counts)} in database `shop`
bastion:     {sshd.host}:{sshd.port} (OpenSSH sshd, listener pid {sshd.proc.pid}; its host key is pinned in \
{rel(known_hosts)})
mongo.uri:   {mongo_uri} (as seen from the bastion; nexus-mcp reaches it through the tunnel)

nexus-mcp (pid {nexus_pid}, {rel(BINARY)}):
  MCP (Streamable HTTP)  {url}/mcp
  probes                 {url}/health  {url}/ready  {url}/startup
  metrics                {url}/metrics

try:
  curl -s {url}/ready
  {inspector} {url}/mcp --transport http --method tools/list
  {inspector} {url}/mcp --transport http --method tools/call \\
      --tool-name find --tool-arg database=shop --tool-arg collection=orders --tool-arg limit=5

Claude Desktop / Cursor (stdio), e.g. in claude_desktop_config.json; it runs beside this demo (its own tunnel port,
probes on http://{stdio.config['server']['listen']} while a client runs it):
{stdio_snippet}

watch it heal: in another terminal run
  {heal_command()}
It SIGKILLs the bastion's SSH session processes (the listener stays up, like a bastion dropping the connection)
and prints what nexus-mcp does: /ready 503 while the session is gone, then 200 again once it reconnected, and
nexus_tunnel_reconnects_total before -> after. Watch the counter yourself with
  curl -s {url}/metrics | grep nexus_tunnel_reconnects_total
If the bastion listener itself dies (kill -9 {sshd.proc.pid}), the demo restarts it {RESTART_DELAY:.0f} s later.

Ctrl-C stops everything this demo started.
==================================================================================================================
"""


class LogTail:
    """Copies what nexus-mcp appends to its log file to our stdout."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def pump(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        if data:
            self.offset += len(data)
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()


def kill_tree(pids: list[int]) -> None:
    """SIGKILLs `pids` (processes the demo started) and their descendants."""
    for pid in [q for p in pids if pid_alive(p) for q in (p, *descendants(p))]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_leftovers(state: dict) -> None:
    """SIGKILLs what a demo that died without cleaning up (SIGKILL, a crash) left running, going by its state.json;
    a pid counts only while its command line still names the demo's directory (pids get reused)."""
    listener = state.get("bastion", {}).get("listener_pid")
    pids = [state.get("nexus", {}).get("pid"), state.get("mongo", {}).get("pid"), listener]
    left = [pid for pid in pids if pid and pid_alive(pid) and str(DEMO) in cmdline(pid)]
    if listener in left:
        left += descendants(listener)  # its sessions ("sshd: user@notty" does not name the directory)
    left += [p for p in state.get("bastion", {}).get("orphaned_sessions", []) if cmdline(p).startswith("sshd:")]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Until they are reaped: nx-27017 refuses to start while its pid file names a process that exists.
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in left) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        print(f"demo: stopped what an earlier demo (pid {state.get('pid')}) left running: pids "
              f"{', '.join(map(str, left))}", flush=True)


def _raise_interrupt(*_):
    raise KeyboardInterrupt


def run() -> int:
    if not BINARY.exists():
        print(f"demo: {BINARY} is missing: run `make demo` (it builds it) or `cargo build --locked`", file=sys.stderr)
        return 1
    previous = read_state()
    if previous and pid_alive(previous.get("pid", 0)) and previous.get("pid") != os.getpid():
        print(f"demo: a demo already runs from {DEMO} (pid {previous['pid']}, {previous.get('url')}): stop it with "
              f"Ctrl-C first, or set NEXUS_DEMO_DIR to another directory", file=sys.stderr)
        return 1
    DEMO.mkdir(parents=True, exist_ok=True)
    if previous:  # stale: its demo is gone (killed without a chance to clean up?)
        stop_leftovers(previous)
        STATE.unlink(missing_ok=True)
    # SIGTERM stops the demo like Ctrl-C; both may arrive at any point, and the `finally` below stops what started.
    # (SIGINT explicitly too: a shell that starts the demo in the background may have left it ignored.)
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sshd = mongo = proc = None
    sessions: list[int] = []  # the bastion's session processes, as last seen
    orphans: list[int] = []   # session processes of a listener that died
    try:
        key = DEMO / "id_ed25519"
        if not key.exists():
            keygen(DEMO)
        print("starting the bastion (OpenSSH sshd) and the MongoDB-wire server (nx-27017)…", flush=True)
        sshd = Sshd(DEMO / "bastion", authorized_keys=[key])
        mongo = MongoWire(DEMO / "mongo")
        with mongo.client() as client:
            counts = seed(client, scale=1.0)
        known_hosts = DEMO / "known_hosts"
        known_hosts.write_text(sshd.known_hosts_line())
        wanted = int(os.environ.get("NEXUS_DEMO_PORT") or 3000)
        port = wanted if wanted and not port_open(wanted) else free_port()
        mongo_uri = f"mongodb://127.0.0.1:{mongo.port}/shop"
        config = {
            "server": {"listen": f"127.0.0.1:{port}"},
            "ssh": {"host": sshd.host, "port": sshd.port, "user": current_user(), "private_key": str(key),
                    "known_hosts": str(known_hosts), "keepalive_interval": "2s"},
            "tunnel": {"local_listen": f"127.0.0.1:{free_port()}"},
            "mongo": {"uri": mongo_uri},
            "log": {"format": "pretty"},
        }
        nexus = Nexus(DEMO / "nexus", config, start=False, binary=BINARY)
        # The stdio instance runs beside this one (a client spawns it while the demo runs): its own probe port, and a
        # tunnel port picked when it starts (nothing but nexus-mcp itself connects to it).
        stdio_config = {**config, "server": {"listen": f"127.0.0.1:{free_port()}"},
                        "tunnel": {"local_listen": "127.0.0.1:0"}}
        stdio = Nexus(DEMO / "nexus-stdio", stdio_config, start=False, binary=BINARY)
        url = nexus.url
        log = DEMO / "nexus" / "nexus.log"
        tail = LogTail(log)
        print(f"starting nexus-mcp ({rel(BINARY)}) on {url}…", flush=True)
        started = time.monotonic()
        # A clean environment: the tunnel-sidecar names (SSH_HOST, MONGO_URI, MCP_PORT, …) in the caller's shell
        # would override the demo's config.
        proc = Proc([str(BINARY), "serve", "--config", str(nexus.config_path)], log, stdout=sys.stdout,
                    env=nexus.env)
        state = {
            "pid": os.getpid(), "dir": str(DEMO), "url": url, "mcp_url": f"{url}/mcp", "binary": str(BINARY),
            "nexus": {"pid": proc.pid, "config": str(nexus.config_path), "log": str(log)},
            "bastion": {"host": sshd.host, "port": sshd.port, "listener_pid": sshd.proc.pid},
            "mongo": {"pid": mongo.proc.pid, "port": mongo.port, "uri": mongo_uri},
            "stdio_config": str(stdio.config_path),
        }
        write_state(state)

        ready_after = None
        while proc.alive() and time.monotonic() - started < READY_TIMEOUT:
            tail.pump()
            if http_get(f"{url}/ready", timeout=1)[0] == 200:
                ready_after = time.monotonic() - started
                break
            time.sleep(0.1)
        tail.pump()
        if not proc.alive():
            print(f"demo: nexus-mcp exited with {proc.popen.returncode} (its log: {log})", file=sys.stderr)
            return 1
        print(banner(counts=counts, sshd=sshd, mongo_uri=mongo_uri, known_hosts=known_hosts, url=url,
                     nexus_pid=proc.pid, stdio=stdio, ready_after=ready_after), flush=True)

        dead_since = None
        while proc.alive():
            tail.pump()
            if sshd.proc.alive():
                dead_since = None
                sessions = descendants(sshd.proc.pid)
            elif dead_since is None:
                dead_since = time.monotonic()
                # OpenSSH's per-connection processes outlive the listener: nexus-mcp keeps its session. Remember
                # them (they are no longer the listener's descendants) for `heal` and for the cleanup.
                orphans.extend(p for p in sessions if pid_alive(p) and p not in orphans)
                state["bastion"]["orphaned_sessions"] = orphans
                write_state(state)
                print(f"demo: the bastion listener (pid {sshd.proc.pid}) died; its SSH sessions live on"
                      f"{' (pids ' + ', '.join(map(str, orphans)) + ')' if orphans else ''}; restarting the "
                      f"listener in {RESTART_DELAY:.0f} s", flush=True)
            elif time.monotonic() - dead_since >= RESTART_DELAY:
                sshd.start()
                state["bastion"]["listener_pid"] = sshd.proc.pid
                write_state(state)
                print(f"demo: restarted the bastion (listener pid {sshd.proc.pid})", flush=True)
                dead_since = None
            time.sleep(0.3)
        tail.pump()
        print(f"demo: nexus-mcp exited with {proc.popen.returncode} (its log: {log})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        state = read_state()
        if state and state.get("pid") == os.getpid():
            STATE.unlink(missing_ok=True)
        parts = [f"nexus-mcp (pid {proc.pid})" if proc else None,
                 f"the bastion (pid {sshd.proc.pid})" if sshd and sshd.proc else None,
                 f"the MongoDB-wire server (pid {mongo.proc.pid})" if mongo and mongo.proc else None]
        parts = [p for p in parts if p]
        if parts:
            print(f"\nstopping {', '.join(parts)}…", flush=True)
        if proc:
            proc.stop()
        if sshd:
            sshd.kill()
        kill_tree([p for p in orphans if cmdline(p).startswith("sshd:")])
        if mongo:
            mongo.stop()
        print("stopped.", flush=True)


# --- `demo.py heal` --------------------------------------------------------------------------------------------------

def heal() -> int:
    state = read_state()
    if not state:
        print(f"heal: no demo is running from {DEMO} (no {rel(STATE)}): start one with `make demo`", file=sys.stderr)
        return 1
    if not pid_alive(state["pid"]):
        print(f"heal: the demo in {rel(STATE)} (pid {state['pid']}) is gone: start one with `make demo`",
              file=sys.stderr)
        return 1
    url = state["url"]
    bastion = state["bastion"]
    listener = bastion["listener_pid"]
    if not pid_alive(listener):
        print(f"heal: the bastion listener (pid {listener}) is down; the demo restarts it a few seconds after it "
              f"died: try again then", file=sys.stderr)
        return 1

    # Start from a healthy tunnel, so what follows is the heal and not the end of an earlier outage.
    deadline = time.monotonic() + HEAL_TIMEOUT
    while http_get(f"{url}/ready")[0] != 200:
        if time.monotonic() > deadline:
            print(f"heal: {url}/ready does not answer 200, nothing to break", file=sys.stderr)
            return 1
        time.sleep(0.1)
    before = reconnects(url)
    if before is None:
        print(f"heal: {url}/metrics does not answer", file=sys.stderr)
        return 1
    orphans = [p for p in bastion.get("orphaned_sessions", []) if pid_alive(p) and cmdline(p).startswith("sshd:")]
    sessions = list(dict.fromkeys([*descendants(listener), *orphans, *(q for p in orphans for q in descendants(p))]))
    if not sessions:
        print(f"heal: the bastion (listener pid {listener}) has no SSH session: is nexus-mcp connected?",
              file=sys.stderr)
        return 1
    print(f"nexus-mcp at {url}: /ready 200, nexus_tunnel_reconnects_total {before:g}")
    print(f"bastion {bastion['host']}:{bastion['port']}: SIGKILL its SSH session processes (the listener, pid "
          f"{listener}, stays up):")
    if orphans:
        print(f"  (including {len(orphans)} of an earlier listener that died)")
    for pid in sessions:
        print(f"  {pid}  {cmdline(pid)}")
    sys.stdout.flush()

    killed_at = time.monotonic()
    for pid in sessions:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ms = lambda: (time.monotonic() - killed_at) * 1000  # noqa: E731

    gone_at = unready_at = None
    unready_body = ""
    deadline = killed_at + HEAL_TIMEOUT
    while time.monotonic() < deadline:
        if gone_at is None and not any(pid_alive(p) for p in sessions):
            gone_at = ms()
            print(f"{gone_at:6.0f} ms  session broken: its processes are gone", flush=True)
        status, body = http_get(f"{url}/ready", timeout=1)
        if status != 200 and unready_at is None:
            unready_at = ms()
            unready_body = body
            print(f"{unready_at:6.0f} ms  /ready {status or 'no answer'} ({ssh_check(body)})", flush=True)
        if status == 200 and (after := reconnects(url)) is not None and after > before:
            healed = ms()
            if unready_at is None:
                print(f"{healed:6.0f} ms  (the tunnel reconnected between two polls of /ready: no 503 seen)")
            new = [p for p in descendants(listener) if p not in sessions]
            print(f"{healed:6.0f} ms  /ready 200 again: healed in {healed:.0f} ms, without restarting nexus-mcp "
                  f"(pid {state['nexus']['pid']})")
            print(f"nexus_tunnel_reconnects_total {before:g} -> {after:g}")
            if new:
                print(f"the new SSH session on the bastion: pid {', '.join(map(str, new))}")
            return 0
        time.sleep(0.005)
    print(f"heal: not healed after {HEAL_TIMEOUT:.0f} s: /ready {http_get(f'{url}/ready')[0]}, "
          f"nexus_tunnel_reconnects_total {reconnects(url)} (before: {before}); "
          f"{'/ready answered ' + ssh_check(unready_body) if unready_at else ''} see {state['nexus']['log']}",
          file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["run", "heal"], default="run",
                        help="run (default): start the demo; heal: break the running demo's SSH session and watch "
                             "it heal")
    args = parser.parse_args()
    return heal() if args.command == "heal" else run()


if __name__ == "__main__":
    sys.exit(main())
