"""Self-healing: a crashed bastion, a silent partition and a MongoDB outage, watched through the probes."""

import time

import pymongo


def forward_client(nexus):
    return pymongo.MongoClient(f"mongodb://127.0.0.1:{nexus.forward_port}/", directConnection=True,
                               serverSelectionTimeoutMS=3000)


def test_a_killed_bastion_is_detected_and_healed_without_a_restart(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    pid = nexus.proc.pid

    stack.sshd.kill()
    killed = time.monotonic()
    nexus.wait_unready(timeout=5)  # within the keepalive window (1 s × 3)
    detected = time.monotonic() - killed
    assert nexus.check("sshTunnel")["status"] == "unhealthy"
    assert nexus.check("sshTunnel")["error"] == "unreachable"
    assert nexus.metric("nexus_tunnel_up") == 0
    # While down, connections to the forward are closed at once: clients fail fast instead of hanging.
    with forward_client(nexus) as c:
        started = time.monotonic()
        try:
            c.admin.command("ping")
        except pymongo.errors.PyMongoError:
            pass
        assert time.monotonic() - started < 3.5

    stack.sshd.start()
    nexus.wait_ready(timeout=15)
    assert nexus.proc.pid == pid and nexus.proc.alive()
    assert nexus.metric("nexus_tunnel_reconnects_total") >= 1
    with forward_client(nexus) as c:
        assert c.shop.orders.count_documents({}) > 0
    print(f"kill detected in {detected * 1000:.0f} ms")


def test_a_silent_partition_is_detected_by_keepalive_and_healed(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    frozen = stack.sshd.freeze_sessions()
    assert frozen, "the session has an sshd process to freeze"
    started = time.monotonic()
    nexus.wait_until(lambda: "Keepalive timeout" in nexus.logs(), 10, "keepalive to detect the frozen session")
    detected = time.monotonic() - started
    assert nexus.check("sshTunnel")["status"] == "unhealthy" or nexus.metric("nexus_tunnel_reconnects_total") >= 1
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
