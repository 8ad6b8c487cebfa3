"""The TypeScript MCP SDK (tests/node, pinned by its lockfile) as a second real client: the `Client` that Claude
Desktop, Cursor, VS Code and the MCP Inspector use. Each helper runs tests/node/mcp-client.mjs once with one job (a
connection, the host's usual tools/list, then the calls in order) and returns what the SDK returned or threw."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .nexus import REPO

NODE_DIR = REPO / "tests" / "node"
SCRIPT = NODE_DIR / "mcp-client.mjs"


@dataclass
class TsResult:
    """One call's outcome: `ok` is False when the SDK threw (then `error` has its code and message)."""
    ok: bool
    result: dict | None = None
    error: dict | None = None

    @property
    def is_error(self) -> bool:
        """The tool answered with `isError: true` (a tool-level error the SDK handed over intact)."""
        return bool((self.result or {}).get("isError"))

    @property
    def text(self) -> str:
        return "\n".join(c["text"] for c in (self.result or {}).get("content", []) if c.get("type") == "text")

    @property
    def structured(self) -> Any:
        return (self.result or {}).get("structuredContent")

    def __str__(self) -> str:
        if not self.ok:
            return f"the SDK threw: {self.error}"
        return json.dumps(self.result)[:4000]


@dataclass
class TsRun:
    results: list[TsResult]
    asked: list[str] = field(default_factory=list)
    protocol_version: str | None = None
    session_id: str | None = None
    server_info: dict | None = None


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise RuntimeError("node is missing: run `make deps` (scripts/install-test-deps.sh)")
    if not (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        raise RuntimeError(f"{NODE_DIR}/node_modules is missing: run `make deps` (scripts/install-test-deps.sh)")
    return node


def job_for(target, calls: list[dict], *, elicit: str | None = None, token: str | None = None,
            headers: dict | None = None, stderr_file=None, list_tools: bool = True,
            request_timeout: float = 60) -> dict:
    """`target`: an /mcp URL (Streamable HTTP), or `mcp.StdioServerParameters` (or any object with `command`,
    `args`, `env`, `cwd`) for a spawned server over stdio; `stderr_file` receives a stdio server's stderr."""
    job: dict[str, Any] = {"calls": calls, "elicit": elicit, "listTools": list_tools,
                           "timeoutMs": int(request_timeout * 1000)}
    if isinstance(target, str):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        job.update(transport="http", url=target, headers=h)
    else:
        job.update(transport="stdio", command=str(target.command), args=[str(a) for a in (target.args or [])],
                   env=dict(target.env or {}))
        if getattr(target, "cwd", None):
            job["cwd"] = str(target.cwd)
        if stderr_file:
            job["stderrFile"] = str(stderr_file)
    return job


def run_job(job: dict, timeout: float = 150) -> TsRun:
    """Runs mcp-client.mjs with `job`; raises (with the script's stderr) when it could not run the job."""
    try:
        p = subprocess.run([_node(), str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True,
                           timeout=timeout, cwd=NODE_DIR)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"the TS SDK client did not finish within {timeout}s; stderr:\n{e.stderr}") from e
    if p.returncode != 0:
        raise RuntimeError(f"the TS SDK client exited with {p.returncode}; stderr:\n{p.stderr}")
    try:
        out = json.loads(p.stdout)
    except ValueError as e:
        raise RuntimeError(f"the TS SDK client printed no JSON: {p.stdout!r}; stderr:\n{p.stderr}") from e
    return TsRun(results=[TsResult(r["ok"], r.get("result"), r.get("error")) for r in out["results"]],
                 asked=out.get("asked", []), protocol_version=out.get("protocolVersion"),
                 session_id=out.get("sessionId"), server_info=out.get("serverInfo"))


def ts_run(target, calls: list[dict], *, timeout: float = 150, **kwargs) -> TsRun:
    """One connection, the calls in order (see `job_for` for the options)."""
    return run_job(job_for(target, calls, **kwargs), timeout=timeout)


def tool_call(name: str, arguments: dict) -> dict:
    return {"method": "tools/call", "name": name, "arguments": arguments}


def ts_call_tool(target, tool: str, arguments: dict, **kwargs) -> TsResult:
    return ts_run(target, [tool_call(tool, arguments)], **kwargs).results[0]


def ts_list_tools(target, **kwargs) -> list[dict]:
    r = ts_run(target, [{"method": "tools/list"}], **kwargs).results[0]
    if not r.ok:
        raise AssertionError(f"tools/list failed in the TS SDK: {r.error}")
    return r.result["tools"]


def ts_read_resource(target, uri: str, **kwargs) -> str:
    r = ts_run(target, [{"method": "resources/read", "uri": uri}], **kwargs).results[0]
    if not r.ok:
        raise AssertionError(f"resources/read {uri} failed in the TS SDK: {r.error}")
    return r.result["contents"][0]["text"]
