"""Raw HTTP to /mcp, for tests that need exact control of headers and bodies (no MCP SDK in between)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def stateless_call(tool: str, arguments: dict, id: int = 1) -> tuple[dict, dict]:
    """A self-contained 2026-07-28 tools/call request and its headers (no session, no handshake)."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta}}
    return body, {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool}


def post(nexus, body, headers=None, raw: bytes | None = None, method: str = "POST", timeout: float = 30):
    """One request to /mcp; returns (status, headers, body text). Header names keep the server's spelling: use
    `header` to read one."""
    data = raw if raw is not None else (None if body is None and method != "POST" else json.dumps(body).encode())
    request = urllib.request.Request(nexus.mcp_url, data=data, method=method,
                                     headers={**MCP_HEADERS, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def header(headers: dict, name: str) -> str | None:
    """A response header by case-insensitive name."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def sse_messages(body: str) -> list[dict]:
    """The JSON-RPC messages of an SSE body (priming events with empty data are skipped)."""
    data = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
    return [json.loads(d) for d in data if d]


def open_legacy_session(nexus, headers: dict | None = None) -> dict:
    """`initialize` + `notifications/initialized` over raw HTTP; returns the headers later requests need."""
    status, got, body = post(nexus, INIT, headers)
    assert status == 200, (status, body)
    session = {**(headers or {}), "Mcp-Session-Id": header(got, "Mcp-Session-Id")}
    status, _, body = post(nexus, INITIALIZED, session)
    assert status == 202, (status, body)
    return session


def connect(nexus, timeout: float = 10) -> socket.socket:
    host, port = nexus.config["server"]["listen"].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)
