"""The HTTP edge: tokens, Host/Origin, limits, rate limiting, request ids, the audit log, hostile input."""

import concurrent.futures
import json
import signal
import socket
import urllib.request

import pytest

from support import Nexus, call_tool, free_port
from support.rawhttp import INIT, post, stateless_call

TOKEN = "agent-token-0123456789abcdef"
def post_oversized(nexus, size: int) -> tuple[int, str]:
    """Announces a `size`-byte body, sends the start of it, and reads the answer (sent before the rest)."""
    host, port = nexus.config["server"]["listen"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall((f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                   f"Accept: application/json, text/event-stream\r\nContent-Length: {size}\r\n\r\n").encode())
        try:
            s.sendall(b'{"x":"' + b"a" * 65536)
        except OSError:
            pass  # the server may already have answered and closed
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# callers\nclaude:{TOKEN}\n")
    return path


def test_tokens_are_required_and_reloaded_without_restart(stack, tokens):
    nexus = stack.nexus(server={"auth_tokens_file": str(tokens)})
    nexus.wait_ready()
    status, headers, body = post(nexus, INIT)
    assert status == 401 and headers.get("www-authenticate", headers.get("WWW-Authenticate", "")).startswith("Bearer")
    assert post(nexus, INIT, {"Authorization": "Bearer not-the-token-000000"})[0] == 401
    assert not call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "notes"}, token=TOKEN).is_error
    assert nexus.status("/ready") == 200, "probes stay open"

    tokens.write_text("cursor:new-token-abcdefghijklmnop\n")
    nexus.wait_until(lambda: post(nexus, INIT, {"Authorization": f"Bearer {TOKEN}"})[0] == 401, 10,
                     "the old token to be revoked by the reload")
    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "notes"},
                  token="new-token-abcdefghijklmnop")
    assert not r.is_error
    audit = [l for l in nexus.log_lines() if l.get("tool") == "count" and "caller" in l]
    assert audit[-1]["caller"] == "cursor", "the token's name is the caller identity"
    assert nexus.metric('nexus_http_rejected_total{reason="auth"}') >= 3


def test_deleting_or_emptying_the_tokens_file_revokes_every_token(stack, tokens):
    """Revocation fails closed: a removed file, an emptied file or a malformed line never keeps a token valid."""
    nexus = stack.nexus(server={"auth_tokens_file": str(tokens)})
    nexus.wait_ready()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert post(nexus, INIT, auth)[0] == 200

    tokens.write_text(f"claude:{TOKEN}\nthis line is not a token\n")
    nexus.wait_until(lambda: "line 2" in nexus.logs(), 10, "the malformed line to be logged")
    assert post(nexus, INIT, auth)[0] == 200, "the valid line stays in force"

    tokens.write_text("# every caller removed\n")
    nexus.wait_until(lambda: post(nexus, INIT, auth)[0] == 401, 10, "the emptied file to revoke the token")

    tokens.write_text(f"claude:{TOKEN}\n")
    nexus.wait_until(lambda: post(nexus, INIT, auth)[0] == 200, 10, "the token to be restored")
    tokens.unlink()
    nexus.wait_until(lambda: post(nexus, INIT, auth)[0] == 401, 10, "the deleted file to revoke the token")
    assert "file removed" in nexus.logs() and "no valid bearer token" in nexus.logs()


def test_a_public_listen_address_needs_tokens_or_an_explicit_opt_out(stack, tmp_path):
    config = stack.config(server={"listen": f"0.0.0.0:{free_port()}"})
    refused = Nexus(tmp_path / "public", config, start=False).run("serve")
    assert refused.returncode == 64
    assert "server.auth_tokens_file" in refused.stderr and "--insecure-no-auth" in refused.stderr

    nexus = Nexus(tmp_path / "insecure", config, args=["--insecure-no-auth"])
    nexus.config["server"]["listen"] = "127.0.0.1:" + config["server"]["listen"].rsplit(":", 1)[1]
    nexus.wait_ready()
    assert "INSECURE: --insecure-no-auth" in nexus.logs()
    nexus.stop()


def test_host_and_origin_are_checked(stack):
    nexus = stack.nexus(server={"allowed_origins": ["http://localhost:6274"]})
    nexus.wait_ready()
    status, _, body = post(nexus, INIT, {"Host": "evil.example"})
    assert status == 403 and "evil.example" in body and "server.allowed_hosts" in body
    status, _, body = post(nexus, INIT, {"Origin": "http://evil.example"})
    assert status == 403 and "server.allowed_origins" in body
    assert post(nexus, INIT, {"Origin": "http://localhost:6274"})[0] == 200
    assert post(nexus, INIT)[0] == 200
    m = nexus.metrics()
    assert m['nexus_http_rejected_total{reason="host"}'] == 1 and m['nexus_http_rejected_total{reason="origin"}'] == 1


def test_body_limit_rate_limit_and_security_headers(stack):
    nexus = stack.nexus(server={"rate_limit": 2.0, "rate_burst": 3})
    nexus.wait_ready()
    status, body = post_oversized(nexus, 2 * 1024 * 1024)
    assert status == 413 and "server.body_limit" in body
    codes = [post(nexus, INIT)[0] for _ in range(5)]  # the 413 above took one of the 3 tokens
    assert codes[:2] == [200, 200] and 429 in codes[2:], codes
    status, headers, _ = post(nexus, INIT)
    assert status == 429 and int(headers.get("retry-after", headers.get("Retry-After"))) >= 1
    status, headers, _ = post(nexus, INIT, {"X-Request-Id": "trace-42"})
    assert headers.get("x-request-id", headers.get("X-Request-Id")) == "trace-42"
    assert headers.get("x-content-type-options", headers.get("X-Content-Type-Options")) == "nosniff"
    assert "no-store" in headers.get("cache-control", headers.get("Cache-Control"))
    assert nexus.metric('nexus_http_rejected_total{reason="body"}') == 1


