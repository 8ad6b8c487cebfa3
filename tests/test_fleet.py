"""A local fleet: three nexus-mcp replicas behind a real HAProxy that checks /ready like Kubernetes, a real
redis-server as the shared store, one sshd bastion and nx-27017 (issue 16).

- A shared bastion outage does not black the fleet out: after health.unready_window the replicas are ready as
  "degraded" and a tool call through the balancer gets nexus-mcp's explained error, not a balancer 503.
- One replica's broken path takes only that replica out of the pool (its peers report the tunnel healthy).
- A legacy session works on every replica and across a restart of the replica that created it.
"""

import asyncio
import json
import time

import pytest

from support import Stack, wait_until
from support.fleet import HAProxy, Relay, RedisServer
from support.mcpclient import acall, call_tool, session
from support.rawhttp import open_legacy_session, post, stateless_call

WINDOW = 2.0  # health.unready_window in these tests


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleet")
    stack = Stack(d)
    redis = RedisServer(d / "redis")
    relay = Relay(stack.sshd.port)  # replica n3 reaches the bastion through it
    with open(stack.known_hosts, "a") as f:
        f.write(stack.sshd.known_hosts_line().replace(f"]:{stack.sshd.port} ", f"]:{relay.port} "))
    sections = {
        "health": {"readiness": "fleet", "unready_window": f"{WINDOW}s", "peer_interval": "250ms"},
        "server.sessions": {"store": "redis", "redis_url": redis.url, "key_prefix": "fleet-test:"},
        "mcp": {"read_only": False},
    }
    replicas = {name: stack.nexus(name, **sections) for name in ("n1", "n2")}
    replicas["n3"] = stack.nexus("n3", ssh={"port": relay.port}, **sections)
    for n in replicas.values():
        n.wait_ready()
    lb = HAProxy(d / "haproxy", {name: n.url.rsplit(":", 1)[1] for name, n in replicas.items()})
    wait_until(lambda: lb.states() == {"n1": "UP", "n2": "UP", "n3": "UP"}, 10, "every replica UP in HAProxy")
    yield stack, replicas, lb, relay, redis
    lb.stop()
    relay.cut()
    stack.close()
    redis.stop()


