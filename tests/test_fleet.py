"""A local fleet: three nexus-mcp replicas behind a real HAProxy that checks /ready like Kubernetes, a real
redis-server as the shared store, one sshd bastion and nx-27017 (issue 16).

- A shared bastion outage does not black the fleet out: after health.unready_window the replicas are ready as
  "degraded" and a tool call through the balancer gets nexus-mcp's explained error, not a balancer 503.
- One replica's broken path takes only that replica out of the pool (its peers report the tunnel healthy).
- A legacy session works on every replica and across a restart of the replica that created it.
- A legacy session's answer to a confirmation that lands on another replica is relayed to the replica that asked
  (through Redis), also when two replicas ask in the same session at once.
"""

import asyncio
import json
import time

import pytest
from mcp import types

from support import Stack, wait_until
from support.fleet import HAProxy, Relay, RedisServer, Routes
from support.mcpclient import acall, call_tool, elicitation, session
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


def relayed(n) -> dict[str, float]:
    """`nexus_sessions_relayed_total` by outcome."""
    return {k.split('outcome="')[1].rstrip('"}'): v for k, v in n.metrics().items()
            if k.startswith("nexus_sessions_relayed_total{")}


def deltas(before: dict, after: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_a_legacy_confirmation_answered_on_another_replica_runs_once_and_promptly(fleet):
    """The session and its question live on n1; the client's answer is posted to n2, which relays it to n1 (rmcp
    on n2 has no such question: without the relay n1 waits CONFIRM_TIMEOUT, 300 s)."""
    stack, replicas, _, _, _ = fleet
    n1, n2 = replicas["n1"], replicas["n2"]
    routes = Routes(lambda m: n2.url if "method" not in m else None)
    asked = elicitation("accept")
    update = {"database": "scratch", "collection": "fleet_relay", "filter": {}, "update": {"$inc": {"n": 1}}}
    with stack.mongo.client() as c:
        c.scratch.fleet_relay.insert_many([{"k": i, "n": 0} for i in range(3)])
        before = {name: relayed(n) for name, n in replicas.items()}

        async def run():
            async with session(n1.mcp_url, mode="legacy", elicit=asked, transport=routes) as client:
                started = time.monotonic()
                r = await asyncio.wait_for(acall(client, "update-many", update), 20)
                return r, time.monotonic() - started

        r, took = asyncio.run(run())
        assert not r.is_error, r.text
        assert asked.asked and "Update EVERY document in scratch.fleet_relay" in asked.asked[0]
        assert [url for url, _ in routes.answers] == [n2.url.removeprefix("http://")], routes.answers
        assert took < 10, f"the answer reached n1 through the relay, not after a timeout: {took:.1f}s"
        assert r.structured["modifiedCount"] == 3
        assert sorted(d["n"] for d in c.scratch.fleet_relay.find()) == [1, 1, 1], "updated exactly once"
    after = {name: relayed(n) for name, n in replicas.items()}
    assert {name: deltas(before[name], after[name]) for name in replicas} == {
        "n1": {"delivered": 1}, "n2": {"sent": 1}, "n3": {}}


def test_two_replicas_asking_in_one_session_get_their_own_answers_relayed(fleet):
    """One session, two questions at once: an update asked by n1 (accepted) and a delete asked by n2 (declined),
    both answered through n3. rmcp numbers each replica's questions from 0, so the answers are told apart only by
    the replica's tag in the id: a mix-up would run the delete or decline the update."""
    stack, replicas, _, _, _ = fleet
    n1, n2, n3 = replicas["n1"], replicas["n2"], replicas["n3"]

    def route(m):
        if "method" not in m:
            return n3.url
        if m["method"] == "tools/call":
            return {"update-many": n1.url, "delete-many": n2.url}[m["params"]["name"]]
        return None

    routes = Routes(route)
    questions: list[str] = []
    both = asyncio.Event()

    async def answer(ctx, params):
        # Answer only once both questions are pending (so both replicas wait at the same time).
        questions.append(params.message)
        if len(questions) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 20)
        if params.message.startswith("Update"):
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    update = {"database": "scratch", "collection": "fleet_cross_u", "filter": {}, "update": {"$inc": {"n": 1}}}
    delete = {"database": "scratch", "collection": "fleet_cross_d", "filter": {}}
    with stack.mongo.client() as c:
        c.scratch.fleet_cross_u.insert_many([{"k": i, "n": 0} for i in range(2)])
        c.scratch.fleet_cross_d.insert_many([{"k": i} for i in range(2)])
        before = {name: relayed(n) for name, n in replicas.items()}

        async def run():
            async with session(n1.mcp_url, mode="legacy", elicit=answer, transport=routes) as client:
                started = time.monotonic()
                rs = await asyncio.wait_for(asyncio.gather(acall(client, "update-many", update),
                                                           acall(client, "delete-many", delete)), 20)
                return rs, time.monotonic() - started

        (updated, deleted), took = asyncio.run(run())
        assert not updated.is_error, updated.text
        assert deleted.is_error and "declined" in deleted.text, deleted.text
        assert sorted(questions) == ["Delete EVERY document in scratch.fleet_cross_d?",
                                     "Update EVERY document in scratch.fleet_cross_u (2 documents, no filter)?"]
        assert {url for url, _ in routes.answers} == {n3.url.removeprefix("http://")}, routes.answers
        assert len({i for _, i in routes.answers}) == 2, f"two distinct question ids: {routes.answers}"
        assert took < 10, f"both answers relayed promptly: {took:.1f}s"
        assert sorted(d["n"] for d in c.scratch.fleet_cross_u.find()) == [1, 1], "updated exactly once"
        assert c.scratch.fleet_cross_d.count_documents({}) == 2, "the declined delete wrote nothing"
    after = {name: relayed(n) for name, n in replicas.items()}
    assert {name: deltas(before[name], after[name]) for name in replicas} == {
        "n1": {"delivered": 1}, "n2": {"delivered": 1}, "n3": {"sent": 2}}


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
