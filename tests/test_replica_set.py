"""Replica sets behind the bastion: the URI a user would give mongosh on the bastion works unchanged, every member is
reached through the SSH session (the SOCKS route), and failover, healing, TLS and SCRAM behave as users expect.

The members are the emulated replica set of tests/support/rs_peer.py (3 members on 127.0.0.2-4 over one
nx-27017 store); the bastion is a real OpenSSH sshd; the client is the Python `mcp` SDK.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from support import Sshd, call_tool, session
from support.mcpclient import acall
from support.replset import ReplSet, TestCA


@pytest.fixture
def rs(stack, tmp_path):
    """A 3-member set over the stack's store (so the sample data is there)."""
    with ReplSet(tmp_path / "rs", mongo=stack.mongo) as r:
        yield r


def topology(nexus) -> dict:
    return nexus.get("/ready?verbose")[1]["checks"]["mongodb"]["topology"]


def wait_members(nexus, rs, kinds: list[str], timeout: float = 10) -> dict:
    """Waits until /ready?verbose lists the members with these types (in member order)."""
    def seen():
        t = nexus.get("/ready?verbose")[1]["checks"]["mongodb"].get("topology")
        by_address = {m["address"]: m["type"] for m in (t or {}).get("members", [])}
        return t if [by_address.get(h) for h in rs.hosts] == kinds else None
    return nexus.wait_until(seen, timeout, f"members {kinds}")


