#!/usr/bin/env python3
"""Python MCP clients for `make bench`, closed loop like bench/loadgen, printing the same JSON object.

`--client sdk`: the pinned `mcp` SDK (requirements-dev.txt), the way an application uses it:
  - `--mode stateless`: `mcp.Client(url)` (mode "auto": `server/discover`, then 2026-07-28 per-request calls);
  - `--mode legacy`: `mcp.Client(url, mode="legacy")` (`initialize`, a session, JSON or SSE as the server chooses);
  - `--mode stdio`: `mcp.Client` over `stdio_client(StdioServerParameters(...))` (mode "auto"), the server command
    after `--`.
  Each virtual client is its own `mcp.Client` (its own httpx connection and, in legacy mode, its own session), all
  as asyncio tasks in this one process — over stdio, one server process whose one session carries the N tasks'
  requests together. At 32 clients this process can be the bottleneck: `client_cpu` (CPU seconds per second of the
  measured window) near 1.0 says so.

`--client http`: a plain `http.client` keep-alive HTTP/1.1 connection per virtual client (one thread each):
  `--mode legacy` does `initialize` → `Mcp-Session-Id` → `notifications/initialized` → calls, and takes the JSON
  body or the SSE `data:` event; `--mode stateless` sends self-contained 2026-07-28 requests. This is the client
  that exposed a ≈44 ms Nagle × delayed-ACK stall per call.

Every answer is checked: a result (not `isError`) containing `--expect`. `--concurrency 1,8,32` measures each level
in turn in this one process (one stdio server for all) and prints {"by_c": {"1": {...}, ...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse


def percentiles(latencies: list[float], count_errors: int, sample_error: str | None, duration: float,
                content_types: dict, cpu: float, error_kinds: dict | None = None, **extra) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        if not ordered:
            return 0.0
        i = min(max(int(-(-len(ordered) * p // 1)), 1), len(ordered)) - 1
        return ordered[i] * 1e3

    return {"count": len(ordered), "errors": count_errors, "error_kinds": dict(error_kinds or {}),
            "sample_error": sample_error,
            "rps": len(ordered) / duration, "mean_ms": (sum(ordered) / len(ordered) * 1e3) if ordered else 0.0,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "content_types": dict(content_types), "client_cpu": cpu / duration, **extra}


def error_kind(e: BaseException) -> str:
    """How a call failed, for the `error_kinds` counts (as bench/loadgen names them): `http 503` (a server limit),
    `http 429` (a rate or per-caller limit), `isError`, `unexpected answer`, else the exception's type."""
    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(status, int):
        return f"http {status}"
    text = str(e)
    if m := re.match(r"HTTP (\d{3})", text):
        return f"http {m[1]}"
    if text.startswith("isError"):
        return "isError"
    if text.startswith("error answer"):
        return "json-rpc error"
    if "not in the answer" in text:
        return "unexpected answer"
    return type(e).__name__


class Window:
    """The measured window: calls started in [start, end) count; CPU is read when the window opens and closes."""

    def __init__(self, warmup: float, duration: float):
        self.start = time.perf_counter() + warmup
        self.end = self.start + duration
        self.cpu_start: float | None = None
        self._lock = threading.Lock()

    def opened(self, t0: float) -> bool:
        if t0 < self.start:
            return False
        if self.cpu_start is None:
            with self._lock:
                if self.cpu_start is None:
                    self.cpu_start = time.process_time()
        return True

    def cpu(self) -> float:
        return time.process_time() - (self.cpu_start if self.cpu_start is not None else time.process_time())


# --- the mcp SDK --------------------------------------------------------------------------------------------------

def _sdk_text(result) -> str:
    text = "\n".join(getattr(c, "text", "") for c in result.content)
    if result.structured_content is not None:
        text += json.dumps(result.structured_content)
    return text


