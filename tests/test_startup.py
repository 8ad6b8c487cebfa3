"""Startup, the forward, `check`, configuration errors and shutdown — the spine as a user meets it."""

import signal
import socket
import threading
import time

import pymongo

from support import Nexus, call_tool, free_port
from support.rawhttp import post, stateless_call


def test_startup_latches_and_the_forward_carries_real_mongodb_traffic(stack):
    nexus = stack.nexus()
    nexus.wait_until(lambda: nexus.status("/startup") == 200, 30, "/startup 200")
    nexus.wait_ready()
    body = nexus.get("/ready")[1]
    assert body["status"] == "healthy" and body["stage"] == "ready"
    assert body["checks"]["sshTunnel"]["status"] == "healthy"
    assert body["checks"]["mongodb"]["latency_ms"] > 0
    assert nexus.status("/health") == 200

    # A MongoDB client pointed at the local forward writes and reads through the SSH session.
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{nexus.forward_port}/", directConnection=True,
                             serverSelectionTimeoutMS=3000) as through_tunnel:
        through_tunnel.shop.visits.insert_one({"via": "tunnel"})
    with stack.mongo.client() as direct:
        assert direct.shop.visits.find_one({"via": "tunnel"}) is not None

    m = nexus.metrics()
    assert m["nexus_tunnel_up"] == 1
    assert m['nexus_startup_stage{stage="ready"}'] == 1
    assert m['nexus_dependency_up{dependency="sshTunnel"}'] == 1
    assert m['nexus_tunnel_bytes_total{direction="rx"}'] > 0
    assert m["nexus_tunnel_connect_duration_seconds_count"] == 1


def test_probes_answer_503_while_the_bastion_is_unreachable(stack):
    stack.sshd.kill()
    nexus = stack.nexus()
    nexus.wait_until(lambda: nexus.status("/health") == 200, 10, "/health 200")
    assert nexus.status("/startup") == 503
    status, body = nexus.get("/ready")
    assert status == 503 and body["stage"] == "tunnel"
    assert nexus.proc.alive(), "a down bastion is retried, not fatal"


def test_check_prints_one_line_per_stage(stack):
    nexus = stack.nexus(start=False)
    result = nexus.run("check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [l for l in result.stdout.splitlines() if not l.startswith("ssh ")]  # then the resolved SSH settings
    assert [l.split()[0] for l in lines] == ["tunnel", "mongodb", "mcp"]
    assert all(l.split()[1] == "ok" for l in lines)


def test_check_exit_codes_name_the_failing_stage(stack):
    stack.mongo.stop()
    result = stack.nexus(start=False).run("check")
    assert result.returncode == 12, result.stdout
    # MongoDB down behind a live bastion: the bastion refuses to open the forward, and check says so.
    assert "mongodb  FAILED" in result.stdout and "SSH_FORWARD_REFUSED" in result.stdout
    assert "mcp      skipped" in result.stdout

    stack.sshd.kill()
    result = stack.nexus("n2", start=False).run("check")
    assert result.returncode == 11, result.stdout
    assert "tunnel   FAILED" in result.stdout and "SSH_UNREACHABLE" in result.stdout


def test_bad_config_exits_64_naming_the_key(stack, tmp_path):
    bad = stack.config(ssh={"keepalive_interval": "often"})
    nexus = Nexus(tmp_path / "bad", bad, start=False)
    result = nexus.run("serve")
    assert result.returncode == 64
    assert "ssh.keepalive_interval" in result.stderr

    unknown = stack.config(mongo={"ur1": "x"})
    result = Nexus(tmp_path / "unknown", unknown, start=False).run("check")
    assert result.returncode == 64 and "ur1" in result.stderr

    result = Nexus(tmp_path / "env", stack.config(), start=False, env={"SSH_PORT": "not-a-port"}).run("check")
    assert result.returncode == 64 and "ssh.port" in result.stderr


def test_sigterm_turns_ready_off_drains_and_exits_0(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    assert nexus.terminate() == 0
    assert "shutdown complete" in nexus.logs()
    # A clean SSH disconnect (the client says goodbye), not a dropped connection ("Connection closed by …").
    stack.sshd.wait_log("Received disconnect from", 5)


def test_sigterm_waits_for_an_in_flight_call_while_ready_says_503(stack):
    nexus = stack.nexus(server={"shutdown_grace": "20s"})
    nexus.wait_ready()
    stack.mongo.proc.signal(signal.SIGSTOP)  # the next call hangs in the driver until SIGCONT
    outcome = {}
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    worker = threading.Thread(target=lambda: outcome.update(result=post(nexus, body, headers)))
    worker.start()
    try:
        nexus.wait_until(lambda: nexus.metric("nexus_mcp_in_flight") == 1, 10, "the call to be in flight")
        nexus.proc.signal(signal.SIGTERM)
        nexus.wait_until(lambda: nexus.status("/ready") == 503, 5, "/ready to turn 503 at once")
        assert nexus.get("/ready")[1].get("draining") is True
        assert nexus.proc.alive(), "the in-flight call is still being drained"
    finally:
        stack.mongo.proc.signal(signal.SIGCONT)
    worker.join(30)
    status, _, answer = outcome["result"]
    assert status == 200 and '"isError":false' in answer, answer
    assert nexus.proc.wait(20) == 0


def test_health_subcommand_probes_for_docker(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    ok = nexus.run("health", "--url", f"{nexus.url}/ready")
    assert ok.returncode == 0
    down = nexus.run("health", "--url", f"http://127.0.0.1:{free_port()}/health", "--timeout", "1s")
    assert down.returncode == 1 and "connect" in down.stderr


def test_without_ssh_it_connects_directly_for_local_development(stack, tmp_path):
    nexus = Nexus(tmp_path / "direct", {"ssh": {"enabled": False}, "mongo": {"uri": stack.mongo.uri}})
    nexus.wait_ready()
    assert set(nexus.get("/ready")[1]["checks"]) == {"mongodb"}
    assert not call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "notes"}).is_error
    nexus.stop()


def test_tunnel_max_connections_closes_extra_connections_at_once(stack):
    nexus = stack.nexus(tunnel={"max_connections": 3})
    nexus.wait_ready()
    # Hold 4 raw connections (the driver inside nexus-mcp holds some too): those over the cap are closed at once.
    sockets = [socket.create_connection(("127.0.0.1", nexus.forward_port), timeout=1) for _ in range(4)]
    closed = 0
    for s in sockets:
        try:
            closed += s.recv(1) == b""
        except TimeoutError:
            pass  # carried to MongoDB, which waits for the client to speak
        s.close()
    assert closed >= 1
    assert nexus.metric('nexus_tunnel_connections_refused_total{reason="limit"}') >= closed
