"""nexus-mcp through the TypeScript MCP SDK (`@modelcontextprotocol/sdk`, pinned in tests/node), the client inside
Claude Desktop, Cursor, VS Code and the MCP Inspector. Like those hosts, the client lists the tools first, so its
`callTool` checks every `structuredContent` against the tool's `outputSchema` and throws when it does not match:
a tool error must arrive as a readable `isError` result, not as the SDK's schema-validation exception."""

import json

import mcp
import pytest

from support import Nexus, ts_call_tool, ts_list_tools, ts_read_resource, ts_run
from support.nexus import BINARY
from support.tsclient import tool_call

READ_TOOLS = {"list-databases", "list-collections", "find", "aggregate", "count", "distinct", "collection-schema",
              "collection-indexes", "collection-storage-size", "db-stats", "explain"}
WRITE_TOOLS = {"insert-many", "update-many", "delete-many", "create-index", "drop-index", "create-collection",
               "rename-collection", "drop-collection", "drop-database"}

PAID_FIND = {"database": "shop", "collection": "orders", "filter": {"status": "paid"},
             "projection": {"orderNo": 1, "status": 1, "total": 1, "_id": 0}, "sort": {"orderNo": -1}, "limit": 5}
BY_STATUS = [{"$match": {"status": {"$in": ["paid", "shipped"]}}},
             {"$group": {"_id": "$status", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]


@pytest.fixture(scope="module")
def nexus(shared_stack):
    n = shared_stack.nexus("ts-read-only")
    n.wait_ready()
    return n


@pytest.fixture(scope="module")
def rw(shared_stack):
    n = shared_stack.nexus("ts-read-write", mcp={"read_only": False})
    n.wait_ready()
    return n


def succeeded(r) -> dict:
    """The structured content of a call that the SDK returned (did not throw) and that is not a tool error."""
    assert r.ok, f"the TS SDK threw instead of returning the result: {r.error}"
    assert not r.is_error, f"the tool answered with an error: {r.text}"
    assert isinstance(r.structured, dict), f"no structuredContent: {r}"
    return r.structured


def tool_error(r) -> str:
    """The text of a tool error that the SDK handed over intact (`isError: true`, no exception)."""
    assert r.ok, f"the TS SDK threw instead of returning the tool error: {r.error}"
    assert r.is_error, f"the call did not fail: {r}"
    return r.text


# --- discovery ----------------------------------------------------------------------------------------------------

def test_tools_list_over_a_legacy_http_session(nexus):
    run = ts_run(nexus.mcp_url, [{"method": "tools/list"}])
    assert run.protocol_version.startswith("2025-"), run.protocol_version
    assert run.session_id, "the TS SDK 1.x keeps an Mcp-Session-Id"
    assert run.server_info["name"] == "nexus-mcp"
    listed = run.results[0]
    assert listed.ok, listed.error
    tools = {t["name"]: t for t in listed.result["tools"]}
    assert set(tools) == READ_TOOLS
    for t in tools.values():
        assert t["annotations"]["readOnlyHint"] is True, t["name"]
        assert t["inputSchema"]["type"] == "object", t["name"]
        assert t["outputSchema"]["type"] == "object", t["name"]
    assert {"filter", "projection", "sort", "limit", "skip"} <= set(tools["find"]["inputSchema"]["properties"])


def test_status_resource(nexus):
    status = json.loads(ts_read_resource(nexus.mcp_url, "nexus://status"))
    assert status["ready"] is True
    assert status["checks"]["sshTunnel"]["status"] == "healthy"


def test_listed_input_schemas_give_every_property_one_string_type(rw):
    """Form-based hosts (the MCP Inspector) pick the input widget and the value conversion from `type`: a list such
    as ["integer", "null"] or a missing `type` makes them send what the user typed as a string."""
    tools = ts_list_tools(rw.mcp_url)
    assert {t["name"] for t in tools} == READ_TOOLS | WRITE_TOOLS
    offenders = {f"{t['name']}.{name}": prop
                 for t in tools for name, prop in t["inputSchema"].get("properties", {}).items()
                 if not isinstance(prop.get("type"), str)}
    assert offenders == {}, "properties without a single string `type`:\n" + "\n".join(
        f"  {k}: {json.dumps(v)}" for k, v in sorted(offenders.items()))


# --- every read tool, with number / object / array arguments ------------------------------------------------------

def test_find_with_filter_projection_sort_and_limit(nexus, mongo):
    docs = succeeded(ts_call_tool(nexus.mcp_url, "find", PAID_FIND))["documents"]
    expected = list(mongo.shop.orders.find({"status": "paid"}, {"orderNo": 1, "status": 1, "total": 1, "_id": 0})
                    .sort("orderNo", -1).limit(5))
    assert docs == expected
    assert len(docs) == 5


def test_aggregate_with_a_pipeline(nexus, mongo):
    docs = succeeded(ts_call_tool(nexus.mcp_url, "aggregate",
                                  {"database": "shop", "collection": "orders", "pipeline": BY_STATUS}))["documents"]
    assert docs == [{"_id": s, "n": mongo.shop.orders.count_documents({"status": s})} for s in ("paid", "shipped")]


def test_count_with_a_query(nexus, mongo):
    out = succeeded(ts_call_tool(nexus.mcp_url, "count",
                                 {"database": "shop", "collection": "orders", "query": {"status": "new"}}))
    assert out["count"] == mongo.shop.orders.count_documents({"status": "new"})
    assert out["count"] > 0


def test_distinct_with_a_query(nexus, mongo):
    out = succeeded(ts_call_tool(nexus.mcp_url, "distinct", {"database": "shop", "collection": "customers",
                                                             "field": "address.city",
                                                             "query": {"address.country": "PT"}}))
    assert sorted(out["values"]) == sorted(mongo.shop.customers.distinct("address.city", {"address.country": "PT"}))
    assert set(out["values"]) == {"Lisbon", "Porto"}


def test_list_databases_and_collections(nexus, mongo):
    run = ts_run(nexus.mcp_url, [tool_call("list-databases", {}),
                                 tool_call("list-collections", {"database": "shop"})])
    names = [d["name"] for d in succeeded(run.results[0])["databases"]]
    assert "shop" in names
    assert "admin" not in names
    collections = succeeded(run.results[1])
    assert {c["name"] for c in collections["collections"]} == set(mongo.shop.list_collection_names())
    assert collections["totalCount"] == len(mongo.shop.list_collection_names())


def test_collection_schema_with_a_sample_size(nexus):
    out = succeeded(ts_call_tool(nexus.mcp_url, "collection-schema",
                                 {"database": "shop", "collection": "customers", "sampleSize": 50}))
    assert out["sampledDocuments"] == 50
    assert out["schema"]["email"] == {"types": ["string"], "frequency": 1.0}
    assert "address.city" in out["schema"]


def test_collection_indexes(nexus, mongo):
    out = succeeded(ts_call_tool(nexus.mcp_url, "collection-indexes", {"database": "shop", "collection": "customers"}))
    keys = sorted(json.dumps(i["key"], sort_keys=True) for i in out["classicIndexes"])
    assert keys == sorted(json.dumps(dict(i["key"]), sort_keys=True) for i in mongo.shop.customers.list_indexes())
    email = [i for i in out["classicIndexes"] if i["key"] == {"email": 1}]
    assert len(email) == 1
    assert email[0]["unique"] is True


def test_collection_storage_size(nexus, mongo):
    out = succeeded(ts_call_tool(nexus.mcp_url, "collection-storage-size", {"database": "shop", "collection": "orders"}))
    assert out["units"] in ("bytes", "KB", "MB", "GB", "TB")
    assert out["documentCount"] == mongo.shop.orders.count_documents({})


def test_db_stats(nexus, mongo):
    out = succeeded(ts_call_tool(nexus.mcp_url, "db-stats", {"database": "shop"}))
    assert out["database"] == "shop"
    assert out["stats"]["collections"] == len(mongo.shop.list_collection_names())


def test_explain_with_a_method_array(nexus):
    out = succeeded(ts_call_tool(nexus.mcp_url, "explain", {
        "database": "shop", "collection": "orders",
        "method": [{"name": "find", "arguments": {"filter": {"status": "new"}, "limit": 3}}]}))
    assert out["method"] == "find"
    assert out["explainResult"]


# --- tool errors arrive as readable results, not as the SDK's schema-validation exception -------------------------

@pytest.mark.parametrize("tool, arguments, expected", [
    ("find", {"database": "shop", "collection": "ordrs"},
     "collection shop.ordrs does not exist"),
    ("find", {"database": "shop", "collection": "orders", "filter": {"$where": "sleep(10000) || true"}},
     "QUERY_REJECTED"),
    ("aggregate", {"database": "shop", "collection": "orders", "pipeline": [{"$match": {}}, {"$out": "copy"}]},
     "mcp.read_only"),
    ("find", {"database": "shop", "collection": "orders", "fitler": {"status": "paid"}},
     "fitler"),
], ids=["unknown-collection", "server-side-js", "write-stage-read-only", "unknown-argument"])
def test_a_tool_error_reaches_the_host_intact(nexus, tool, arguments, expected):
    text = tool_error(ts_call_tool(nexus.mcp_url, tool, arguments))
    assert expected in text


def test_the_guard_names_the_rule_it_applied(nexus):
    text = tool_error(ts_call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "orders",
                                                           "filter": {"$where": "sleep(10000) || true"}}))
    assert text.startswith("QUERY_REJECTED")
    assert "mcp.block_server_side_js" in text


