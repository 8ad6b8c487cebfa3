"""Guards and limits: every refusal is a clear tool error naming the rule; nothing panics; data stays fenced."""

import asyncio
import json
import time

import pytest

from support import call_tool, session
from support.mcpclient import acall


@pytest.fixture(scope="module")
def nexus(shared_stack):
    n = shared_stack.nexus("guarded", mcp={"denied_databases": ["secret*"], "max_documents": 50,
                                           "max_bytes": "4KiB"})
    n.wait_ready()
    return n


def refused(nexus, tool, args) -> str:
    r = call_tool(nexus.mcp_url, tool, args)
    assert r.is_error, f"{tool} {args} was not refused: {r.text}"
    return r.text


def test_server_side_javascript_is_refused(nexus):
    text = refused(nexus, "find", {"database": "shop", "collection": "orders",
                                   "filter": {"$where": "sleep(10000) || true"}})
    assert text.startswith("QUERY_REJECTED") and "mcp.block_server_side_js" in text
    text = refused(nexus, "aggregate", {"database": "shop", "collection": "orders", "pipeline": [
        {"$group": {"_id": None, "x": {"$accumulator": {"init": "function(){}"}}}}]})
    assert "$accumulator" in text


def test_write_stages_are_refused_when_read_only(nexus):
    text = refused(nexus, "aggregate", {"database": "shop", "collection": "orders",
                                        "pipeline": [{"$match": {}}, {"$out": "copy"}]})
    assert "mcp.read_only" in text


def test_denied_and_system_databases_are_refused(nexus):
    assert "mcp.denied_databases" in refused(nexus, "find", {"database": "secret_hr", "collection": "pay"})
    assert "system databases" in refused(nexus, "list-collections", {"database": "admin"})
    text = refused(nexus, "aggregate", {"database": "shop", "collection": "orders", "pipeline": [
        {"$lookup": {"from": {"db": "admin", "coll": "system.users"}, "as": "u", "pipeline": []}}]})
    assert "system" in text


def test_max_documents_and_max_bytes_cut_results_and_say_so(nexus):
    r = call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "orders", "limit": 1000,
                                          "projection": {"orderNo": 1}})
    assert not r.is_error, r.text
    limits = r.structured["appliedLimits"]
    assert limits["limit"] == 50 and limits["limitCappedByMaxDocuments"] is True
    assert r.structured["count"] <= 50 and "mcp.max_documents" in r.text

    r = call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "orders", "limit": 50})
    assert r.structured["appliedLimits"]["truncatedBy"] == "maxBytes"
    assert 0 < r.structured["count"] < 50
    assert "truncated at 4096 bytes" in r.text

    r = call_tool(nexus.mcp_url, "aggregate", {"database": "shop", "collection": "orders",
                                               "pipeline": [{"$project": {"orderNo": 1}}]})
    assert r.structured["appliedLimits"]["truncatedBy"] in ("maxDocuments", "maxBytes")


def test_distinct_respects_max_bytes(shared_stack):
    """Regression: distinct returned every value whatever mcp.max_bytes said (24 MB with the 1 MiB default)."""
    nexus = shared_stack.nexus("distinct-bytes", mcp={"max_bytes": "1KiB"})
    nexus.wait_ready()
    r = call_tool(nexus.mcp_url, "distinct", {"database": "shop", "collection": "orders", "field": "customerId"})
    assert not r.is_error, r.text
    values = r.structured["values"]
    assert r.structured["total"] > len(values) > 0
    assert len(json.dumps(values, separators=(",", ":"))) <= 1024
    assert r.structured["truncated"] is True and r.structured["appliedLimits"]["truncatedBy"] == "maxBytes"
    assert "mcp.max_bytes" in r.text


def test_lists_of_names_respect_the_limits(shared_stack):
    """list-collections and list-databases answer within mcp.max_documents / mcp.max_bytes and say when cut."""
    nexus = shared_stack.nexus("name-lists", mcp={"max_documents": 2, "default_limit": 2})
    nexus.wait_ready()
    with shared_stack.mongo.client() as c:
        names = c.shop.list_collection_names()
    assert len(names) > 2
    r = call_tool(nexus.mcp_url, "list-collections", {"database": "shop"})
    assert not r.is_error, r.text
    assert len(r.structured["collections"]) == 2 and r.structured["totalCount"] == len(names)
    assert r.structured["appliedLimits"]["truncatedBy"] == "maxDocuments"
    assert "showing the first 2: mcp.max_documents" in r.text


def test_bad_arguments_are_clear_tool_errors(nexus):
    text = refused(nexus, "find", {"database": "shop", "collection": "orders",
                                   "filter": {"_id": {"$oid": "not-an-object-id"}}})
    assert "filter._id" in text and "invalid extended JSON" in text
    assert "limit must be a positive integer" in refused(nexus, "find", {"database": "shop", "collection": "orders",
                                                                         "limit": -5})
    assert "does not exist" in refused(nexus, "find", {"database": "shop", "collection": "ordrs"})
    assert "expected an array" in refused(nexus, "aggregate", {"database": "shop", "collection": "orders",
                                                               "pipeline": {"$match": {}}})
    text = refused(nexus, "find", {"database": "shop", "collection": "orders", "fitler": {"x": 1}})
    assert "fitler" in text
    assert nexus.proc.alive() and nexus.status("/health") == 200


def test_a_prompt_injection_stays_inside_the_untrusted_fence(nexus):
    r = call_tool(nexus.mcp_url, "find", {"database": "shop", "collection": "notes",
                                          "filter": {"text": {"$regex": "Ignore previous"}}})
    assert r.structured["count"] == 1
    summary, rest = r.text.split("\n", 1)
    assert "Ignore previous" not in summary
    open_tag = rest.index("<untrusted-data-")
    close_tag = rest.index("</untrusted-data-")
    assert open_tag < rest.index("Ignore previous instructions") < close_tag


def test_a_session_sees_fast_reconnecting_errors_and_works_again_after_healing(stack):
    nexus = stack.nexus()
    nexus.wait_ready()

    async def scenario():
        async with session(nexus.mcp_url, mode="legacy") as c:
            ok = await acall(c, "count", {"database": "shop", "collection": "orders"})
            assert not ok.is_error
            stack.sshd.kill()
            await asyncio.to_thread(nexus.wait_unready, 5)
            started = time.monotonic()
            down = await acall(c, "count", {"database": "shop", "collection": "orders"})
            took = time.monotonic() - started
            assert down.is_error and "SSH tunnel reconnecting" in down.text, down.text
            assert "next try in" in down.text and took < 1.0, (took, down.text)
            stack.sshd.start()
            await asyncio.to_thread(nexus.wait_ready, 15)
            again = await acall(c, "count", {"database": "shop", "collection": "orders"})
            assert not again.is_error, again.text
            return again.structured["count"]
    assert asyncio.run(scenario()) > 0