def test_max_in_flight_answers_503_with_retry_after(stack):
    nexus = stack.nexus(server={"max_in_flight": 2})
    nexus.wait_ready()
    call, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    stack.mongo.proc.signal(signal.SIGSTOP)  # calls now hang in the driver: slow calls on demand
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(post, nexus, dict(call, id=i), headers) for i in range(8)]
            # Two calls hold the two slots (hanging in the driver); the six others are answered at once.
            nexus.wait_until(lambda: nexus.metric("nexus_mcp_in_flight") == 2, 10, "two calls in flight")
            nexus.wait_until(lambda: sum(f.done() for f in futures) == 6, 10, "six calls answered while two hang")
            assert nexus.metric("nexus_mcp_in_flight") == 2
            stack.mongo.proc.signal(signal.SIGCONT)
            results = [f.result() for f in futures]
    finally:
        stack.mongo.proc.signal(signal.SIGCONT)
    limited = [r for r in results if r[0] == 503]
    assert sorted(r[0] for r in results) == [200] * 2 + [503] * 6, [r[0] for r in results]
    assert all(int(r[1].get("retry-after", r[1].get("Retry-After"))) >= 1 for r in limited)
    assert all("in flight" in r[2] for r in limited)
    assert nexus.metric('nexus_http_rejected_total{reason="limit"}') == 6


def test_the_audit_log_records_calls_without_values(stack, tmp_path, tokens):
    audit = tmp_path / "audit.jsonl"
    nexus = stack.nexus(server={"auth_tokens_file": str(tokens), "audit_log": str(audit)})
    nexus.wait_ready()
    call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "customers",
                                      "filter": {"email": "alice.secret@example.com"}}, token=TOKEN,
              headers={"X-Request-Id": "req-audit-1"})
    call_tool(nexus.mcp_url, "find", {"database": "admin", "collection": "users"}, token=TOKEN)
    lines = [json.loads(l) for l in audit.read_text().splitlines()]
    ok, rejected = lines[-2], lines[-1]
    assert ok["tool"] == "find" and ok["caller"] == "claude" and ok["outcome"] == "ok"
    assert (ok["database"], ok["collection"]) == ("shop", "customers")
    assert ok["requestId"] == "req-audit-1"
    assert ok["arguments"]["filter"] == {"email": "?"}
    assert {"timestamp", "durationMs", "documents", "bytes"} <= set(ok)
    assert rejected["outcome"] == "rejected" and rejected["errorClass"] == "QUERY_REJECTED"
    assert "alice.secret" not in audit.read_text()


def test_the_audit_log_records_failed_and_unavailable_calls(stack, tmp_path):
    """Every call leaves a line, not only successes and guard refusals: a failed call and a call refused because
    MongoDB is down each name their outcome and error class (the same outcome the metric counts)."""
    audit = tmp_path / "audit.jsonl"
    nexus = stack.nexus(server={"audit_log": str(audit)})
    nexus.wait_ready()

    failed = call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "ordrs"})
    assert failed.is_error and failed.text.startswith("QUERY_FAILED: ") and "does not exist" in failed.text, \
        failed.text

    stack.mongo.stop()
    nexus.wait_unready(timeout=15)
    unavailable = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders"})
    assert unavailable.is_error and unavailable.text.startswith("MONGO_UNREACHABLE: database unavailable"), \
        unavailable.text

    lines = [json.loads(l) for l in audit.read_text().splitlines()]
    assert [(l["tool"], l["outcome"], l.get("errorClass")) for l in lines] == [
        ("find", "failed", "QUERY_FAILED"),
        ("count", "unavailable", "MONGO_UNREACHABLE"),
    ], lines
    assert (lines[0]["database"], lines[0]["collection"]) == ("shop", "ordrs")
    assert nexus.metric('nexus_mcp_tool_calls_total{outcome="failed",tool="find"}') == 1
    assert nexus.metric('nexus_mcp_tool_calls_total{outcome="unavailable",tool="count"}') == 1


def test_hostile_requests_get_clear_errors_and_the_server_keeps_serving(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    # What is not a JSON-RPC message gets 400 with the JSON-RPC error (parse error, or invalid request with its id).
    status, _, body = post(nexus, None, raw=b"{not json")
    assert (status, json.loads(body)["error"]["code"]) == (400, -32700), body
    status, _, body = post(nexus, {"jsonrpc": "2.0", "id": 5})
    assert (status, json.loads(body)["id"], json.loads(body)["error"]["code"]) == (400, 5, -32600), body
    status, _, body = post(nexus, {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": []})
    assert (status, json.loads(body)["id"], json.loads(body)["error"]["code"]) == (400, 6, -32600), body
    status, _, body = post(nexus, INIT, {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in body
    status, _, body = post(nexus, dict(INIT, id=10 ** 40))
    assert (status, json.loads(body)["error"]["code"]) == (400, -32600), body
    call, headers = stateless_call("find", {"database": "shop", "collection": "orders", "filter": "DEEP"})
    deep = '{"a":' * 10_000 + "1" + "}" * 10_000
    status, _, body = post(nexus, None, headers, raw=json.dumps(call).replace('"DEEP"', deep).encode())
    answer = json.loads(body)
    assert (status, answer["error"]["code"]) == (400, -32700) and "recursion" in answer["error"]["message"], body
    assert nexus.proc.alive()
    assert not call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "notes"}).is_error
