"""Raw HTTP to /mcp, for tests that need exact control of headers and bodies (no MCP SDK in between)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


def stateless_call(tool: str, arguments: dict, id: int = 1) -> tuple[dict, dict]:
    """A self-contained 2026-07-28 tools/call request and its headers (no session, no handshake)."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta}}
    return body, {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool}


def post(nexus, body, headers=None, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(nexus.mcp_url, data=data, method="POST",
                                     headers={**MCP_HEADERS, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")