async def _ready(call, timeout: float) -> None:
    """A server may still be starting (nexus-mcp over stdio answers "starting" until ready): retry, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await call()
            return
        except Exception as e:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise SystemExit(f"pyclient: not ready after {timeout}s: {e}") from e
            await asyncio.sleep(0.2)


async def sdk_main(args) -> dict:
    import httpx2
    import mcp
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    expect = args.expect.strip('"') if args.expect else None
    content_types: collections.Counter = collections.Counter()
    window: Window | None = None

    async def on_response(response):
        if window is not None and window.opened(time.perf_counter()) and response.request.method == "POST":
            content_types[response.headers.get("content-type", "").split(";")[0].strip().lower()] += 1

    async def call(client) -> None:
        result = await client.call_tool(args.tool, args.arguments)
        if result.is_error:
            raise RuntimeError(f"isError: {_sdk_text(result)[:300]}")
        if expect and expect not in _sdk_text(result):
            raise RuntimeError(f"{expect!r} not in the answer: {_sdk_text(result)[:300]}")

    out = {}
    async with contextlib.AsyncExitStack() as outer:
        stdio = None
        if args.mode == "stdio":  # one server process for every level, as a host keeps its server
            errlog = outer.enter_context(open(args.stderr or os.devnull, "a"))
            params = mcp.StdioServerParameters(command=args.command[0], args=args.command[1:], env=dict(os.environ))
            stdio = await outer.enter_async_context(mcp.Client(stdio_client(params, errlog=errlog), mode="auto"))
        for concurrency in args.concurrency:
            content_types.clear()
            window = None
            async with contextlib.AsyncExitStack() as stack:
                if stdio is not None:
                    clients = [stdio] * concurrency
                else:
                    mode = "legacy" if args.mode == "legacy" else "auto"
                    clients = []
                    for _ in range(concurrency):
                        http_client = httpx2.AsyncClient(timeout=30, event_hooks={"response": [on_response]})
                        clients.append(await stack.enter_async_context(
                            mcp.Client(streamable_http_client(args.url, http_client=http_client), mode=mode)))
                protocol = clients[0].session.protocol_version
                await _ready(lambda: call(clients[0]), args.ready_timeout)

                window = Window(args.warmup, args.duration)
                latencies: list[float] = []
                errors = [0, None]
                kinds: collections.Counter = collections.Counter()

                async def worker(client):
                    while True:
                        t0 = time.perf_counter()
                        if t0 >= window.end:
                            return
                        try:
                            await call(client)
                            ok, error, kind = True, None, None
                        except Exception as e:  # noqa: BLE001
                            ok, error, kind = False, f"{type(e).__name__}: {e}"[:300], error_kind(e)
                        if not window.opened(t0):
                            continue
                        if ok:
                            latencies.append(time.perf_counter() - t0)
                        else:
                            errors[0] += 1
                            kinds[kind] += 1
                            errors[1] = errors[1] or error

                await asyncio.gather(*(worker(c) for c in clients))
                cpu = window.cpu()
                window = None
            if args.mode == "stdio":
                content_types["stdio"] = len(latencies) + errors[0]
            out[str(concurrency)] = percentiles(latencies, errors[0], errors[1], args.duration, content_types, cpu,
                                                protocol=protocol, error_kinds=kinds)
    return out


# --- plain http.client --------------------------------------------------------------------------------------------

def _message(body: str, sse: bool, id: int) -> dict:
    candidates = [body]
    if sse:
        candidates = []
        for event in body.replace("\r\n", "\n").split("\n\n"):
            data = [line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:")]
            if data:
                candidates.append("\n".join(data))
    for text in candidates:
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == id:
            return message
    raise RuntimeError(f"no answer for id {id} in {body[:300]!r}")


class PlainClient:
    """One keep-alive HTTP/1.1 connection (http.client sends headers and a bytes body in one write)."""

    HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

    def __init__(self, url: str, mode: str):
        u = urllib.parse.urlsplit(url)
        self.path = u.path or "/"
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.mode = mode
        self.headers = dict(self.HEADERS)
        self.content_types: collections.Counter = collections.Counter()
        self.next_id = 1

    def post(self, message: dict) -> tuple[int, dict | None, str]:
        self.conn.request("POST", self.path, json.dumps(message).encode(), self.headers)
        r = self.conn.getresponse()
        body = r.read().decode(errors="replace")
        ctype = (r.getheader("content-type") or "").split(";")[0].strip().lower()
        self.content_types[ctype] += 1
        session = r.getheader("mcp-session-id")
        if session and "Mcp-Session-Id" not in self.headers:
            self.headers["Mcp-Session-Id"] = session
        if "id" not in message:
            return r.status, None, body
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {body[:300]}")
        return r.status, _message(body, ctype == "text/event-stream", message["id"]), body

    def handshake(self) -> None:
        _, answer, body = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "nexus-bench-http.client", "version": "1"}}})
        if "result" not in answer:
            raise RuntimeError(f"initialize: {body[:300]}")
        self.headers["MCP-Protocol-Version"] = answer["result"].get("protocolVersion", "2025-06-18")
        status, _, body = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status not in (200, 202):
            raise RuntimeError(f"notifications/initialized: HTTP {status}: {body[:300]}")
        self.content_types.clear()

    def call(self, tool: str, arguments: dict, expect: str | None) -> None:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments}}
        headers = None
        if self.mode == "stateless":
            message["params"]["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "nexus-bench-http.client", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}}
            headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool}
        if headers:
            saved = self.headers
            self.headers = {**saved, **headers}
        try:
            _, answer, body = self.post(message)
        finally:
            if headers:
                self.headers = saved
        result = answer.get("result")
        if result is None:
            raise RuntimeError(f"error answer: {body[:300]}")
        if result.get("isError"):
            raise RuntimeError(f"isError: {body[:300]}")
        if expect and expect not in body:
            raise RuntimeError(f"{expect!r} not in the answer: {body[:300]}")

    def close(self) -> None:
        if "Mcp-Session-Id" in self.headers:
            with contextlib.suppress(OSError, http.client.HTTPException):
                self.conn.request("DELETE", self.path, headers=self.headers)
                self.conn.getresponse().read()
        self.conn.close()


def http_level(args, concurrency: int) -> dict:
    clients = [PlainClient(args.url, args.mode) for _ in range(concurrency)]
    if args.mode == "legacy":
        for c in clients:
            c.handshake()
    deadline = time.monotonic() + args.ready_timeout
    while True:
        try:
            clients[0].call(args.tool, args.arguments, args.expect)
            break
        except Exception as e:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise SystemExit(f"pyclient: not ready after {args.ready_timeout}s: {e}") from e
            time.sleep(0.2)
    clients[0].content_types.clear()
    window = Window(args.warmup, args.duration)
    latencies: list[float] = []
    errors = [0, None]
    kinds: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def worker(c: PlainClient):
        mine: list[float] = []
        while True:
            t0 = time.perf_counter()
            if t0 >= window.end:
                break
            try:
                c.call(args.tool, args.arguments, args.expect)
                ok, error, kind = True, None, None
            except Exception as e:  # noqa: BLE001
                ok, error, kind = False, f"{type(e).__name__}: {e}"[:300], error_kind(e)
                # A broken connection would fail every later call: start a new one (a new session if legacy).
                with contextlib.suppress(Exception):
                    c.conn.close()
                    if args.mode == "legacy":
                        c.headers.pop("Mcp-Session-Id", None)
                        c.handshake()
            if not window.opened(t0):
                c.content_types.clear()
                continue
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                with lock:
                    errors[0] += 1
                    errors[1] = errors[1] or error
                    kinds[kind] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = window.cpu()
    content_types: collections.Counter = collections.Counter()
    for c in clients:
        content_types.update(c.content_types)
        c.close()
    return percentiles(latencies, errors[0], errors[1], args.duration, content_types, cpu, error_kinds=kinds,
                       protocol="2026-07-28" if args.mode == "stateless" else clients[0].headers.get(
                           "MCP-Protocol-Version"))


def http_main(args) -> dict:
    return {str(c): http_level(args, c) for c in args.concurrency}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--client", choices=["sdk", "http"], required=True)
    p.add_argument("--mode", choices=["stateless", "legacy", "stdio"], required=True)
    p.add_argument("--url", default="")
    p.add_argument("--tool", required=True)
    p.add_argument("--arguments", type=json.loads, default={})
    p.add_argument("--expect")
    p.add_argument("--concurrency", type=lambda v: [int(c) for c in v.split(",")], default=[1],
                   help="virtual clients; a comma-separated list (1,8,32) measures each in turn (one stdio server "
                        "for all) and prints {\"by_c\": {\"1\": {...}, ...}}")
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--ready-timeout", type=float, default=60)
    p.add_argument("--stderr", help="stdio: a file for the server's stderr")
    p.add_argument("command", nargs="*", help="stdio: the server command line (after --)")
    args = p.parse_args()
    if args.client == "http" and args.mode == "stdio":
        p.error("the http.client client speaks HTTP only")
    if args.mode == "stdio" and not args.command:
        p.error("--mode stdio needs the server command after --")
    by_c = asyncio.run(sdk_main(args)) if args.client == "sdk" else http_main(args)
    out = next(iter(by_c.values())) if len(by_c) == 1 else {"by_c": by_c}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