def test_a_replica_set_uri_works_unchanged_and_every_member_is_reached_through_the_bastion(stack, rs):
    nexus = stack.nexus(mongo={"uri": rs.uri()})
    nexus.wait_ready()
    t = wait_members(nexus, rs, ["primary", "secondary", "secondary"])
    assert t["setName"] == "rs0"
    assert t["primary"] == rs.hosts[0]
    assert all(m["roundTripMs"] >= 0 for m in t["members"])
    assert nexus.metric('nexus_mongo_servers{type="primary"}') == 1
    assert nexus.metric('nexus_mongo_servers{type="secondary"}') == 2

    found = call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "orders",
                                              "filter": {"status": "paid"}, "limit": 3})
    assert not found.is_error, found.text
    assert len(found.structured["documents"]) == 3
    agg = call_tool(nexus.mcp_url, "aggregate", {"database": "shop", "collection": "orders", "pipeline": [
        {"$group": {"_id": "$status", "n": {"$sum": 1}}}]})
    assert not agg.is_error, agg.text
    with stack.mongo.client() as c:
        expected = {d["_id"]: d["n"] for d in c.shop.orders.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
    assert {d["_id"]: d["n"] for d in agg.structured["documents"]} == expected

    # Every member was dialled by nexus-mcp's driver, by name, over channels of the SSH session.
    members = rs.stats()["members"]
    assert [m["apps"].get("nexus-mcp", 0) > 0 for m in members] == [True, True, True], members
    assert nexus.metric('nexus_tunnel_channels_opened_total{route="socks"}') >= 3
    assert nexus.metric('nexus_tunnel_channels_opened_total{route="forward"}') == 0
    log = stack.sshd.log_text()
    # The SOCKS route's handshake is authenticated: nothing was refused on the way.
    assert nexus.metric('nexus_tunnel_connections_refused_total{reason="socks_handshake"}') == 0
    assert "denied" not in log

    check = nexus.run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"replica set rs0: primary {rs.hosts[0]}; members {rs.hosts[0]} primary, {rs.hosts[1]} secondary, " \
           f"{rs.hosts[2]} secondary" in check.stdout, check.stdout


def test_a_uri_naming_one_member_keeps_the_forward_and_says_how_to_follow_the_set(stack, rs):
    nexus = stack.nexus(mongo={"uri": f"mongodb://{rs.hosts[0]}/"})
    nexus.wait_ready()
    assert nexus.metric('nexus_tunnel_channels_opened_total{route="forward"}') >= 1
    assert nexus.metric('nexus_tunnel_channels_opened_total{route="socks"}') == 0
    hint = "the server behind the fixed forward is a member of replica set rs0; add replicaSet=rs0 to mongo.uri"
    warned = [line for line in nexus.log_lines() if line.get("message") == "mongo.uri reaches one member of a replica set"]
    assert len(warned) == 1 and warned[0]["hint"].startswith(hint), warned
    check = nexus.run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "; hint: " + hint in check.stdout, check.stdout


def test_a_member_the_bastion_cannot_reach_is_unknown_and_the_set_still_serves(stack, rs, tmp_path):
    # This bastion forwards to members 0 and 1 only; member 2 is up (pymongo reaches it directly) but not from
    # the bastion — so nexus-mcp, which reaches members only through the bastion, must see it as unknown.
    bastion = Sshd(tmp_path / "sshd-permit", authorized_keys=[stack.key], permit_open=rs.hosts[:2])
    (tmp_path / "kh").write_text(bastion.known_hosts_line())
    try:
        nexus = stack.nexus(ssh={"port": bastion.port, "known_hosts": str(tmp_path / "kh")},
                            mongo={"uri": rs.uri()})
        nexus.wait_ready()
        t = wait_members(nexus, rs, ["primary", "secondary", "unknown"])
        unknown = [m for m in t["members"] if m["address"] == rs.hosts[2]][0]
        assert unknown["error"] == "unreachable"
        with rs.direct_client(2) as direct:
            assert direct.admin.command("ping")["ok"] == 1
        r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders"})
        assert not r.is_error, r.text
        host, port = rs.members[2]
        assert f"to connect to host {host} port {port}, but the request was denied" in bastion.log_text()
    finally:
        bastion.stop()


def test_after_a_step_down_writes_go_to_the_new_primary_without_a_restart(stack, rs):
    nexus = stack.nexus(mongo={"uri": rs.uri()}, mcp={"read_only": False})
    nexus.wait_ready()
    pid = nexus.proc.pid

    async def scenario():
        async with session(nexus.mcp_url) as c:
            async def insert(batch: int):
                started = time.monotonic()
                r = await acall(c, "insert-many", {"database": "failover", "collection": "events", "documents": [
                    {"batch": batch, "n": i} for i in range(5)]})
                return r, time.monotonic() - started
            r, _ = await insert(0)
            assert not r.is_error, r.text
            took = []
            for batch, to in ((1, 1), (2, 2), (3, 0)):
                assert rs.step_down(to=to) == to
                r, seconds = await insert(batch)
                assert not r.is_error, f"insert after a step-down to member {to}: {r.text}"
                took.append(seconds)
            return took
    took = asyncio.run(scenario())
    assert max(took) < 5, took

    with stack.mongo.client() as c:
        docs = list(c.failover.events.find({}, {"_id": 0, "batch": 1, "n": 1}))
    assert sorted((d["batch"], d["n"]) for d in docs) == [(b, i) for b in range(4) for i in range(5)]
    assert nexus.proc.pid == pid and nexus.proc.alive()
    t = wait_members(nexus, rs, ["primary", "secondary", "secondary"])
    assert t["primary"] == rs.hosts[0]
    assert nexus.metric("nexus_mongo_primary_changes_total") == 3


def test_a_killed_bastion_heals_mid_workload_with_nothing_lost_or_doubled(stack, rs):
    nexus = stack.nexus(mongo={"uri": rs.uri()}, mcp={"read_only": False})
    nexus.wait_ready()
    outcomes: dict[int, str] = {}

    async def workload():
        async with session(nexus.mcp_url) as c:
            seq = 0
            for phase in ("before", "outage", "after"):
                if phase == "outage":
                    stack.sshd.kill()
                    await asyncio.to_thread(nexus.wait_unready, 5)
                if phase == "after":
                    stack.sshd.start()
                    await asyncio.to_thread(nexus.wait_ready, 15)
                for _ in range(10):
                    seq += 1
                    r = await acall(c, "insert-many", {"database": "heal", "collection": "log",
                                                       "documents": [{"seq": seq}]})
                    outcomes[seq] = "ok" if not r.is_error else r.text.split(":", 1)[0]
    asyncio.run(workload())

    ok = {s for s, o in outcomes.items() if o == "ok"}
    assert ok >= set(range(1, 11)) | set(range(21, 31)), outcomes
    # While the tunnel is down, calls fail at once with the explained class; nothing reaches MongoDB.
    assert {outcomes[s] for s in range(11, 21)} == {"MONGO_UNREACHABLE"}, outcomes
    with stack.mongo.client() as c:
        seqs = [d["seq"] for d in c.heal.log.find({}, {"_id": 0, "seq": 1})]
    assert sorted(seqs) == sorted(ok), "each acknowledged insert is there once, and nothing else"
    assert nexus.metric("nexus_tunnel_reconnects_total") >= 1


def test_tls_with_the_members_real_names_and_refusals_for_a_wrong_ca_or_name(stack, tmp_path):
    with ReplSet(tmp_path / "rs", mongo=stack.mongo, tls=True) as rs:
        nexus = stack.nexus(mongo={"uri": rs.uri()})
        nexus.wait_ready()
        wait_members(nexus, rs, ["primary", "secondary", "secondary"])
        r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders"})
        assert not r.is_error, r.text

        other_ca = TestCA(tmp_path / "other-ca", "another CA")
        wrong_ca = stack.nexus("wrong-ca", mongo={"uri": rs.uri(tlsCAFile=str(other_ca.cert_file))})
        detail = wait_startup_error(wrong_ca)
        assert detail.startswith("MONGO_UNREACHABLE"), detail
        assert "invalid peer certificate: UnknownIssuer" in detail, detail

    with ReplSet(tmp_path / "rs-bad", mongo=stack.mongo, tls=True, bad_cert_members=(0, 1, 2)) as bad:
        mismatch = stack.nexus("name-mismatch", mongo={"uri": bad.uri()})
        detail = wait_startup_error(mismatch)
        assert detail.startswith("MONGO_UNREACHABLE"), detail
        assert f'certificate not valid for name "{bad.members[0][0]}"' in detail, detail


def wait_startup_error(nexus, timeout: float = 15) -> str:
    def error():
        status, body = nexus.get("/ready?verbose")
        assert status == 503, body
        return body.get("startupError")
    return nexus.wait_until(error, timeout, "a startup error in /ready?verbose")


def test_scram_right_password_is_ready_and_a_wrong_one_is_mongo_auth_failed_without_leaking(stack, tmp_path):
    with ReplSet(tmp_path / "rs", mongo=stack.mongo, users={"app": "s3cret-Pw"}) as rs:
        good = stack.nexus("good", mongo={"uri": rs.uri("app", "s3cret-Pw", authSource="admin")})
        good.wait_ready()
        r = call_tool(good.mcp_url, "count", {"database": "shop", "collection": "orders"})
        assert not r.is_error, r.text
        assert sum(m["auth_succeeded"] for m in rs.stats()["members"]) >= 1

        bad = stack.nexus("bad", mongo={"uri": rs.uri("app", "wr0ng-Pw", authSource="admin")})
        detail = wait_startup_error(bad)
        assert detail.startswith("MONGO_AUTH_FAILED"), detail
        status, body = bad.get("/ready")
        assert (status, body["checks"]["mongodb"]["error"]) == (503, "authentication failed")
        r = call_tool(bad.mcp_url, "count", {"database": "shop", "collection": "orders"})
        assert r.is_error and "MONGO_AUTH_FAILED" in r.text, r.text
        check = bad.run("check")
        assert check.returncode == 12, check.stdout + check.stderr
        assert "MONGO_AUTH_FAILED" in check.stdout
        surfaces = [bad.logs(), str(bad.get("/ready?verbose")[1]), str(bad.get("/startup?verbose")[1]),
                    str(bad.get("/metrics")[1]), check.stdout, check.stderr, r.text]
        for text in surfaces:
            assert "wr0ng-Pw" not in text and "s3cret-Pw" not in text


def test_an_unresolvable_srv_name_stops_with_the_fix(stack):
    nexus = stack.nexus(start=False, mongo={"uri": "mongodb+srv://cluster0.nexus-test.invalid/shop"})
    started = time.monotonic()
    done = nexus.run("serve", timeout=60)
    assert done.returncode == 64, done.stdout + done.stderr
    assert "mongodb+srv://" in done.stderr and "write the seed list instead" in done.stderr, done.stderr
    assert time.monotonic() - started < 30


def test_the_socks_route_serves_only_this_process(stack, rs):
    """Another local process cannot use the route: it listens on 127.0.0.1 and wants the per-process password."""
    import re
    import socket
    nexus = stack.nexus(mongo={"uri": rs.uri()})
    nexus.wait_ready()
    up = [line for line in nexus.log_lines() if line.get("message") == "tunnel up"][0]
    host, port = re.search(r"socks5 (127\.0\.0\.1):(\d+)", up["route"]).groups()
    target = rs.members[0]

    def attempt(greeting: bytes, auth: bytes | None) -> bytes:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(greeting)
            chosen = s.recv(2)
            if auth is None or chosen != b"\x05\x02":
                return chosen
            s.sendall(auth)
            answer = s.recv(2)
            if answer != b"\x01\x00":
                return answer
            addr = socket.inet_aton(target[0])
            s.sendall(b"\x05\x01\x00\x01" + addr + target[1].to_bytes(2, "big"))
            return s.recv(2)

    assert attempt(b"\x05\x01\x00", None) == b"\x05\xff", "no-authentication is not offered"
    user, password = b"nexus-mcp", b"guess"
    refused = attempt(b"\x05\x01\x02", b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
    assert refused[:1] == b"\x01" and refused[1:] != b"\x00", refused
    assert nexus.metric('nexus_tunnel_connections_refused_total{reason="socks_handshake"}') == 2
    assert "guess" not in nexus.logs()
