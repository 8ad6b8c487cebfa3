"""stdio as a host drives it: every line gets an answer (malformed ones a JSON-RPC error, never silence), and
SIGTERM ends the process within the grace period even while the host keeps stdin open."""

import json
import signal
import subprocess

import pytest

from support.nexus import BINARY

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "host", "version": "1"}}}


@pytest.fixture
def stdio(stack):
    nexus = stack.nexus(start=False, server={"shutdown_grace": "2s"})
    proc = subprocess.Popen([str(BINARY), "serve", "--transport", "stdio", "--config", str(nexus.config_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(nexus.log, "wb"),
                            env=nexus.env)

    def send(line: str) -> None:
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()

    def receive() -> dict:
        return json.loads(proc.stdout.readline())

    send(json.dumps(INIT))
    assert receive()["id"] == 1
    send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    yield proc, send, receive
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_malformed_lines_get_json_rpc_errors(stdio):
    _, send, receive = stdio
    send('{"jsonrpc":"2.0","id":2,"method":"tools/list"')  # cut short
    assert receive()["error"]["code"] == -32700
    send('{"jsonrpc":"2.0","id":3}')
    answer = receive()
    assert (answer["id"], answer["error"]["code"]) == (3, -32600)
    send('{"jsonrpc":"2.0","id":4,"method":"ping"}')
    assert receive() == {"jsonrpc": "2.0", "id": 4, "result": {}}, "the session goes on"


def test_sigterm_with_stdin_still_open_exits_within_the_grace(stdio):
    proc, _, _ = stdio
    proc.send_signal(signal.SIGTERM)
    # shutdown_grace is 2 s; the close steps add at most a few seconds more.
    assert proc.wait(timeout=8) == 0
