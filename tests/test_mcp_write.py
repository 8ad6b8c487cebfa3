"""Write tools (read_only = false): inserts and updates run; destructive calls ask the user, in both modes."""

import pytest

from support import call_tool
from support.mcpclient import elicitation


@pytest.fixture(scope="module")
def rw(shared_stack):
    n = shared_stack.nexus("read-write", mcp={"read_only": False})
    n.wait_ready()
    return n


@pytest.fixture(scope="module")
def db(shared_stack):
    with shared_stack.mongo.client() as c:
        yield c.scratch


def test_insert_then_find_then_update(rw, db):
    r = call_tool(rw.mcp_url, "insert-many", {"database": "scratch", "collection": "tasks", "documents": [
        {"title": "write docs", "due": {"$date": "2026-12-01T00:00:00Z"}, "done": False},
        {"title": "ship", "done": False}]})
    assert not r.is_error, r.text
    assert r.structured["insertedCount"] == 2 and len(r.structured["insertedIds"]) == 2
    found = call_tool(rw.mcp_url, "find", {"database": "scratch", "collection": "tasks", "filter": {"title": "ship"}})
    assert found.structured["count"] == 1
    assert db.tasks.find_one({"title": "write docs"})["due"].year == 2026

    r = call_tool(rw.mcp_url, "update-many", {"database": "scratch", "collection": "tasks",
                                             "filter": {"title": "ship"}, "update": {"$set": {"done": True}}})
    assert not r.is_error, r.text
    assert (r.structured["matchedCount"], r.structured["modifiedCount"]) == (1, 1)
    assert db.tasks.find_one({"title": "ship"})["done"] == True  # noqa: E712 (nx-27017 stores $set true as 1)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_delete_asks_and_runs_only_when_the_user_accepts(rw, db, mode):
    coll = f"deletions_{mode}"
    db[coll].insert_many([{"k": i} for i in range(4)])
    args = {"database": "scratch", "collection": coll, "filter": {"k": {"$lt": 2}}}

    declined = elicitation("decline")
    r = call_tool(rw.mcp_url, "delete-many", args, mode=mode, elicit=declined)
    assert r.is_error and "declined" in r.text
    assert declined.asked and "Delete 2 documents" in declined.asked[0]
    assert db[coll].count_documents({}) == 4, "nothing deleted"

    accepted = elicitation("accept")
    r = call_tool(rw.mcp_url, "delete-many", args, mode=mode, elicit=accepted)
    assert not r.is_error, r.text
    assert r.structured["deletedCount"] == 2 and db[coll].count_documents({}) == 2


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_client_that_cannot_ask_is_refused_with_a_way_out(rw, db, mode):
    db.keep.insert_one({"x": 1})
    r = call_tool(rw.mcp_url, "drop-collection", {"database": "scratch", "collection": "keep"}, mode=mode)
    assert r.is_error
    assert "confirm_destructive" in r.text and "elicitation" in r.text
    assert "keep" in db.list_collection_names()


def test_update_without_filter_needs_confirmation(rw, db):
    db.flags.insert_many([{"on": False}, {"on": False}])
    asked = elicitation("accept")
    r = call_tool(rw.mcp_url, "update-many", {"database": "scratch", "collection": "flags",
                                             "update": {"$set": {"on": True}}}, elicit=asked)
    assert not r.is_error, r.text
    assert asked.asked and "EVERY document" in asked.asked[0]
    assert all(f["on"] == True for f in db.flags.find())  # noqa: E712


def test_indexes_and_collections_lifecycle(rw, db):
    ok = lambda r: (not r.is_error) or pytest.fail(r.text)  # noqa: E731
    yes = elicitation("accept")
    ok(call_tool(rw.mcp_url, "create-collection", {"database": "scratch", "collection": "life"}))
    ok(call_tool(rw.mcp_url, "create-index", {"database": "scratch", "collection": "life", "keys": {"a": 1}}))
    names = [i["name"] for i in db.life.list_indexes()]
    assert len(names) == 2
    idx = [n for n in names if n != "_id_"][0]
    ok(call_tool(rw.mcp_url, "drop-index", {"database": "scratch", "collection": "life", "indexName": idx},
                 elicit=yes))
    assert [i["name"] for i in db.life.list_indexes()] == ["_id_"]
    ok(call_tool(rw.mcp_url, "rename-collection", {"database": "scratch", "collection": "life",
                                                   "newName": "life2"}))
    assert "life2" in db.list_collection_names()
    ok(call_tool(rw.mcp_url, "drop-collection", {"database": "scratch", "collection": "life2"}, elicit=yes))
    assert "life2" not in db.list_collection_names()


def test_drop_database_asks_first(rw, shared_stack):
    with shared_stack.mongo.client() as c:
        c.doomed.t.insert_one({"x": 1})
        r = call_tool(rw.mcp_url, "drop-database", {"database": "doomed"}, elicit=elicitation("decline"))
        assert r.is_error and "doomed" in c.list_database_names()
        r = call_tool(rw.mcp_url, "drop-database", {"database": "doomed"}, elicit=elicitation("accept"))
        assert not r.is_error, r.text
        assert "doomed" not in c.list_database_names()


