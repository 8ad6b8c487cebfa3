"""A real MCP client (the Python `mcp` SDK, pinned) driving nexus-mcp, with small sync helpers for tests."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import httpx2
import mcp
from mcp import types
from mcp.client.streamable_http import streamable_http_client


@dataclass
class ToolResult:
    is_error: bool
    text: str
    structured: Any


def _result(r) -> ToolResult:
    text = "\n".join(c.text for c in r.content if getattr(c, "type", "") == "text")
    return ToolResult(bool(r.is_error), text, r.structured_content)


def elicitation(answer: str | None, think: float = 0.0):
    """An elicitation callback that accepts (`"accept"`), declines (`"decline"`); None = no elicitation support.
    `think`: seconds the simulated person takes to answer."""
    if answer is None:
        return None
    asked: list[str] = []

    async def callback(ctx, params):
        asked.append(params.message)
        await asyncio.sleep(think)
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")
    callback.asked = asked
    return callback


def client(target, *, mode: str = "auto", token: str | None = None, headers: dict | None = None,
           elicit=None, transport: httpx2.AsyncBaseTransport | None = None) -> mcp.Client:
    """`target`: an /mcp URL, or `mcp.StdioServerParameters`. `transport`: the HTTP client's (to route requests)."""
    if isinstance(target, str):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        http = httpx2.AsyncClient(headers=h, timeout=30, transport=transport)
        target = streamable_http_client(target, http_client=http)
    kwargs = {"elicitation_callback": elicit} if elicit else {}
    return mcp.Client(target, mode=mode, **kwargs)


@contextlib.asynccontextmanager
async def session(target, **kwargs):
    """An open client for several calls (a legacy-mode session keeps its Mcp-Session-Id)."""
    async with client(target, **kwargs) as c:
        yield c


async def acall(c: mcp.Client, tool: str, arguments: dict) -> ToolResult:
    return _result(await c.call_tool(tool, arguments))


def call_tool(target, tool: str, arguments: dict, **kwargs) -> ToolResult:
    async def run():
        async with client(target, **kwargs) as c:
            return await acall(c, tool, arguments)
    return asyncio.run(run())


def list_tools(target, **kwargs) -> list:
    async def run():
        async with client(target, **kwargs) as c:
            return (await c.list_tools()).tools
    return asyncio.run(run())


def read_resource(target, uri: str, **kwargs) -> str:
    async def run():
        async with client(target, **kwargs) as c:
            return (await c.read_resource(uri)).contents[0].text
    return asyncio.run(run())
