"""Named targets (issue 14): one nexus-mcp serving two databases behind two bastions, `prod` (read-only) and
`staging` (writable). Tools route by `connectionId`; each target heals, fails and is guarded on its own; probes,
metrics, the audit line and `check` carry the target's name."""

import asyncio
import json

import pytest

from support import call_tool, list_tools, read_resource, session, ts_call_tool, wait_until
from support.fleet import RedisServer
from support.mcpclient import acall
from support.targets import Targets

GUARDS = {"prod": {"read_only": True}, "staging": {"read_only": False, "confirm_destructive": False}}


@pytest.fixture
def targets(tmp_path):
    t = Targets(tmp_path)
    yield t
    t.close()


def env_of(nexus, connection: str | None) -> str:
    """The `name` of `nexus.env` in the database the call reached."""
    args = {"database": "nexus", "collection": "env", "filter": {"_id": "env"}}
    if connection is not None:
        args["connectionId"] = connection
    r = call_tool(nexus.mcp_url, "find", args)
    assert not r.is_error, r.text
    return r.structured["documents"][0]["name"]


def test_tools_route_by_connection_id_and_the_guards_are_per_target(targets):
    nexus = targets.nexus(mcp=GUARDS)
    nexus.wait_ready()
    assert env_of(nexus, "prod") == "prod"
    assert env_of(nexus, "staging") == "staging"

    insert = {"database": "nexus", "collection": "notes", "documents": [{"note": "hello"}]}
    r = call_tool(nexus.mcp_url, "insert-many", {**insert, "connectionId": "staging"})
    assert not r.is_error, r.text
    with targets["staging"].mongo.client() as c:
        assert c["nexus"]["notes"].count_documents({"note": "hello"}) == 1
    r = call_tool(nexus.mcp_url, "insert-many", {**insert, "connectionId": "prod"})
    assert r.is_error and r.text.startswith("QUERY_REJECTED") and "read-only" in r.text, r.text
    with targets["prod"].mongo.client() as c:
        assert c["nexus"]["notes"].count_documents({"note": "hello"}) == 0

    audit = [l for l in nexus.log_lines() if l.get("tool") == "insert-many" and "caller" in l]
    assert [(l["target"], l["outcome"]) for l in audit] == [("staging", "ok"), ("prod", "rejected")]
    metrics = nexus.metrics()
    calls = 'nexus_mcp_tool_calls_total{{outcome="{}",target="{}",tool="insert-many"}}'
    assert metrics[calls.format("ok", "staging")] == 1 and metrics[calls.format("rejected", "prod")] == 1
    assert metrics[calls.format("ok", "prod")] == 0 and metrics[calls.format("rejected", "staging")] == 0


def test_naming_no_or_an_unknown_target_is_a_clear_error(targets):
    nexus = targets.nexus()
    nexus.wait_ready()
    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders", "connectionId": "nope"})
    assert r.is_error and r.text.startswith("QUERY_REJECTED"), r.text
    assert 'unknown connectionId "nope"' in r.text and "prod, staging" in r.text, r.text
    audit = [l for l in nexus.log_lines() if l.get("tool") == "count" and "caller" in l]
    assert [(l["target"], l["outcome"]) for l in audit] == [("(none)", "rejected")], audit
    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders", "connectionId": "n" * 100_000})
    assert r.is_error and len(r.text) < 400, f"an unknown id is echoed bounded: {len(r.text)} characters"
    # Two targets and none named `default`: the call must say which.
    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders"})
    assert r.is_error and "connectionId" in r.text and "prod, staging" in r.text, r.text


def test_the_default_target_answers_calls_without_connection_id(targets, tmp_path):
    from support import Nexus
    prod, staging = targets["prod"].config(), targets["staging"].config()
    nexus = Nexus(tmp_path / "mixed", {"ssh": prod["ssh"], "mongo": prod["mongo"], "server": prod["server"],
                                       "targets.staging.ssh": staging["ssh"],
                                       "targets.staging.mongo": staging["mongo"]})
    targets.nexuses.append(nexus)
    nexus.wait_ready()
    assert env_of(nexus, None) == "prod"
    assert env_of(nexus, "default") == "prod"
    assert env_of(nexus, "staging") == "staging"