def test_a_person_may_take_longer_than_the_request_timeout_to_confirm(shared_stack, db):
    """server.request_timeout bounds the machine's work, not the person reading a confirmation (legacy session)."""
    n = shared_stack.nexus("slow-person", mcp={"read_only": False}, server={"request_timeout": "1s"})
    n.wait_ready()
    db.slow.insert_many([{"k": i} for i in range(3)])
    slow = elicitation("accept", think=2.5)
    r = call_tool(n.mcp_url, "delete-many", {"database": "scratch", "collection": "slow", "filter": {"k": 0}},
                  mode="legacy", elicit=slow)
    assert not r.is_error, r.text
    assert slow.asked and r.structured["deletedCount"] == 1
    assert db.slow.count_documents({}) == 2


def test_update_many_asks_when_its_filter_matches_more_than_the_threshold(rw, db):
    """Regression: `{"_id": {"$exists": true}}` updated every document without a prompt (only `{}` asked)."""
    db.broad.insert_many([{"k": i, "done": False} for i in range(3)])
    every = {"database": "scratch", "collection": "broad", "filter": {"_id": {"$exists": True}},
             "update": {"$set": {"done": True}}}
    r = call_tool(rw.mcp_url, "update-many", every, mode="legacy")
    assert r.is_error and "confirmation" in r.text, r.text
    assert db.broad.count_documents({"done": True}) == 0, "nothing updated without asking"

    asked = elicitation("accept")
    r = call_tool(rw.mcp_url, "update-many", every, mode="legacy", elicit=asked)
    assert not r.is_error, r.text
    assert "Update 3 documents" in asked.asked[0]
    assert r.structured["modifiedCount"] == 3

    one = {"database": "scratch", "collection": "broad", "filter": {"k": 1}, "update": {"$set": {"one": True}}}
    r = call_tool(rw.mcp_url, "update-many", one, mode="legacy")
    assert not r.is_error, "one matching document (mcp.confirm_update_above = 1) needs no prompt: " + r.text


def test_a_forged_stateless_confirmation_is_not_accepted(rw, db):
    """The accepted state of a stateless (2026-07-28) confirmation cannot be made up by the client."""
    import hashlib
    import json as _json
    from support.rawhttp import post, stateless_call

    db.forged.insert_many([{"k": i} for i in range(2)])
    args = {"database": "scratch", "collection": "forged", "filter": {}}
    body, headers = stateless_call("delete-many", args)
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {}}
    answer = {"confirm": {"action": "accept", "content": {"confirm": True}}}

    # The old unsealed binding (a bare SHA-256 of tool + arguments), and an arbitrary string.
    compact = _json.dumps(args, separators=(",", ":")).encode()
    old = "confirm-v1:" + hashlib.sha256(b"delete-many\0" + compact).hexdigest()
    for state in (old, "anything"):
        body["params"]["inputResponses"] = answer
        body["params"]["requestState"] = state
        status, _, text = post(rw, body, headers)
        assert status == 200, text
        result = _json.loads(text)["result"]
        assert result.get("resultType") == "input_required", result
        assert db.forged.count_documents({}) == 2, "a forged state deleted documents"

    # The real state, as issued, is accepted.
    del body["params"]["inputResponses"], body["params"]["requestState"]
    status, _, text = post(rw, body, headers)
    issued = _json.loads(text)["result"]
    assert issued["resultType"] == "input_required"
    body["params"]["inputResponses"] = answer
    body["params"]["requestState"] = issued["requestState"]
    status, _, text = post(rw, body, headers)
    assert _json.loads(text)["result"]["structuredContent"]["deletedCount"] == 2


def test_a_stateless_confirmation_crosses_processes_only_with_a_shared_key(stack, tmp_path):
    """Replicas seal confirmations with mcp.confirm_key_file: an answer issued by one is accepted by another; without
    the shared key the other asks again and says why."""
    import json as _json
    from support.rawhttp import post, stateless_call
    key = tmp_path / "confirm_key"
    key.write_text("k" * 40 + "\n")
    shared = {"read_only": False, "confirm_key_file": str(key)}
    a, b = stack.nexus("a", mcp=shared), stack.nexus("b", mcp=shared)
    c = stack.nexus("c", mcp={"read_only": False})
    for n in (a, b, c):
        n.wait_ready()
    with stack.mongo.client() as client:
        client.scratch.crossed.insert_many([{"k": i} for i in range(3)])
        body, headers = stateless_call("delete-many", {"database": "scratch", "collection": "crossed", "filter": {}})
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {}}
        asked = _json.loads(post(a, body, headers)[2])["result"]
        assert asked["resultType"] == "input_required"
        body["params"]["inputResponses"] = {"confirm": {"action": "accept", "content": {"confirm": True}}}
        body["params"]["requestState"] = asked["requestState"]

        again = _json.loads(post(c, body, headers)[2])["result"]
        assert again["resultType"] == "input_required"
        message = _json.dumps(again["inputRequests"])
        assert "Your earlier confirmation could not be used" in message and "mcp.confirm_key_file" in message
        assert client.scratch.crossed.count_documents({}) == 3

        done = _json.loads(post(b, body, headers)[2])["result"]
        assert done["structuredContent"]["deletedCount"] == 3