def holds(predicate, seconds: float, why) -> None:
    """Asserts `predicate` at every poll for `seconds` (what must *not* happen, observed over time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), why()
        time.sleep(0.05)


def ok_calls(n) -> float:
    return sum(v for k, v in n.metrics().items()
               if k.startswith("nexus_mcp_tool_calls_total{") and 'outcome="ok"' in k)


def test_a_shared_bastion_outage_keeps_the_fleet_routable_with_the_explained_error(fleet):
    stack, replicas, lb, _, _ = fleet
    stack.sshd.kill()
    try:
        # Inside the window every replica is out of the pool (HAProxy answers 503 meanwhile)...
        wait_until(lambda: set(lb.states().values()) == {"DOWN"}, WINDOW, "every replica DOWN inside the window")
        # ...then back as degraded: no peer reports the tunnel healthy, so it is a shared outage.
        wait_until(lambda: set(lb.states().values()) == {"UP"}, 3 * WINDOW, "every replica UP again, degraded")
        for n in replicas.values():
            status, body = n.get("/ready")
            assert (status, body["status"], body["checks"]["sshTunnel"]["status"]) == (200, "degraded", "unhealthy")
            assert n.metric("nexus_degraded") == 1
        r = call_tool(lb.mcp_url, "list-databases", {})
        assert r.is_error and "SSH tunnel reconnecting" in r.text, r.text
    finally:
        stack.sshd.start()
    wait_until(lambda: all(n.get("/ready")[1]["status"] == "healthy" for n in replicas.values()), 15,
               "every replica healthy after the bastion returns")
    # (A replica that recovers later than its peers is briefly out of the pool: they report the tunnel healthy.)
    wait_until(lambda: set(lb.states().values()) == {"UP"}, 5, "every replica UP in HAProxy")
    assert all(n.metric("nexus_degraded") == 0 for n in replicas.values())
    assert not call_tool(lb.mcp_url, "list-databases", {}).is_error


def test_one_replicas_broken_path_takes_only_that_replica_out(fleet):
    _, replicas, lb, relay, _ = fleet
    relay.cut()
    try:
        wait_until(lambda: lb.states() == {"n1": "UP", "n2": "UP", "n3": "DOWN"}, 5, "n3 alone out of the pool")
        # Its peers report the tunnel healthy: it stays out past the window (the window is for shared outages).
        holds(lambda: lb.states()["n3"] == "DOWN", 1.5 * WINDOW,
              lambda: f"n3 rejoined although its peers are healthy: {replicas['n3'].get('/ready')}")
        status, body = replicas["n3"].get("/ready")
        assert status == 503
        assert body["readiness"]["reason"] == ("sshTunnel unhealthy here but healthy on 2 peer(s): out of the pool "
                                               "until it recovers")
        for _ in range(6):
            r = call_tool(lb.mcp_url, "list-databases", {})
            assert not r.is_error, r.text
    finally:
        relay.restore()
    wait_until(lambda: set(lb.states().values()) == {"UP"}, 15, "n3 back in the pool")


def test_a_legacy_session_works_on_every_replica_and_across_a_restart_of_its_creator(fleet):
    _, replicas, lb, _, _ = fleet
    before = {name: ok_calls(n) for name, n in replicas.items()}

    async def calls(c, n):
        for _ in range(n):
            r = await acall(c, "list-databases", {})
            assert not r.is_error, r.text

    async def run():
        async with session(lb.mcp_url, mode="legacy") as c:
            await calls(c, 50)
            served = {name: ok_calls(n) - before[name] for name, n in replicas.items()}
            assert sum(served.values()) == 50 and all(v > 0 for v in served.values()), served
            restored = {name for name, n in replicas.items() if "restored from the shared store" in n.logs()}
            creators = set(replicas) - restored
            assert len(creators) == 1, f"exactly one replica created the session, the others restored it: {restored}"
            creator = replicas[creators.pop()]
            creator.stop()
            creator.start()
            creator.wait_ready()
            wait_until(lambda: set(lb.states().values()) == {"UP"}, 10, "the restarted replica back in the pool")
            await calls(c, 6)
            assert "restored from the shared store" in creator.logs(), "the restarted creator served it again"

    asyncio.run(run())


def test_a_stateless_confirmation_answered_on_another_replica_is_asked_again(fleet):
    """Each replica seals confirmation states with its own key: an answer that lands elsewhere runs nothing and
    gets the question again (a fresh state), never an error or a hang."""
    stack, replicas, _, _, _ = fleet
    with stack.mongo.client() as c:
        c.scratch.fleet_confirm.insert_many([{"k": i} for i in range(3)])
        body, headers = stateless_call("delete-many", {"database": "scratch", "collection": "fleet_confirm",
                                                        "filter": {}})
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {}}
        status, _, text = post(replicas["n1"], body, headers)
        asked = json.loads(text)["result"]
        assert (status, asked["resultType"]) == (200, "input_required"), text
        body["params"]["inputResponses"] = {"confirm": {"action": "accept", "content": {"confirm": True}}}
        body["params"]["requestState"] = asked["requestState"]
        status, _, text = post(replicas["n2"], body, headers)
        again = json.loads(text)["result"]
        assert (status, again["resultType"]) == (200, "input_required"), text
        assert again["requestState"] != asked["requestState"]
        assert c.scratch.fleet_confirm.count_documents({}) == 3, "nothing deleted on the other replica"
        status, _, text = post(replicas["n1"], body, headers)
        assert json.loads(text)["result"]["structuredContent"]["deletedCount"] == 3


def test_with_redis_down_a_session_held_elsewhere_gets_a_clear_503_at_once(fleet):
    """Runs last: it stops the module's Redis. A replica's own sessions keep working."""
    _, replicas, _, _, redis = fleet
    n1, n2 = replicas["n1"], replicas["n2"]
    headers = open_legacy_session(n1)
    redis.stop()
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    started = time.monotonic()
    status, got, text = post(n2, listing, headers)
    took = time.monotonic() - started
    assert status == 503, text
    assert json.loads(text)["error"].startswith(
        "this MCP session was opened on another replica and cannot be resumed here: session store unavailable "
        "(Redis at 127.0.0.1:"), text
    assert took < 2.0, f"bounded by connect_timeout + command_timeout (1.5 s), took {took:.2f}s"
    assert n2.metric('nexus_http_rejected_total{reason="session_store"}') == 1
    status, _, text = post(n1, listing, headers)
    assert status == 200 and "list-databases" in text, "the replica holding the session still serves it"
