"""A local fleet: real redis-server (the shared store), real HAProxy health-checking `/ready` like Kubernetes (one
failure takes a server out), a TCP relay that can cut one replica's path to the bastion, and an HTTP client
transport that routes an MCP client's requests to the replicas as a test decides (a balancer under control)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import threading
import urllib.request
from pathlib import Path

import httpx2

from .procs import Proc, free_port, port_open, wait_until


def _require(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not path:
        raise RuntimeError(f"{binary} is missing: run `make deps` (scripts/install-test-deps.sh)")
    return path


class RedisServer:
    """redis-server on loopback, no persistence, with a password (the URL is a secret in nexus-mcp's config)."""

    PASSWORD = "fleet-test-secret"

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = Proc([_require("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--requirepass", self.PASSWORD,
                          "--dir", str(directory)], directory / "redis.log")
        wait_until(lambda: port_open(self.port), 10, "redis-server to listen")

    @property
    def url(self) -> str:
        return f"redis://:{self.PASSWORD}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.stop()


class Relay:
    """A TCP relay 127.0.0.1:port → target that can be cut (listener closed, every connection dropped) and
    restored on the same port."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        if self._listener:
            # shutdown wakes the thread blocked in accept(); close alone leaves the port listening.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class HAProxy:
    """HAProxy in HTTP mode, round-robin over `servers` (name → port), checking GET /ready every 200 ms: one
    failure takes a server out, one success brings it back (Kubernetes' failureThreshold/successThreshold 1)."""

    def __init__(self, directory: Path, servers: dict[str, int]):
        directory.mkdir(parents=True, exist_ok=True)
        self.port, self.stats_port = free_port(), free_port()
        lines = [
            "global", "  maxconn 256",
            "defaults", "  mode http", "  timeout connect 1s", "  timeout client 30s", "  timeout server 30s",
            "frontend mcp", f"  bind 127.0.0.1:{self.port}", "  default_backend nexus",
            "backend nexus", "  balance roundrobin", "  option httpchk GET /ready",
            "  http-check expect status 200", "  default-server inter 200ms fall 1 rise 1",
            *(f"  server {name} 127.0.0.1:{port} check" for name, port in servers.items()),
            "listen stats", f"  bind 127.0.0.1:{self.stats_port}", "  stats enable", "  stats uri /stats",
        ]
        self.config = directory / "haproxy.cfg"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc = Proc([_require("haproxy"), "-db", "-f", str(self.config)], directory / "haproxy.log")
        wait_until(lambda: port_open(self.stats_port), 10, "haproxy to listen")

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def states(self) -> dict[str, str]:
        """Server name → "UP" / "DOWN" (HAProxy's view, from its stats CSV)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2) as r:
            text = r.read().decode().lstrip("# ")
        return {row["svname"]: row["status"].split()[0] for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "nexus" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def stop(self) -> None:
        self.proc.stop()


class Routes(httpx2.AsyncBaseTransport):
    """An MCP client's HTTP transport that sends each POST to the replica `route(message)` names (a base URL such
    as `http://127.0.0.1:PORT`; None: where the client sent it), like a balancer that picks another replica for
    some requests. Records where the client's answers to the server's questions went (`answers`: (url, id))."""

    def __init__(self, route):
        self.route = route
        self.answers: list[tuple[str, object]] = []
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            body = await request.aread()
            message = json.loads(body)
            target = self.route(message)
            if target:
                base = httpx2.URL(target)
                url = request.url.copy_with(host=base.host, port=base.port)
                headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
                request = httpx2.Request("POST", url, headers=headers, content=body, extensions=request.extensions)
            if "method" not in message:
                self.answers.append((f"{request.url.host}:{request.url.port}", message.get("id")))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
