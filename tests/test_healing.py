"""Self-healing: a crashed bastion, a silent partition and a MongoDB outage, watched through the probes."""

import socket
import time

import pymongo

from support import call_tool


def forward_client(nexus):
    return pymongo.MongoClient(f"mongodb://127.0.0.1:{nexus.forward_port}/", directConnection=True,
                               serverSelectionTimeoutMS=3000)


def test_a_killed_bastion_is_detected_and_healed_without_a_restart(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    pid = nexus.proc.pid

    for outage in (1, 2):  # twice: healing must not be a one-shot
        stack.sshd.kill()
        killed = time.monotonic()
        nexus.wait_unready(timeout=5)  # within the keepalive window (1 s × 3)
        detected = time.monotonic() - killed
        assert nexus.check("sshTunnel")["status"] == "unhealthy"
        assert nexus.check("sshTunnel")["error"] == "unreachable"
        assert nexus.metric("nexus_tunnel_up") == 0
        # While down, connections to the forward are closed at once: a client waiting for MongoDB's greeting
        # sees EOF instead of hanging until its own timeout (10 s here).
        host, port = "127.0.0.1", nexus.forward_port
        with socket.create_connection((host, port), timeout=10) as s:
            started = time.monotonic()
            assert s.recv(1) == b""
            assert time.monotonic() - started < 1.0

        stack.sshd.start()
        nexus.wait_ready(timeout=15)
        assert nexus.proc.pid == pid and nexus.proc.alive()
        assert nexus.metric("nexus_tunnel_reconnects_total") >= outage
        with forward_client(nexus) as c:
            assert c.shop.orders.count_documents({}) > 0
        print(f"kill {outage} detected in {detected * 1000:.0f} ms")


def test_a_silent_partition_is_detected_by_keepalive_and_healed(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    frozen = stack.sshd.freeze_sessions()
    assert frozen, "the session has an sshd process to freeze"
    started = time.monotonic()
    nexus.wait_until(lambda: "Keepalive timeout" in nexus.logs(), 10, "keepalive to detect the frozen session")
    detected = time.monotonic() - started
    nexus.wait_until(lambda: any(l.get("message") == "dependency unhealthy" and l.get("check") == "sshTunnel"
                                 for l in nexus.log_lines()), 5, "sshTunnel to be reported unhealthy")
    stack.sshd.thaw(frozen)
    nexus.wait_ready(timeout=15)
    assert nexus.metric("nexus_tunnel_reconnects_total") >= 1
    with forward_client(nexus) as c:
        assert c.shop.customers.count_documents({}) > 0
    print(f"silent partition detected in {detected * 1000:.0f} ms")


def test_mongodb_down_with_the_tunnel_up(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    stack.mongo.stop()
    nexus.wait_unready(timeout=15)
    nexus.wait_until(lambda: nexus.check("mongodb")["status"] == "unhealthy", 10, "mongodb unhealthy")
    assert nexus.check("sshTunnel")["status"] == "healthy"
    assert nexus.metric('nexus_dependency_up{dependency="mongodb"}') == 0
    stack.mongo.start()
    nexus.wait_ready(timeout=20)
    assert nexus.check("mongodb")["status"] == "healthy"


def test_a_dead_mongodb_is_seen_within_seconds_and_calls_fail_fast_under_the_defaults(stack):
    """Regression: with the defaults, /ready stayed 200 for 12 s after MongoDB died and calls hung 5 s each."""
    nexus = stack.nexus(mongo={"health_interval": None, "server_selection_timeout": None})
    nexus.wait_ready()
    stack.mongo.stop()
    # Default health_interval is 2 s; the bastion's refusal to forward is definitive and flips at once.
    nexus.wait_unready(timeout=4)
    assert nexus.check("mongodb")["class"] == "SSH_FORWARD_REFUSED"
    started = time.monotonic()
    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders"})
    took = time.monotonic() - started
    assert r.is_error and "SSH_FORWARD_REFUSED" in r.text, r.text
    assert took < 1.5, f"the call took {took:.1f} s (the driver's 5 s server selection)"
    stack.mongo.start()
    nexus.wait_ready(timeout=20)