def test_tools_list_offers_the_targets_and_list_connections_shows_their_state(targets):
    nexus = targets.nexus(mcp=GUARDS, required={"prod": True, "staging": False})
    nexus.wait_ready()
    tools = {t.name: t for t in list_tools(nexus.mcp_url)}
    prop = tools["find"].input_schema["properties"]["connectionId"]
    assert prop["type"] == "string" and prop["enum"] == ["prod", "staging"], prop
    assert "list-connections" in tools

    targets["staging"].sshd.kill()
    nexus.wait_until(lambda: nexus.metrics().get('nexus_tunnel_up{target="staging"}') == 0, 15,
                     "staging's tunnel to be down")
    r = call_tool(nexus.mcp_url, "list-connections", {})
    assert not r.is_error, r.text
    rows = {c["connectionId"]: c for c in r.structured["connections"]}
    assert rows["prod"]["state"] == "ready" and rows["prod"]["required"] is True and rows["prod"]["readOnly"] is True
    assert rows["staging"]["state"] == "unavailable" and rows["staging"]["required"] is False, rows["staging"]
    assert "SSH" in rows["staging"]["why"], rows["staging"]
    status = json.loads(read_resource(nexus.mcp_url, "nexus://status"))
    assert {t["connectionId"]: t["state"] for t in status["connections"]} == {"prod": "ready",
                                                                            "staging": "unavailable"}


def test_a_lost_bastion_fails_only_its_own_target(targets):
    nexus = targets.nexus(required={"prod": True, "staging": False})
    nexus.wait_ready()
    targets["staging"].sshd.kill()
    nexus.wait_until(lambda: nexus.metrics().get('nexus_tunnel_up{target="staging"}') == 0, 15,
                     "staging's tunnel to be down")

    async def calls():
        async with session(nexus.mcp_url) as c:
            down = await acall(c, "count", {"database": "shop", "collection": "orders", "connectionId": "staging"})
            up = await acall(c, "count", {"database": "shop", "collection": "orders", "connectionId": "prod"})
            return down, up
    down, up = asyncio.run(calls())
    assert down.is_error and down.text.startswith("MONGO_UNREACHABLE"), down.text
    assert "connection staging" in down.text and "SSH" in down.text, down.text
    assert not up.is_error, up.text

    # staging is not required: still ready; the body names each target's state.
    status, body = nexus.get("/ready?verbose")
    assert status == 200, body
    assert body["targets"]["prod"]["status"] == "healthy", body
    assert body["targets"]["staging"]["status"] == "unhealthy", body
    assert body["targets"]["staging"]["required"] is False
    metrics = nexus.metrics()
    assert metrics['nexus_tunnel_up{target="prod"}'] == 1
    assert metrics['nexus_dependency_up{dependency="sshTunnel",target="staging"}'] == 0
    assert metrics['nexus_dependency_up{dependency="mongodb",target="prod"}'] == 1

    targets["staging"].sshd.start()
    nexus.wait_until(lambda: nexus.metrics().get('nexus_tunnel_up{target="staging"}') == 1, 20,
                     "staging's tunnel to heal")
    nexus.wait_until(lambda: nexus.get("/ready?verbose")[1]["targets"]["staging"]["status"] == "healthy", 20,
                     "staging to be healthy again")
    assert env_of(nexus, "staging") == "staging"


def test_ready_follows_the_required_targets(targets):
    nexus = targets.nexus(required={"prod": True, "staging": True})
    nexus.wait_ready()
    targets["staging"].sshd.kill()
    nexus.wait_unready()
    status, body = nexus.get("/ready")
    assert status == 503 and body["targets"]["staging"]["status"] == "unhealthy", body
    assert env_of(nexus, "prod") == "prod", "the healthy target still serves"


def test_an_optional_target_down_at_start_does_not_hold_startup(targets):
    targets["staging"].sshd.kill()
    nexus = targets.nexus(required={"prod": True, "staging": False})
    nexus.wait_ready()
    assert nexus.status("/startup") == 200
    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders", "connectionId": "staging"})
    assert r.is_error and "staging" in r.text and "starting" in r.text, r.text
    assert env_of(nexus, "prod") == "prod"


def test_check_prints_a_block_per_target_and_fails_only_for_required_ones(targets):
    targets["staging"].sshd.kill()
    optional = targets.nexus("optional", start=False, required={"prod": True, "staging": False}).run("check")
    assert optional.returncode == 0, optional.stdout + optional.stderr
    blocks = optional.stdout.split("\n\n")
    assert blocks[0].startswith("target prod") and blocks[1].startswith("target staging"), optional.stdout
    assert "tunnel   ok" in blocks[0] and "tunnel   FAILED" in blocks[1] and "SSH_UNREACHABLE" in blocks[1]

    required = targets.nexus("required", start=False, required={"prod": True, "staging": True}).run("check")
    assert required.returncode == 11, required.stdout + required.stderr