@pytest.mark.timeout(120)
def test_a_broken_tunnel_is_reported_as_reconnecting_then_heals(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    count = {"database": "shop", "collection": "orders"}
    assert succeeded(ts_call_tool(nexus.mcp_url, "count", count))["count"] > 0

    stack.sshd.kill()
    nexus.wait_unready(timeout=5)
    text = tool_error(ts_call_tool(nexus.mcp_url, "count", count))
    assert "SSH tunnel reconnecting" in text
    assert "next try in" in text

    stack.sshd.start()
    nexus.wait_ready(timeout=15)
    with stack.mongo.client() as c:
        assert succeeded(ts_call_tool(nexus.mcp_url, "count", count))["count"] == c.shop.orders.count_documents({})


# --- destructive calls ask the user (elicitation on the legacy session) --------------------------------------------

def test_delete_many_is_declined_then_accepted(rw, mongo):
    coll = mongo.scratch.ts_deletions
    coll.insert_many([{"k": i} for i in range(4)])
    args = {"database": "scratch", "collection": "ts_deletions", "filter": {"k": {"$lt": 2}}}

    declined = ts_run(rw.mcp_url, [tool_call("delete-many", args)], elicit="decline")
    assert declined.session_id, "a legacy Mcp-Session-Id session (elicitation needs one)"
    assert len(declined.asked) == 1
    assert "Delete 2 documents" in declined.asked[0]
    assert "declined" in tool_error(declined.results[0])
    assert coll.count_documents({}) == 4, "nothing deleted"

    accepted = ts_run(rw.mcp_url, [tool_call("delete-many", args)], elicit="accept")
    assert len(accepted.asked) == 1
    assert succeeded(accepted.results[0])["deletedCount"] == 2
    assert sorted(d["k"] for d in coll.find()) == [2, 3]


def test_drop_collection_is_declined_then_accepted(rw, mongo):
    mongo.scratch.ts_doomed.insert_one({"x": 1})
    args = {"database": "scratch", "collection": "ts_doomed"}

    declined = ts_run(rw.mcp_url, [tool_call("drop-collection", args)], elicit="decline")
    assert len(declined.asked) == 1
    assert "ts_doomed" in declined.asked[0]
    assert "declined" in tool_error(declined.results[0])
    assert "ts_doomed" in mongo.scratch.list_collection_names()

    accepted = ts_run(rw.mcp_url, [tool_call("drop-collection", args)], elicit="accept")
    assert len(accepted.asked) == 1
    assert succeeded(accepted.results[0])["dropped"] is True
    assert "ts_doomed" not in mongo.scratch.list_collection_names()


def test_a_host_without_elicitation_is_refused_with_a_way_out(rw, mongo):
    mongo.scratch.ts_keep.insert_one({"x": 1})
    run = ts_run(rw.mcp_url, [tool_call("drop-collection", {"database": "scratch", "collection": "ts_keep"})])
    assert run.asked == []
    text = tool_error(run.results[0])
    assert "confirm_destructive" in text
    assert "elicitation" in text
    assert "ts_keep" in mongo.scratch.list_collection_names()


# --- stdio: the host spawns the binary ------------------------------------------------------------------------------

def test_read_calls_over_stdio(shared_stack, tmp_path, mongo):
    n = Nexus(tmp_path / "stdio", shared_stack.config(), start=False)
    server = mcp.StdioServerParameters(command=str(BINARY),
                                       args=["serve", "--transport", "stdio", "--config", str(n.config_path)],
                                       env=n.env)
    run = ts_run(server, [
        {"method": "tools/list"},
        tool_call("find", PAID_FIND),
        tool_call("aggregate", {"database": "shop", "collection": "orders", "pipeline": BY_STATUS}),
        tool_call("count", {"database": "shop", "collection": "notes"}),
        tool_call("distinct", {"database": "shop", "collection": "products", "field": "category"}),
        tool_call("list-collections", {"database": "shop"}),
    ], stderr_file=n.log)
    listed, find, aggregate, count, distinct, collections = run.results
    assert listed.ok, listed.error
    assert {t["name"] for t in listed.result["tools"]} == READ_TOOLS
    assert succeeded(find)["documents"] == list(
        mongo.shop.orders.find({"status": "paid"}, {"orderNo": 1, "status": 1, "total": 1, "_id": 0})
        .sort("orderNo", -1).limit(5))
    assert succeeded(aggregate)["documents"] == [
        {"_id": s, "n": mongo.shop.orders.count_documents({"status": s})} for s in ("paid", "shipped")]
    assert succeeded(count)["count"] == 5
    assert sorted(succeeded(distinct)["values"]) == sorted(mongo.shop.products.distinct("category"))
    assert {c["name"] for c in succeeded(collections)["collections"]} == set(mongo.shop.list_collection_names())
    # The host closed the connection: the server process is gone (nothing answers on its probe port any more).
    n.wait_until(lambda: n.status("/health") == 0, 10, "the stdio server to exit when the host disconnects")


def test_a_tool_error_over_stdio_reaches_the_host_intact(shared_stack, tmp_path):
    n = Nexus(tmp_path / "stdio-error", shared_stack.config(), start=False)
    server = mcp.StdioServerParameters(command=str(BINARY),
                                       args=["serve", "--transport", "stdio", "--config", str(n.config_path)],
                                       env=n.env)
    r = ts_call_tool(server, "find", {"database": "shop", "collection": "ordrs"}, stderr_file=n.log)
    assert "does not exist" in tool_error(r)
    n.wait_until(lambda: n.status("/health") == 0, 10, "the stdio server to exit when the host disconnects")


# --- what the MCP Inspector's form sends: numbers as strings, objects and arrays as JSON text ----------------------

FORM_CASES = {
    "find-limit-as-string": (
        "find", {"database": "shop", "collection": "orders", "sort": {"orderNo": 1}, "limit": 5},
        {"database": "shop", "collection": "orders", "sort": {"orderNo": 1}, "limit": "5"}),
    "find-skip-as-string": (
        "find", {"database": "shop", "collection": "orders", "sort": {"orderNo": 1}, "limit": 3, "skip": 2},
        {"database": "shop", "collection": "orders", "sort": {"orderNo": 1}, "limit": 3, "skip": "2"}),
    "find-everything-as-form-text": (
        "find", PAID_FIND,
        {"database": "shop", "collection": "orders", "filter": json.dumps(PAID_FIND["filter"]),
         "projection": json.dumps(PAID_FIND["projection"]), "sort": json.dumps(PAID_FIND["sort"]), "limit": "5"}),
    "aggregate-pipeline-as-json-text": (
        "aggregate", {"database": "shop", "collection": "orders", "pipeline": BY_STATUS},
        {"database": "shop", "collection": "orders", "pipeline": json.dumps(BY_STATUS)}),
    "count-query-as-json-text": (
        "count", {"database": "shop", "collection": "orders", "query": {"status": "paid"}},
        {"database": "shop", "collection": "orders", "query": '{"status": "paid"}'}),
    "distinct-query-as-json-text": (
        "distinct", {"database": "shop", "collection": "customers", "field": "address.city",
                     "query": {"address.country": "DE"}},
        {"database": "shop", "collection": "customers", "field": "address.city",
         "query": '{"address.country": "DE"}'}),
    "collection-schema-sample-size-as-string": (
        "collection-schema", {"database": "shop", "collection": "notes", "sampleSize": 10},
        {"database": "shop", "collection": "notes", "sampleSize": "10"}),
}


@pytest.mark.parametrize("case", list(FORM_CASES))
def test_form_style_arguments_give_the_same_result_as_typed_ones(nexus, case):
    tool, typed, form = FORM_CASES[case]
    typed_result, form_result = ts_run(nexus.mcp_url, [tool_call(tool, typed), tool_call(tool, form)]).results
    expected = succeeded(typed_result)
    assert succeeded(form_result) == expected
