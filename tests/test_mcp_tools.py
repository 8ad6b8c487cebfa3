"""MCP tools through a real MCP client (the Python `mcp` SDK), over HTTP in both modes and over stdio."""

import asyncio
import json
import re

import mcp
import pytest

from support import Nexus, call_tool, list_tools, read_resource, session
from support.mcpclient import acall
from support.nexus import BINARY

READ_TOOLS = {"list-databases", "list-collections", "find", "aggregate", "count", "distinct", "collection-schema",
              "collection-indexes", "collection-storage-size", "db-stats", "explain"}
WRITE_TOOLS = {"insert-many", "update-many", "delete-many", "create-index", "drop-index", "create-collection",
               "rename-collection", "drop-collection", "drop-database"}


@pytest.fixture(scope="module")
def nexus(shared_stack):
    n = shared_stack.nexus("read-only")
    n.wait_ready()
    return n


@pytest.fixture(scope="module")
def direct(shared_stack):
    with shared_stack.mongo.client() as c:
        yield c.shop


def fenced(text: str) -> str:
    """The content of the untrusted-data fence (and checks the fence is well formed)."""
    m = re.search(r"<(untrusted-data-[0-9a-f]{16})>\n(.*)\n</\1>$", text, re.S)
    assert m, f"no untrusted-data fence in:\n{text}"
    return m.group(2)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_read_only_lists_only_read_tools_with_schemas_and_annotations(nexus, mode):
    tools = {t.name: t for t in list_tools(nexus.mcp_url, mode=mode)}
    assert set(tools) == READ_TOOLS
    for t in tools.values():
        assert t.annotations.read_only_hint is True, t.name
        assert t.output_schema and t.output_schema.get("type") == "object", t.name
        assert "connectionId" not in json.dumps(t.input_schema)
        # Only standard JSON Schema formats (the Inspector's validator warns about schemars' "uint64" & co.).
        assert not re.search(r'"format": "u?int|"format": "double', json.dumps([t.input_schema, t.output_schema]))
    assert {"database", "collection", "filter", "projection", "sort", "limit", "skip"} <= set(
        tools["find"].input_schema["properties"])


def test_read_write_lists_every_tool(shared_stack):
    n = shared_stack.nexus("read-write-list", mcp={"read_only": False})
    n.wait_ready()
    tools = {t.name: t for t in list_tools(n.mcp_url)}
    assert set(tools) == READ_TOOLS | WRITE_TOOLS
    assert tools["drop-database"].annotations.destructive_hint is True
    assert tools["insert-many"].annotations.read_only_hint is False
    n.stop()


def test_find_filters_sorts_projects_and_fences_the_documents(nexus, direct):
    r = call_tool(nexus.mcp_url, "find", {
        "database": "shop", "collection": "orders", "filter": {"status": "paid"},
        "projection": {"orderNo": 1, "status": 1, "createdAt": 1, "_id": 0}, "sort": {"createdAt": -1}, "limit": 5})
    assert not r.is_error, r.text
    docs = r.structured["documents"]
    assert len(docs) == 5 and r.structured["count"] == 5
    assert all(d["status"] == "paid" and set(d) == {"orderNo", "status", "createdAt"} for d in docs)
    dates = [d["createdAt"]["$date"] for d in docs]
    assert dates == sorted(dates, reverse=True)
    assert r.text.startswith("Found 5 documents in shop.orders (limit 5 applied).")
    assert json.loads(fenced(r.text)) == docs
    expected = [d["orderNo"] for d in direct.orders.find({"status": "paid"}).sort("createdAt", -1).limit(5)]
    assert [d["orderNo"] for d in docs] == expected


def test_find_accepts_extended_json_and_skip(nexus, direct):
    first = direct.customers.find_one(sort=[("_id", 1)])
    r = call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "customers",
                                          "filter": {"_id": {"$oid": str(first["_id"])}}})
    assert r.structured["documents"][0]["email"] == first["email"]
    r = call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "orders", "limit": 3,
                                          "filter": {"createdAt": {"$gte": {"$date": "2024-06-01T00:00:00Z"}}},
                                          "sort": {"orderNo": 1}, "skip": 2})
    import datetime as dt
    since = dt.datetime(2024, 6, 1)
    expected = [d["orderNo"] for d in direct.orders.find({"createdAt": {"$gte": since}}).sort("orderNo", 1)
                .skip(2).limit(3)]
    assert [d["orderNo"] for d in r.structured["documents"]] == expected


