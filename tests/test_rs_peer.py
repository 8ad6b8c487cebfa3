"""The emulated replica set (tests/support/rs_peer.py) against a real driver (pymongo) and raw wire messages.

The nexus-mcp replica-set tests trust this peer, so it is held to what a real replica set answers.
"""

import base64
import hashlib
import hmac
import os
import uuid

import pytest
from bson import Binary, Int64, ObjectId
from pymongo.errors import NotPrimaryError, OperationFailure, ServerSelectionTimeoutError
from pymongo.read_preferences import ReadPreference

from support import wait_until
from support.replset import ReplSet, TestCA


@pytest.fixture
def rs(tmp_path):
    with ReplSet(tmp_path) as r:
        yield r


def server_types(client, rs) -> list[str]:
    """pymongo's view of each member, in member order."""
    descriptions = client.topology_description.server_descriptions()
    return [descriptions[m].server_type_name if m in descriptions else "absent" for m in rs.members]


def lsid() -> dict:
    return {"id": Binary(uuid.uuid4().bytes, 4)}


def test_pymongo_discovers_the_members_and_the_primary_and_all_share_the_data(rs):
    with rs.client() as client:
        wait_until(lambda: server_types(client, rs) == ["RSPrimary", "RSSecondary", "RSSecondary"], 10,
                   "pymongo to discover the set")
        assert client.primary == rs.members[0]
        assert client.secondaries == set(rs.members[1:])
        primary = client.topology_description.server_descriptions()[rs.members[0]]
        assert (primary.replica_set_name, primary.election_id, primary.set_version) == \
            ("rs0", ObjectId("7fffffff0000000000000001"), 1)

        client.shop.items.insert_many([{"_id": i, "n": i * i} for i in range(5)])
        assert list(client.shop.items.find({"n": {"$gte": 4}}).sort("_id", 1)) == \
            [{"_id": 2, "n": 4}, {"_id": 3, "n": 9}, {"_id": 4, "n": 16}]
        on_secondary = client.shop.get_collection("items", read_preference=ReadPreference.SECONDARY)
        assert on_secondary.count_documents({}) == 5
    with rs.mongo.client() as direct:  # one real store behind every member
        assert direct.shop.items.count_documents({}) == 5

    stats = rs.stats()
    assert [m["state"] for m in stats["members"]] == ["PRIMARY", "SECONDARY", "SECONDARY"]
    for m in stats["members"]:
        assert m["hellos"] >= 1 and m["connections_accepted"] >= 1, m
        assert any(d.startswith("PyMongo") for d in m["drivers"]), m
    assert stats["members"][0]["writes_executed"] == 1  # one insert command (5 documents)
    assert stats["members"][1]["reads_refused"] + stats["members"][2]["reads_refused"] == 0


def test_hello_answers_as_a_replica_set_member_over_op_msg_and_op_query(rs):
    # The Rust driver's handshake: legacy name + helloOk over OP_MSG, with metadata, compression and auth offers.
    secondary = rs.raw_command(1, {"isMaster": 1, "helloOk": True, "client": {"driver": {"name": "mongo-rust-driver",
                               "version": "3.9.1"}}, "compression": ["zstd"], "saslSupportedMechs": "admin.nobody",
                               "speculativeAuthenticate": {"saslStart": 1}, "backpressure": "2"})
    assert {k: v for k, v in secondary.items() if k not in ("localTime", "lastWrite", "connectionId")} == {
        "helloOk": True, "ismaster": False, "secondary": True, "setName": "rs0", "setVersion": 1,
        "hosts": rs.hosts, "me": rs.hosts[1], "primary": rs.hosts[0], "readOnly": False,
        "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000,
        "logicalSessionTimeoutMinutes": 30, "minWireVersion": 0, "maxWireVersion": 21, "ok": 1.0,
    }
    assert set(secondary["lastWrite"]) == {"opTime", "lastWriteDate", "majorityOpTime", "majorityWriteDate"}

    primary = rs.raw_command(0, {"hello": 1})
    assert (primary["isWritablePrimary"], primary["secondary"], primary["me"], primary["electionId"]) == \
        (True, False, rs.hosts[0], ObjectId("7fffffff0000000000000001"))
    assert "ismaster" not in primary and "helloOk" not in primary and "topologyVersion" not in primary

    with rs.raw(2) as conn:  # pymongo's first handshake: OP_QUERY on admin.$cmd, answered with OP_REPLY
        legacy = conn.query({"ismaster": 1, "helloOk": True})
        assert (legacy["ismaster"], legacy["helloOk"], legacy["me"]) == (False, True, rs.hosts[2])
        assert conn.command({"ping": 1}) == {"ok": 1}  # relayed to nx-27017 on the same connection

    new_primary = rs.step_down(2)
    assert new_primary == 2
    assert rs.raw_command(2, {"hello": 1})["electionId"] == ObjectId("7fffffff0000000000000002")
    assert "electionId" not in rs.raw_command(0, {"hello": 1})

    rs.fail_next(1, "ping", "reply", reply={"ok": 0.0, "code": 91, "codeName": "ShutdownInProgress"})
    assert rs.raw_command(1, {"ping": 1}) == {"ok": 0.0, "code": 91, "codeName": "ShutdownInProgress"}
    assert rs.raw_command(1, {"ping": 1}) == {"ok": 1}


