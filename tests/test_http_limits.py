"""What a hostile or unlucky client can still do to the HTTP edge (issue 12): open legacy sessions without end,
hold connections with half-written requests, run more legacy calls than `max_in_flight`, or send bodies slowly.
Each limit answers with a clear error, is counted, and leaves the probes answering."""

import concurrent.futures
import json
import select
import signal
import time

from support import Nexus, wait_until
from support.rawhttp import INIT, connect, header, open_legacy_session, post, sse_messages, stateless_call

ALICE, BOB = "alice-token-0123456789abcdef", "bob-token-0123456789abcdefgh"
COUNT = {"database": "shop", "collection": "orders"}
HALF_REQUEST = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
#: Connections accepted beyond server.max_connections that serve only the probes (src/http/conn.rs).
PROBE_RESERVE = 8
#: How long a reserve connection may take to send its request (src/http/conn.rs).
RESERVE_HEADER_TIMEOUT = 2.0


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def error_of(body: str) -> dict:
    return json.loads(body)


def closed_by_server(sock, wait: float = 0.0) -> bool:
    """Whether the server closed `sock` (EOF or reset), waiting up to `wait` seconds for it."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def call_body(id: int, tool: str, arguments: dict) -> dict:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


# --- legacy sessions ------------------------------------------------------------------------------------------


def test_legacy_sessions_are_capped_per_caller_and_overall(stack, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    nexus = stack.nexus(server={"auth_tokens_file": str(tokens), "max_sessions": 6, "max_sessions_per_caller": 4})
    nexus.wait_ready()

    alice = [header(post(nexus, INIT, bearer(ALICE))[1], "Mcp-Session-Id") for _ in range(4)]
    assert all(alice) and len(set(alice)) == 4
    status, _, body = post(nexus, INIT, bearer(ALICE))
    assert status == 429, body
    assert error_of(body)["reason"] == "sessions"
    assert "server.max_sessions_per_caller" in error_of(body)["error"]
    assert "DELETE" in error_of(body)["error"], "says how to free a place"

    bob = [header(post(nexus, INIT, bearer(BOB))[1], "Mcp-Session-Id") for _ in range(2)]
    assert all(bob)
    status, headers, body = post(nexus, INIT, bearer(BOB))
    assert status == 503, body
    assert error_of(body)["reason"] == "sessions"
    assert "server.max_sessions " in error_of(body)["error"]
    assert int(header(headers, "Retry-After")) >= 1

    # A flood of handshakes changes nothing: the count stays at the cap.
    refused = [post(nexus, INIT, bearer(ALICE if i % 2 else BOB))[0] for i in range(40)]
    assert sorted(set(refused)) == [429, 503]
    assert nexus.metric("nexus_http_sessions") == 6
    assert nexus.metric('nexus_http_rejected_total{reason="sessions"}') == 42

    # Sessions in place keep working, and so do stateless requests.
    status, _, body = post(nexus, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                           {**bearer(ALICE), "Mcp-Session-Id": alice[0]})
    assert status == 200, body
    call, headers = stateless_call("count", COUNT)
    status, _, body = post(nexus, call, {**headers, **bearer(BOB)})
    assert status == 200, body

    # Closing a session frees its place.
    status, _, _ = post(nexus, None, {**bearer(ALICE), "Mcp-Session-Id": alice[1]}, method="DELETE")
    assert status == 204
    nexus.wait_until(lambda: nexus.metric("nexus_http_sessions") == 5, 10, "the closed session to be counted out")
    assert post(nexus, INIT, bearer(BOB))[0] == 200


def test_idle_legacy_sessions_expire_and_free_their_place(stack):
    nexus = stack.nexus(server={"max_sessions_per_caller": 1, "session_idle_timeout": "2s",
                                "request_timeout": "1s"})
    nexus.wait_ready()
    session = open_legacy_session(nexus)
    assert post(nexus, INIT)[0] == 429, "the caller's only place is taken"

    # A session in use does not expire: calls spaced under the idle timeout, for longer than it.
    started = time.monotonic()
    for i in range(8):
        status, _, body = post(nexus, {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/list"}, session)
        assert status == 200, (i, body)
        time.sleep(0.5)  # the client's pace, not synchronisation
    assert time.monotonic() - started > 3.5

    idle_since = time.monotonic()
    nexus.wait_until(lambda: nexus.metric("nexus_http_sessions") == 0, 15, "the idle session to expire")
    assert time.monotonic() - idle_since > 1.5, "expired before server.session_idle_timeout"
    status, _, _ = post(nexus, {"jsonrpc": "2.0", "id": 99, "method": "tools/list"}, session)
    assert status == 404, "an expired session is unknown (the client starts a new one)"
    assert post(nexus, INIT)[0] == 200, "the expired session's place is free again"


# --- connections ----------------------------------------------------------------------------------------------


def test_half_written_requests_are_closed_and_probes_keep_answering(stack):
    # 12 s: long enough that the 16 connections still hold the cap when the next request comes, on a loaded machine
    # too (with 2 s, and once with 5 s under a load of 6 on 2 cores, they were closed first and the request got 200).
    nexus = stack.nexus(server={"max_connections": 16, "header_read_timeout": "12s"})
    nexus.wait_ready()
    opened = time.monotonic()
    socks = [connect(nexus) for _ in range(16)]
    try:
        for s in socks:
            s.sendall(HALF_REQUEST)
        nexus.wait_until(lambda: nexus.metric("nexus_http_connections") >= 17, 10,
                         "the 16 connections (and this scrape's) to be counted")

        status, _, body = post(nexus, INIT)
        assert status == 503, body
        assert error_of(body)["reason"] == "connections" and "server.max_connections" in error_of(body)["error"]

        ready, open_socks, closed_at = [], list(socks), []
        deadline = opened + 30
        while open_socks and time.monotonic() < deadline:
            ready.append(nexus.status("/ready"))
            for s in [s for s in open_socks if closed_by_server(s)]:
                open_socks.remove(s)
                closed_at.append(time.monotonic() - opened)
        assert not open_socks, f"{len(open_socks)} half-written requests still open after 30 s"
        assert len(ready) >= 5 and set(ready) == {200}, ready
        assert min(closed_at) > 11.5, f"closed before server.header_read_timeout: {closed_at}"
    finally:
        for s in socks:
            s.close()
    assert post(nexus, INIT)[0] == 200
    assert nexus.metric('nexus_http_rejected_total{reason="connections"}') >= 1


def test_connections_beyond_the_cap_and_the_probe_reserve_are_closed_at_once(stack):
    nexus = stack.nexus(server={"max_connections": 4, "header_read_timeout": "20s"})
    nexus.wait_ready()
    socks = [connect(nexus) for _ in range(4 + PROBE_RESERVE + 3)]
    capped, reserve, excess = socks[:4], socks[4:-3], socks[-3:]
    try:
        sent = time.monotonic()
        for s in socks:
            s.sendall(HALF_REQUEST)
        acted = first_server_action(reserve + excess, sent, deadline=10)
        # The cap's connections still wait for their request (header_read_timeout = 20 s).
        assert not any(closed_by_server(s) for s in capped), "the cap's connections stay open"
    finally:
        for s in socks:
            s.close()
    assert len(acted) == len(reserve) + len(excess), f"only {len(acted)} connections ended: {acted}"
    excess_at = max(acted[id(s)] for s in excess)
    reserve_at = min(acted[id(s)] for s in reserve)
    # The excess is closed at once; the reserve waits for a probe request until its own deadline (a server timer:
    # it can be late on a busy machine, never early).
    assert excess_at < reserve_at, f"excess closed after {excess_at:.2f} s, the reserve after {reserve_at:.2f} s"
    assert reserve_at >= RESERVE_HEADER_TIMEOUT - 0.1, f"the reserve's connections ended after {reserve_at:.2f} s"
    # Scrapes refused while the server has not yet seen those closes count too: hence at least 3.
    nexus.wait_until(lambda: nexus.metric("nexus_http_connections") == 1, 10, "only the scrape's connection")
    assert nexus.metric('nexus_http_rejected_total{reason="connections"}') >= 3


def first_server_action(socks: list, since: float, deadline: float) -> dict:
    """Seconds from `since` until the server first wrote to or closed each socket (keyed by `id`), for those it
    acted on within `deadline` seconds."""
    acted: dict = {}
    while len(acted) < len(socks) and time.monotonic() - since < deadline:
        waiting = [s for s in socks if id(s) not in acted]
        readable, _, _ = select.select(waiting, [], [], 0.01)
        now = time.monotonic() - since
        for s in readable:
            acted[id(s)] = now
    return acted


# --- in-flight slots and deadlines over the life of a response ------------------------------------------------


def test_legacy_calls_hold_their_in_flight_slot_until_the_answer_is_sent(stack):
    nexus = stack.nexus(server={"max_in_flight": 2})
    nexus.wait_ready()
    session = open_legacy_session(nexus)
    stack.mongo.proc.signal(signal.SIGSTOP)  # calls now hang in the driver: slow calls on demand
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(post, nexus, call_body(10 + i, "count", COUNT), session) for i in range(6)]
            nexus.wait_until(lambda: nexus.metric('nexus_http_rejected_total{reason="limit"}') >= 4, 10,
                             "4 of 6 concurrent legacy calls to be refused with max_in_flight = 2")
            stack.mongo.proc.signal(signal.SIGCONT)
            results = [f.result() for f in futures]
    finally:
        stack.mongo.proc.signal(signal.SIGCONT)
    assert sorted(r[0] for r in results) == [200, 200, 503, 503, 503, 503]
    answered = [sse_messages(r[2])[-1] for r in results if r[0] == 200]
    assert all("result" in m for m in answered), answered
    assert nexus.metric('nexus_http_rejected_total{reason="limit"}') == 4


def test_a_legacy_call_past_request_timeout_ends_its_stream_with_an_error(stack):
    nexus = stack.nexus(server={"request_timeout": "2s"})
    nexus.wait_ready()
    session = open_legacy_session(nexus)
    stack.mongo.proc.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, _, body = post(nexus, call_body(7, "count", COUNT), session, timeout=20)
        took = time.monotonic() - started
    finally:
        stack.mongo.proc.signal(signal.SIGCONT)
    assert status == 200, body
    last = sse_messages(body)[-1]
    assert last["id"] == 7 and "server.request_timeout" in last["error"]["message"], last
    assert took < 10, f"the stream ended after {took:.1f} s"
    assert nexus.metric('nexus_http_rejected_total{reason="timeout"}') == 1
    nexus.wait_until(lambda: nexus.metric("nexus_mcp_in_flight") == 0, 15, "the call to finish")


# --- slow bodies ----------------------------------------------------------------------------------------------


class SlowBody:
    """A POST /mcp that announces `size` bytes and sends them one byte every `pace` seconds."""

    def __init__(self, nexus, size: int = 200, pace: float = 0.2):
        self.sock = connect(nexus)
        self.size, self.pace = size, pace
        self.started = time.monotonic()
        self.sock.sendall((f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           f"Accept: application/json, text/event-stream\r\nContent-Length: {size}\r\n\r\n").encode()
                          + b'{"jsonrpc":')

    def trickle(self, limit: float = 15) -> tuple[int, str, float]:
        """Sends a byte at a time until the server answers (or `limit` s); returns (status, body, seconds)."""
        answer, sent = b"", 11
        while time.monotonic() - self.started < limit:
            readable, _, _ = select.select([self.sock], [], [], self.pace)
            if readable:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
            elif sent < self.size - 1:
                self.sock.sendall(b" ")
                sent += 1
        self.sock.close()
        head, _, body = answer.decode(errors="replace").partition("\r\n\r\n")
        return int(head.split()[1]) if head else 0, body, time.monotonic() - self.started


def test_slow_request_bodies_get_408_and_hold_no_in_flight_slot(stack):
    nexus = stack.nexus(server={"max_in_flight": 2, "body_read_timeout": "1s", "request_timeout": "5s"})
    nexus.wait_ready()
    slow = [SlowBody(nexus) for _ in range(3)]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(s.trickle) for s in slow]
        nexus.wait_until(lambda: nexus.metric("nexus_http_connections") >= 4, 10, "the slow bodies' connections")
        call, headers = stateless_call("count", COUNT)
        status, _, body = post(nexus, call, headers)
        assert status == 200, f"slow bodies took the in-flight slots: {body}"
        results = [f.result() for f in futures]
    for status, body, took in results:
        assert status == 408, body
        assert error_of(body)["reason"] == "body_timeout" and "server.body_read_timeout" in error_of(body)["error"]
        assert took < 5, f"answered after {took:.1f} s, past server.request_timeout"
    assert nexus.metric('nexus_http_rejected_total{reason="body_timeout"}') == 3


def test_limits_are_validated_with_the_key_named(stack, tmp_path):
    for server, key in [({"max_connections": 0}, "server.max_connections"),
                        ({"max_sessions": 0}, "server.max_sessions"),
                        ({"max_sessions": 2, "max_sessions_per_caller": 3}, "server.max_sessions_per_caller"),
                        ({"session_idle_timeout": "10s", "request_timeout": "30s"}, "server.session_idle_timeout"),
                        ({"header_read_timeout": "0s"}, "server.header_read_timeout"),
                        ({"body_read_timeout": "30s", "request_timeout": "30s"}, "server.body_read_timeout")]:
        refused = Nexus(tmp_path / key, stack.config(server=server), start=False).run("check")
        assert refused.returncode == 64, (server, refused.stderr)
        assert key in refused.stderr, (server, refused.stderr)