def test_aggregate_count_and_distinct_match_the_database(nexus, direct):
    r = call_tool(nexus.mcp_url, "aggregate", {"database": "shop", "collection": "orders", "pipeline": [
        {"$group": {"_id": "$status", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]})
    assert not r.is_error, r.text
    by_status = {d["_id"]: d["n"] for d in r.structured["documents"]}
    assert by_status == {s: direct.orders.count_documents({"status": s}) for s in by_status}
    assert sum(by_status.values()) == direct.orders.count_documents({})

    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders", "query": {"status": "new"}})
    assert r.structured["count"] == direct.orders.count_documents({"status": "new"})

    r = call_tool(nexus.mcp_url, "distinct", {"database": "shop", "collection": "customers",
                                              "field": "address.country"})
    assert set(r.structured["values"]) == set(direct.customers.distinct("address.country"))


def test_metadata_tools(nexus):
    dbs = call_tool(nexus.mcp_url, "list-databases", {}).structured
    assert "shop" in [d["name"] for d in dbs["databases"]]
    assert "admin" not in [d["name"] for d in dbs["databases"]]

    colls = call_tool(nexus.mcp_url, "list-collections", {"database": "shop"}).structured
    assert {"customers", "orders", "products", "notes"} <= {c["name"] for c in colls["collections"]}

    schema = call_tool(nexus.mcp_url, "collection-schema", {"database": "shop", "collection": "customers"}).structured
    assert schema["schema"]["email"] == {"types": ["string"], "frequency": 1.0}
    assert "address.city" in schema["schema"] and schema["sampledDocuments"] > 0

    indexes = call_tool(nexus.mcp_url, "collection-indexes", {"database": "shop", "collection": "customers"})
    assert not indexes.is_error, indexes.text
    keys = [i["key"] for i in indexes.structured["classicIndexes"]]
    assert {"email": 1} in keys

    size = call_tool(nexus.mcp_url, "collection-storage-size", {"database": "shop", "collection": "orders"})
    assert not size.is_error, size.text
    assert size.structured["units"] in ("bytes", "KB", "MB", "GB", "TB")

    stats = call_tool(nexus.mcp_url, "db-stats", {"database": "shop"})
    assert not stats.is_error and isinstance(stats.structured["stats"], dict)

    plan = call_tool(nexus.mcp_url, "explain", {"database": "shop", "collection": "orders",
                                                "method": [{"name": "find", "arguments": {"filter": {"status": "new"}}}]})
    assert not plan.is_error, plan.text
    assert plan.structured["explainResult"], plan.text


def test_resources_status_and_redacted_config(nexus):
    status = json.loads(read_resource(nexus.mcp_url, "nexus://status"))
    assert status["ready"] is True and status["checks"]["sshTunnel"]["status"] == "healthy"
    assert status["tunnel"]["state"] == "SSH tunnel up"
    config = json.loads(read_resource(nexus.mcp_url, "nexus://config"))
    assert config["mcp"]["read_only"] is True
    assert config["tunnel"]["bastion"]["port"] == nexus.config["ssh"]["port"]


def test_legacy_session_mode_serves_several_calls(nexus):
    async def run():
        async with session(nexus.mcp_url, mode="legacy") as c:
            a = await acall(c, "count", {"database": "shop", "collection": "products"})
            b = await acall(c, "find", {"database": "shop", "collection": "products", "limit": 2})
            return a, b
    a, b = asyncio.run(run())
    assert a.structured["count"] > 0 and b.structured["count"] == 2


def test_stdio_transport_speaks_only_protocol_on_stdout_and_exits_on_eof(shared_stack, tmp_path):
    n = Nexus(tmp_path / "stdio", shared_stack.config(), start=False)
    params = mcp.StdioServerParameters(command=str(BINARY),
                                       args=["serve", "--transport", "stdio", "--config", str(n.config_path)],
                                       env=n.env)
    tools = list_tools(params)
    assert {t.name for t in tools} == READ_TOOLS
    r = call_tool(params, "count", {"database": "shop", "collection": "notes"})
    assert r.structured["count"] == 5
    # The client closed stdin: the process has exited (nothing listening on its probe port any more).
    n.wait_until(lambda: n.status("/health") == 0, 10, "the stdio process to exit on EOF")
