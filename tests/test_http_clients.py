"""What ordinary HTTP clients see at the protocol's edges: ending a session, and an oversized body sent whole."""

import http.client
import json
import urllib.error
import urllib.request

from support.rawhttp import INIT, MCP_HEADERS, post


def test_ending_a_legacy_session_answers_204_and_the_session_is_gone(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    host, port = nexus.config["server"]["listen"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/mcp", json.dumps(INIT), MCP_HEADERS)
    response = conn.getresponse()
    response.read()
    session_id = response.getheader("Mcp-Session-Id")
    assert response.status == 200 and session_id

    headers = {**MCP_HEADERS, "Mcp-Session-Id": session_id}
    conn.request("DELETE", "/mcp", headers=headers)
    response = conn.getresponse()
    assert (response.status, response.read()) == (204, b"")

    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    conn.request("POST", "/mcp", json.dumps(ping), headers)
    response = conn.getresponse()
    response.read()
    assert response.status == 404, "the ended session must not answer"
    conn.close()


def test_a_client_that_writes_the_whole_oversized_body_first_still_reads_the_413(stack):
    """urllib (like http.client) sends the entire body before reading the answer."""
    nexus = stack.nexus(server={"body_limit": "64KiB"})
    nexus.wait_ready()
    body = json.dumps({**INIT, "pad": "x" * (512 * 1024)}).encode()
    request = urllib.request.Request(nexus.mcp_url, data=body, method="POST", headers=MCP_HEADERS)
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("an oversized body was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 413
        assert "server.body_limit" in json.loads(e.read())["error"]
    assert nexus.metric('nexus_http_rejected_total{reason="body"}') == 1
    assert nexus.status("/ready") == 200, "the server keeps serving"


def _raw_status(nexus, request: bytes) -> int:
    import socket
    host, port = nexus.config["server"]["listen"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split()[1])


def test_two_host_headers_are_a_bad_request(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    host = nexus.config["server"]["listen"]
    body = json.dumps(INIT).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    assert _raw_status(nexus, head + body) == 400


def test_the_bearer_scheme_is_case_insensitive(stack, tmp_path):
    token = "case-insensitive-token-0123"
    path = tmp_path / "tokens"
    path.write_text(f"agent:{token}\n")
    nexus = stack.nexus(server={"auth_tokens_file": str(path)})
    nexus.wait_ready()
    for scheme in ("Bearer", "bearer", "BEARER"):
        status, _, body = post(nexus, INIT, {"Authorization": f"{scheme} {token}"})
        assert status == 200, (scheme, body)
