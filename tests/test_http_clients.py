"""What ordinary HTTP clients see at the protocol's edges: ending a session, and an oversized body sent whole."""

import http.client
import json
import urllib.error
import urllib.request

from support.rawhttp import INIT, MCP_HEADERS


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