def test_a_secondary_refuses_writes_and_reads_without_a_secondary_read_preference(rs):
    assert rs.raw_command(0, {"insert": "c", "documents": [{"_id": "seen"}]}, "t")["ok"] == 1
    assert rs.raw_command(1, {"insert": "c", "documents": [{"_id": "lost"}]}, "t") == {
        "ok": 0.0, "errmsg": "not primary", "code": 10107, "codeName": "NotWritablePrimary"}
    retryable = {"update": "c", "updates": [{"q": {}, "u": {"$set": {"x": 1}}}], "lsid": lsid(),
                 "txnNumber": Int64(1)}
    assert rs.raw_command(2, retryable, "t") == {
        "ok": 0.0, "errmsg": "not primary", "code": 10107, "codeName": "NotWritablePrimary",
        "errorLabels": ["RetryableWriteError"]}
    assert rs.raw_command(1, {"drop": "c"}, "t")["code"] == 10107
    assert rs.raw_command(1, {"find": "c"}, "t") == {
        "ok": 0.0, "errmsg": "not primary and secondaryOk=false", "code": 13435,
        "codeName": "NotPrimaryNoSecondaryOk"}
    allowed = rs.raw_command(1, {"find": "c", "$readPreference": {"mode": "secondaryPreferred"}}, "t")
    assert allowed["cursor"]["firstBatch"] == [{"_id": "seen"}]

    with rs.direct_client(1) as client, pytest.raises(NotPrimaryError) as refused:
        client.t.c.insert_one({"_id": "direct"})
    assert refused.value.details["code"] == 10107
    with rs.mongo.client() as direct:
        assert [d["_id"] for d in direct.t.c.find()] == ["seen"]
    assert [m["writes_refused"] for m in rs.stats()["members"]] == [0, 3, 1]  # insert, drop, pymongo's insert


@pytest.mark.parametrize("close_connections", [False, True], ids=["connections-kept", "connections-closed"])
def test_after_a_step_down_writes_go_to_the_new_primary_with_nothing_lost_or_doubled(rs, close_connections):
    with rs.client() as client, rs.raw(0) as old_primary_conn:
        items = client.shop.items
        for i in range(5):
            items.insert_one({"_id": i})
        assert old_primary_conn.command({"ping": 1}) == {"ok": 1}
        assert rs.step_down(close_connections=close_connections) == 1
        items.insert_one({"_id": 5})  # first sent to the old primary (refused or dropped), retried on the new one
        items.update_many({}, {"$inc": {"v": 1}})
        assert client.primary == rs.members[1]
        assert list(items.find().sort("_id", 1)) == [{"_id": i, "v": 1} for i in range(6)]

        if close_connections:  # like mongod < 4.2: the old primary dropped its connections
            with pytest.raises(ConnectionError):
                old_primary_conn.command({"ping": 1})
        else:  # like mongod >= 4.2: connections stay, writes on them are refused
            assert old_primary_conn.command({"insert": "items", "documents": [{"_id": 9}]}, "shop")["code"] == 10107

    members = rs.stats()["members"]
    assert [m["writes_executed"] for m in members] == [5, 2, 0]
    with rs.mongo.client() as direct:
        assert direct.shop.items.count_documents({}) == 6


