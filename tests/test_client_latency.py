"""Deterministic stalls real clients would feel: tool calls over a legacy session (2025-06-18) from a plain
keep-alive HTTP/1.1 client and from the Python SDK must not wait for the peer's delayed ACK (≈40 ms on Linux).

A Nagle × delayed-ACK stall is a fixed ~40 ms per response, not noise: the medians below are bounded well under
it (loopback calls take ~1–5 ms), so a regression fails these tests on any machine.
"""

import asyncio
import http.client
import json
import statistics
import time

import pytest

from support import session
from support.rawhttp import INIT, MCP_HEADERS

CALLS = 50
STALL_BOUND_MS = 15.0


def _read_json_or_sse(response: http.client.HTTPResponse) -> dict:
    body = response.read().decode()
    if response.getheader("Content-Type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in body.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])
    return json.loads(body)


class KeepAliveSession:
    """A legacy MCP session over one persistent HTTP/1.1 connection (Python's http.client, as many clients use)."""

    def __init__(self, nexus, accept: str):
        self.conn = http.client.HTTPConnection(*nexus.config["server"]["listen"].rsplit(":", 1), timeout=10)
        self.headers = {**MCP_HEADERS, "Accept": accept}
        init = self.request(INIT)
        assert init["result"]["protocolVersion"] == "2025-06-18", init
        self.headers["Mcp-Session-Id"] = self.session_id
        self.notify({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.next_id = 2

    def request(self, body: dict) -> dict:
        self.conn.request("POST", "/mcp", json.dumps(body), self.headers)
        response = self.conn.getresponse()
        assert response.status == 200, (response.status, response.read())
        self.session_id = response.getheader("Mcp-Session-Id") or self.headers.get("Mcp-Session-Id")
        return _read_json_or_sse(response)

    def notify(self, body: dict) -> None:
        self.conn.request("POST", "/mcp", json.dumps(body), self.headers)
        response = self.conn.getresponse()
        response.read()
        assert response.status == 202, response.status

    def call(self, tool: str, arguments: dict) -> dict:
        self.next_id += 1
        reply = self.request({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                              "params": {"name": tool, "arguments": arguments}})
        assert reply["result"].get("isError") is not True, reply
        return reply["result"]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def nexus(shared_stack):
    n = shared_stack.nexus("latency")
    n.wait_ready()
    return n


def _median_ms(call) -> float:
    took = []
    for _ in range(CALLS):
        started = time.perf_counter()
        call()
        took.append((time.perf_counter() - started) * 1e3)
    return statistics.median(took)


@pytest.mark.parametrize("accept", ["application/json, text/event-stream", "text/event-stream, application/json"])
@pytest.mark.parametrize("tool,arguments", [("list-collections", {"database": "shop"}),
                                            ("find", {"database": "shop", "collection": "orders", "limit": 5})])
def test_keep_alive_client_on_a_legacy_session_sees_no_delayed_ack_stall(nexus, accept, tool, arguments):
    client = KeepAliveSession(nexus, accept)
    try:
        client.call(tool, arguments)  # warm-up: the driver's pool and the forward's channel
        median = _median_ms(lambda: client.call(tool, arguments))
    finally:
        client.close()
    assert median < STALL_BOUND_MS, f"{tool}: median {median:.1f} ms over {CALLS} calls"


def test_python_sdk_legacy_session_sees_no_delayed_ack_stall(nexus):
    async def run() -> float:
        async with session(nexus.mcp_url, mode="legacy") as c:
            await c.call_tool("list-collections", {"database": "shop"})
            took = []
            for _ in range(CALLS):
                started = time.perf_counter()
                r = await c.call_tool("list-collections", {"database": "shop"})
                took.append((time.perf_counter() - started) * 1e3)
                assert not r.is_error
            return statistics.median(took)

    median = asyncio.run(run())
    assert median < STALL_BOUND_MS, f"median {median:.1f} ms over {CALLS} calls"