def test_target_configuration_errors_name_the_key(targets, tmp_path):
    from support import Nexus
    config = targets.config()
    del config["targets.staging.ssh"]["host"]
    result = Nexus(tmp_path / "nohost", config, start=False).run("check")
    assert result.returncode == 64 and "targets.staging.ssh.host" in result.stderr, result.stderr

    config = targets.config()
    long_name = "s" * 40
    config[f"targets.{long_name}.ssh"] = config.pop("targets.staging.ssh")
    config[f"targets.{long_name}.mongo"] = config.pop("targets.staging.mongo")
    result = Nexus(tmp_path / "badname", config, start=False).run("check")
    assert result.returncode == 64 and f"targets.{long_name}" in result.stderr, result.stderr


def test_the_typescript_sdk_routes_by_connection_id_and_lists_connections(targets):
    """The TypeScript SDK (Claude Desktop, Cursor, VS Code) validates arguments and structured content against the
    advertised schemas: connectionId and list-connections' output must pass it."""
    nexus = targets.nexus(mcp=GUARDS)
    nexus.wait_ready()
    r = ts_call_tool(nexus.mcp_url, "find", {"database": "nexus", "collection": "env", "filter": {"_id": "env"},
                                            "connectionId": "staging"})
    assert r.ok and not r.is_error, str(r)
    assert r.structured["documents"][0]["name"] == "staging"
    r = ts_call_tool(nexus.mcp_url, "list-connections", {})
    assert r.ok and not r.is_error, str(r)
    assert [c["connectionId"] for c in r.structured["connections"]] == ["prod", "staging"]
    r = ts_call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders", "connectionId": "nope"})
    assert r.ok and r.is_error and 'unknown connectionId "nope"' in r.text, str(r)


def test_without_named_targets_connection_id_is_accepted_and_ignored(targets):
    """The official server's clients send the id of their own `connect`; a single-database server answers as it
    always did, and advertises neither `connectionId` nor list-connections."""
    nexus = targets["prod"].nexus()
    nexus.wait_ready()
    assert env_of(nexus, "3f0c1a9e-any-id") == "prod"
    tools = {t.name: t for t in list_tools(nexus.mcp_url)}
    assert "list-connections" not in tools and "connectionId" not in tools["find"].input_schema["properties"]


def test_on_a_fleet_each_target_is_compared_with_the_same_target_on_the_peers(targets, tmp_path):
    """health.readiness = fleet with named targets (real redis-server): a replica's checks of a target are compared
    with the same target's on its peers. staging's bastion going down on both replicas is a shared outage — out of
    the pool for the window, then ready as degraded — although prod stays healthy on every peer (were the targets'
    checks published under one key, the peers would seem to report staging healthy and keep both out)."""
    redis = RedisServer(tmp_path / "redis")
    window = 2.0
    sections = {
        "health": {"readiness": "fleet", "unready_window": f"{window}s", "peer_interval": "250ms"},
        "server.sessions": {"store": "redis", "redis_url": redis.url, "key_prefix": "targets-fleet:"},
    }
    try:
        replicas = [targets.nexus(name, required={"prod": True, "staging": True}, **sections)
                    for name in ("n1", "n2")]
        for n in replicas:
            n.wait_ready()
        targets["staging"].sshd.kill()
        for n in replicas:
            n.wait_unready(timeout=window + 5)
        wait_until(lambda: all(n.get("/ready")[0] == 200 for n in replicas), 4 * window,
                   "both replicas ready again as degraded (a shared outage)")
        for n in replicas:
            status, body = n.get("/ready")
            assert (status, body["status"]) == (200, "degraded"), body
            assert body["targets"]["staging"]["status"] == "degraded", body
            assert body["targets"]["prod"]["status"] == "healthy", body
            assert n.metrics()['nexus_degraded{target="staging"}'] == 1
            assert n.metrics()['nexus_degraded{target="prod"}'] == 0
        assert env_of(replicas[0], "prod") == "prod", "the healthy target serves meanwhile"
    finally:
        redis.stop()