def test_a_retried_write_runs_once_even_on_another_member(rs):
    rs.raw_command(0, {"insert": "counters", "documents": [{"_id": "c", "n": 0}]}, "t")
    write = {"update": "counters", "updates": [{"q": {"_id": "c"}, "u": {"$inc": {"n": 1}}}], "lsid": lsid(),
             "txnNumber": Int64(7)}
    first = rs.raw_command(0, write, "t")
    assert first == {"ok": 1, "n": 1, "nModified": 1}
    assert rs.raw_command(0, write, "t") == first
    rs.step_down()
    assert rs.raw_command(1, write, "t") == first  # the retry record follows the set, as config.transactions does
    assert rs.raw_command(1, {**write, "txnNumber": Int64(8)}, "t")["nModified"] == 1  # a new write does run
    with rs.mongo.client() as direct:
        assert direct.t.counters.find_one() == {"_id": "c", "n": 2}
    assert rs.stats()["retries_deduplicated"] == 2

    # A driver's retry after losing the reply: executed, connection dropped, pymongo retries the same txnNumber.
    rs.fail_next(1, "update", "close_after")
    with rs.client() as client:
        client.t.counters.update_one({"_id": "c"}, {"$inc": {"n": 1}})
    with rs.mongo.client() as direct:
        assert direct.t.counters.find_one() == {"_id": "c", "n": 3}
    assert rs.stats()["retries_deduplicated"] == 3


def test_tls_with_the_right_ca_works_and_a_wrong_ca_or_a_wrong_name_is_refused(tmp_path):
    with ReplSet(tmp_path / "rs", tls=True, bad_cert_members=[2]) as rs:
        with rs.client() as client:
            client.t.c.insert_one({"_id": 1})
            assert client.t.c.find_one() == {"_id": 1}
            wait_until(lambda: server_types(client, rs) == ["RSPrimary", "RSSecondary", "Unknown"], 10,
                       "member 2 (certificate for another address) to stay Unknown")
            error = str(client.topology_description.server_descriptions()[rs.members[2]].error)
            assert "IP address mismatch" in error, error

        fast = {"serverSelectionTimeoutMS": 800}
        with rs.direct_client(2, **fast) as client, \
                pytest.raises(ServerSelectionTimeoutError, match="IP address mismatch"):
            client.admin.command("ping")
        with rs.direct_client(2, tlsAllowInvalidHostnames=True) as client:  # only the name is wrong
            assert client.admin.command("ping") == {"ok": 1}

        other_ca = TestCA(tmp_path / "other", "another CA")
        with rs.direct_client(0, tlsCAFile=other_ca.cert_file, **fast) as client, \
                pytest.raises(ServerSelectionTimeoutError, match="certificate verify failed"):
            client.admin.command("ping")
        with rs.direct_client(0, tls=False, **fast) as client, pytest.raises(ServerSelectionTimeoutError):
            client.admin.command("ping")


def test_tls_can_require_a_client_certificate(tmp_path):
    with ReplSet(tmp_path, members=1, tls=True, client_cert="required") as rs:
        with rs.direct_client(0, tlsCertificateKeyFile=rs.client_pem) as client:
            assert client.admin.command("ping") == {"ok": 1}
        with rs.direct_client(0, serverSelectionTimeoutMS=800) as client, \
                pytest.raises(ServerSelectionTimeoutError, match="connection closed|certificate required"):
            client.admin.command("ping")


@pytest.fixture
def scram_rs(tmp_path):
    with ReplSet(tmp_path, users={"alice": "s3cret", "bob": "pa\u00adss"}) as r:
        yield r


