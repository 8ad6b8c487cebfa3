"""`make demo` as a newcomer meets it: scripts/demo.py started the way the Makefile starts it (no TTY, in its own
state directory so it collides neither with a user's demo nor with parallel tests), its banner read back, its
commands run as printed — the Inspector CLI, the Claude Desktop stdio snippet through a real MCP client while the
HTTP demo runs, the heal step — and Ctrl-C (SIGINT) leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import mcp
import pytest

from support import REPO, call_tool, wait_until
from support.mcpclient import acall, client
from support.procs import descendants
from support.tsclient import NODE_DIR

PY = REPO / ".venv" / "bin" / "python"  # the Makefile's $(PY)
DEMO = REPO / "scripts" / "demo.py"
READ_TOOLS = {"list-databases", "list-collections", "find", "aggregate", "count", "distinct", "collection-schema",
              "collection-indexes", "collection-storage-size", "db-stats", "explain"}


# --- processes, identified by pid and start time (pids get reused) ------------------------------------------------

def start_time(pid: int) -> str | None:
    """/proc/<pid>/stat's starttime, or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_naming(directory: Path) -> dict[int, str]:
    """Running processes whose command line names `directory` (the demo's sshd, nx-27017 and nexus-mcp do)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and str(directory) in (line := cmdline(int(entry))) and start_time(int(entry)):
            out[int(entry)] = line
    return out


class Tracked:
    """Every process seen under the demo (its children and their descendants, e.g. the bastion's sessions)."""

    def __init__(self, root: int):
        self.root = root
        self.seen: dict[int, tuple[str, str]] = {}

    def snapshot(self) -> None:
        for pid in descendants(self.root):
            if (started := start_time(pid)) and pid not in self.seen:
                self.seen[pid] = (started, cmdline(pid))

    def alive(self) -> dict[int, str]:
        return {pid: line for pid, (started, line) in self.seen.items() if start_time(pid) == started}


# --- the demo process -----------------------------------------------------------------------------------------------

class Demo:
    def __init__(self, directory: Path, out: Path):
        self.dir = directory
        self.out = out
        self.env = {**os.environ, "NEXUS_DEMO_DIR": str(directory), "NEXUS_DEMO_PORT": "0"}
        with open(out, "wb") as f:
            # Its own session: SIGINT to its process group is what Ctrl-C in a terminal does.
            self.proc = subprocess.Popen([str(PY), str(DEMO)], cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        self.tracked = Tracked(self.proc.pid)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def banner(self, timeout: float = 120) -> str:
        def printed():
            assert self.proc.poll() is None, f"the demo exited with {self.proc.returncode}:\n{self.text()}"
            text = self.text()
            return text if "Ctrl-C stops everything this demo started." in text else None
        return wait_until(printed, timeout, "the demo's banner", on_timeout=self.text)

    def interrupt(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        """Teardown after a failure: stop it like Ctrl-C would, then make sure."""
        if self.proc.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for pid in [*self.tracked.alive(), *processes_naming(self.dir)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def demo(tmp_path):
    d = Demo(tmp_path / "demo", tmp_path / "demo.out")
    yield d
    d.close()


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def reconnects(url: str) -> float:
    status, text = http(f"{url}/metrics")
    assert status == 200, text
    [value] = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("nexus_tunnel_reconnects_total")]
    return value


def call_tool_within(target, tool: str, arguments: dict, timeout: float = 60):
    """`call_tool` with a deadline: a stdio server that never answers `initialize` fails the test instead of
    hanging it."""
    async def run():
        async with client(target) as c:
            return await acall(c, tool, arguments)

    async def bounded():
        try:
            return await asyncio.wait_for(run(), timeout)
        except TimeoutError:
            raise AssertionError(f"no answer to {tool} within {timeout} s") from None
    return asyncio.run(bounded())


# --- reading the banner ---------------------------------------------------------------------------------------------

def after(text: str, heading: str) -> str:
    assert heading in text, f"the banner has no {heading!r}:\n{text}"
    return text.split(heading, 1)[1]


def stdio_snippet(text: str) -> dict:
    rest = after(text, "Claude Desktop / Cursor (stdio)")
    snippet, _ = json.JSONDecoder().raw_decode(rest[rest.index("{"):])
    [server] = snippet["mcpServers"].values()
    return server


def printed_commands(text: str) -> list[str]:
    """The banner's `try:` commands (continuation lines joined)."""
    block = after(text, "\ntry:\n").split("\n\n", 1)[0]
    return [line.strip() for line in re.sub(r"\\\n", " ", block).splitlines() if line.strip()]


# --- the test -------------------------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_the_demo_from_banner_to_ctrl_c(demo):
    text = demo.banner()
    assert re.search(r"nexus-mcp demo: ready in [0-9.]+ s", text), text
    url = re.search(r"MCP \(Streamable HTTP\)\s+(http://\S+)/mcp", text).group(1)
    state = json.loads((demo.dir / "state.json").read_text())
    assert state["pid"] == demo.proc.pid and state["url"] == url
    assert http(f"{url}/ready")[0] == 200
    demo.tracked.snapshot()
    started = set(demo.tracked.alive())
    assert {state["nexus"]["pid"], state["mongo"]["pid"], state["bastion"]["listener_pid"]} <= started
    assert "npx @" not in text, "every npx the demo prints needs -y (no install prompt)"

    # The printed Inspector commands, as printed (run in tests/node, whose pinned Inspector npx resolves).
    [tools_list] = [c for c in printed_commands(text) if "--method tools/list" in c]
    assert tools_list.startswith("npx -y @modelcontextprotocol/inspector@0.15.0 "), tools_list
    p = subprocess.run(shlex.split(tools_list), cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert {t["name"] for t in json.loads(p.stdout)["tools"]} == READ_TOOLS

    # The Claude Desktop snippet: the binary the demo runs, spawned over stdio beside the HTTP demo.
    server = stdio_snippet(text)
    assert server["command"] == state["binary"] and Path(server["command"]).is_file(), server
    assert cmdline(state["nexus"]["pid"]).startswith(server["command"] + " "), "the snippet names another binary"
    r = call_tool_within(mcp.StdioServerParameters(command=server["command"], args=server["args"]), "find",
                  {"database": "shop", "collection": "orders", "limit": 5, "sort": {"orderNo": 1}})
    assert not r.is_error, r.text
    assert [d["orderNo"] for d in r.structured["documents"]] == [1, 2, 3, 4, 5]
    assert demo.proc.poll() is None and http(f"{url}/ready")[0] == 200, "the HTTP demo kept running beside it"

    # The heal step, run as the banner prints it.
    [heal] = re.findall(r"^\s+((?:NEXUS_DEMO_DIR=\S+ )?make demo-heal)$", after(text, "watch it heal"), re.M)
    assert heal == f"NEXUS_DEMO_DIR={demo.dir} make demo-heal"
    assert f"curl -s {url}/metrics | grep nexus_tunnel_reconnects_total" in text
    before = reconnects(url)
    demo.tracked.snapshot()
    healed = subprocess.run(heal, shell=True, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert healed.returncode == 0, f"{healed.stdout}\n{healed.stderr}"
    out = healed.stdout
    assert "session broken" in out and "/ready 503" in out, out
    assert re.search(r"healed in \d+ ms", out), out
    assert f"nexus_tunnel_reconnects_total {before:g} -> {before + 1:g}" in out, out
    assert reconnects(url) == before + 1
    assert http(f"{url}/ready")[0] == 200
    assert start_time(state["nexus"]["pid"]), "nexus-mcp healed without a restart"
    r = call_tool(f"{url}/mcp", "count", {"database": "shop", "collection": "orders"})
    assert not r.is_error and r.structured["count"] == 5000, r.text
    demo.tracked.snapshot()  # the new SSH session

    # Ctrl-C: everything the demo started stops, and its state file goes.
    assert demo.interrupt() == 0, demo.text()
    assert demo.text().rstrip().endswith("stopped."), demo.text()[-2000:]
    assert not (demo.dir / "state.json").exists()
    wait_until(lambda: not demo.tracked.alive(), 10,
               "every process the demo started to be gone", on_timeout=lambda: str(demo.tracked.alive()))
    assert processes_naming(demo.dir) == {}