def test_scram_right_password_works_and_wrong_password_fails_with_18(scram_rs):
    rs = scram_rs
    with rs.client("alice", "s3cret") as client:
        client.t.c.insert_one({"_id": 1})
        assert client.t.c.find_one() == {"_id": 1}
    with rs.client("alice", "s3cret", authMechanism="SCRAM-SHA-1") as client:
        assert client.t.c.count_documents({}) == 1
    with rs.client("bob", "pass") as client:  # SASLprep maps the soft hyphen in bob's password to nothing
        assert client.t.c.count_documents({}) == 1

    with rs.client("alice", "wrong") as client, pytest.raises(OperationFailure) as failed:
        client.t.c.find_one()
    assert (failed.value.code, failed.value.details["codeName"]) == (18, "AuthenticationFailed")
    with rs.client("mallory", "s3cret") as client, pytest.raises(OperationFailure) as unknown:
        client.t.c.find_one()
    assert unknown.value.code == 18
    with rs.client() as client, pytest.raises(OperationFailure) as anonymous:
        client.t.c.find_one()
    assert (anonymous.value.code, anonymous.value.details["codeName"]) == (13, "Unauthorized")

    assert rs.raw_command(0, {"hello": 1, "saslSupportedMechs": "admin.alice"})["saslSupportedMechs"] == \
        ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert "saslSupportedMechs" not in rs.raw_command(0, {"hello": 1, "saslSupportedMechs": "admin.nobody"})
    members = rs.stats()["members"]
    assert [(m["auth_succeeded"], m["auth_failed"]) for m in members] == [(3, 2), (0, 0), (0, 0)]
    assert members[0]["unauthorized"] >= 1


def test_scram_sha_256_without_skip_empty_exchange_takes_the_final_empty_round(scram_rs):
    """Hand-made client (RFC 7677) without options.skipEmptyExchange, as older drivers talk."""
    with scram_rs.raw(0) as conn:
        assert conn.command({"find": "c"}, "t")["code"] == 13
        client_nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n=alice,r={client_nonce}"
        start = conn.command({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": f"n,,{first_bare}".encode()})
        assert (start["ok"], start["done"], start["conversationId"]) == (1.0, False, 1)
        server_first = start["payload"].decode()
        attrs = dict(part.split("=", 1) for part in server_first.split(","))
        assert attrs["r"].startswith(client_nonce) and int(attrs["i"]) == 4096
        salted = hashlib.pbkdf2_hmac("sha256", b"s3cret", base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
        final = conn.command({"saslContinue": 1, "conversationId": 1,
                              "payload": f"{without_proof},p={proof}".encode()})
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        expected = base64.b64encode(hmac.new(server_key, auth_message, "sha256").digest()).decode()
        assert (final["done"], final["payload"].decode()) == (False, f"v={expected}")
        assert conn.command({"find": "c"}, "t")["code"] == 13  # not yet: the empty round is still due
        done = conn.command({"saslContinue": 1, "conversationId": 1, "payload": b""})
        assert (done["ok"], done["done"], done["payload"]) == (1.0, True, b"")
        assert conn.command({"find": "c"}, "t")["ok"] == 1


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_an_unreachable_member_is_unknown_while_the_others_serve(rs, mode):
    with rs.client(connectTimeoutMS=1000, socketTimeoutMS=1000) as client:
        wait_until(lambda: server_types(client, rs) == ["RSPrimary", "RSSecondary", "RSSecondary"], 10,
                   "pymongo to discover the set")
        rs.isolate(2, mode)
        wait_until(lambda: server_types(client, rs) == ["RSPrimary", "RSSecondary", "Unknown"], 10,
                   "member 2 to become Unknown")
        if mode == "refuse":
            with pytest.raises(ConnectionRefusedError):
                rs.raw(2)
        else:
            with rs.raw(2, timeout=0.3) as conn, pytest.raises(TimeoutError):
                conn.command({"hello": 1})
        client.t.c.insert_one({"_id": 1})
        secondary = client.t.get_collection("c", read_preference=ReadPreference.SECONDARY)
        assert secondary.find_one() == {"_id": 1}

        rs.isolate(0, mode)  # the primary goes too; the harness elects the next reachable member
        assert rs.step_down() == 1
        client.t.c.insert_one({"_id": 2})
        assert client.t.c.count_documents({}) == 2
        assert server_types(client, rs) == ["Unknown", "RSPrimary", "Unknown"]

        rs.restore(0)
        rs.restore(2)
        wait_until(lambda: server_types(client, rs) == ["RSSecondary", "RSPrimary", "RSSecondary"], 10,
                   "members 0 and 2 to come back as secondaries")
    assert [m["reachability"] for m in rs.stats()["members"]] == ["up", "up", "up"]
