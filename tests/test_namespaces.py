"""Namespaces (issue 12, defect 1): database and collection names are checked as MongoDB defines them before any
guard or driver call, and the database rules hold in every tool and every pipeline stage that names a database,
whatever the case of the name.

MongoDB splits a namespace at its first dot: `database: "secret.creds"` with `collection: "x"` is the collection
`creds.x` of the database `secret`. Each refusal below is checked for its rule, for the argument it names, and,
where the call would have changed data, against the data itself (pymongo straight to nx-27017)."""

import pytest

from support import call_tool, list_tools
from support.mcpclient import elicitation

# Extra arguments that make each tool's call valid apart from its namespace.
WITH_COLLECTION = {
    "find": {},
    "count": {},
    "aggregate": {"pipeline": []},
    "distinct": {"field": "a"},
    "collection-indexes": {},
    "collection-schema": {},
    "collection-storage-size": {},
    "explain": {"method": {"name": "find", "arguments": {}}},
    "insert-many": {"documents": [{"a": 1}]},
    "update-many": {"filter": {}, "update": {"$set": {"a": 2}}},
    "delete-many": {"filter": {}},
    "create-collection": {},
    "create-index": {"keys": {"a": 1}},
    "drop-index": {"indexName": "a_1"},
    "drop-collection": {},
    "rename-collection": {"newName": "renamed"},
}
DATABASE_ONLY = {"list-collections": {}, "db-stats": {}, "drop-database": {}}
EVERY_TOOL = sorted([*WITH_COLLECTION, *DATABASE_ONLY])


def args_for(tool: str, database: str, collection: str = "x") -> dict:
    if tool in DATABASE_ONLY:
        return {"database": database, **DATABASE_ONLY[tool]}
    return {"database": database, "collection": collection, **WITH_COLLECTION[tool]}


@pytest.fixture(scope="module")
def nexus(shared_stack):
    n = shared_stack.nexus("namespaces", mcp={"read_only": False, "denied_databases": ["secret"]})
    n.wait_ready()
    return n


@pytest.fixture(scope="module")
def mongo(shared_stack):
    with shared_stack.mongo.client() as c:
        c.secret.x.insert_one({"_id": "key", "value": "do not leak"})
        yield c


def refused(nexus, tool: str, args: dict, *, rule: str, arg: str | None = None) -> str:
    """Calls `tool` with a client that would accept any confirmation, and checks that the call was refused by
    `rule` (naming `arg`) before anything was asked or sent."""
    yes = elicitation("accept")
    r = call_tool(nexus.mcp_url, tool, args, elicit=yes)
    assert r.is_error, f"{tool} {args!r} was not refused: {r.text}"
    assert r.text.startswith("QUERY_REJECTED: "), r.text
    assert f"(rule: {rule})" in r.text, r.text
    if arg is not None:
        assert f"`{arg}`" in r.text, r.text
    assert yes.asked == [], f"asked before refusing: {yes.asked}"
    return r.text


def test_every_tool_that_takes_a_database_is_covered(nexus):
    """The tables above drive the per-tool tests: a new tool with a `database` argument must join them."""
    tools = list_tools(nexus.mcp_url)
    with_database = sorted(t.name for t in tools if "database" in (t.input_schema.get("properties") or {}))
    assert with_database == EVERY_TOOL


@pytest.mark.parametrize("tool", EVERY_TOOL)
@pytest.mark.parametrize("database", ["secret", "Secret", "SECRET"])
def test_the_deny_list_holds_in_every_tool_whatever_the_case(nexus, mongo, tool, database):
    text = refused(nexus, tool, args_for(tool, database), rule="mcp.denied_databases", arg="database")
    assert database in text
    assert list(mongo.secret.x.find()) == [{"_id": "key", "value": "do not leak"}]
    if database != "secret":
        assert database not in mongo.list_database_names(), "no database was created under another case"


@pytest.mark.parametrize("tool", EVERY_TOOL)
@pytest.mark.parametrize("database", ["shop.orders", "shop$", "$cmd"])
def test_a_dotted_or_dollar_database_is_refused_in_every_tool(nexus, tool, database):
    text = refused(nexus, tool, args_for(tool, database), rule="database name", arg="database")
    bad = "." if "." in database else "$"
    assert f"contains '{bad}'" in text, text


@pytest.mark.parametrize("database", ["admin.keys", "secret.creds"])
def test_rename_through_a_dotted_database_is_refused_and_renames_nothing(nexus, mongo, database):
    """The reported attack. MongoDB splits `admin.keys.vault` at its first dot: admin's collection `keys.vault`.
    nx-27017 keeps every logical database in one store and renames by the last segment, so here the attack would
    move `vault` itself. Either way nothing may change."""
    mongo.scratch.vault.insert_one({"_id": database})
    text = refused(nexus, "rename-collection", {"database": database, "collection": "vault", "newName": "stolen"},
                   rule="database name", arg="database")
    assert "contains '.'" in text, text
    assert "`collection`" in text, "says where the collection goes instead"
    names = mongo.scratch.list_collection_names()
    assert "vault" in names, names
    assert "stolen" not in names, names
    assert {"_id": database} in list(mongo.scratch.vault.find())


def test_rename_checks_the_new_name_too(nexus, mongo):
    mongo.scratch.stay.insert_one({"_id": 1})
    for new_name, rule in [("a$b", "collection name"), ("", "collection name"), (".hidden", "collection name"),
                           ("system.js", "system collections")]:
        refused(nexus, "rename-collection", {"database": "scratch", "collection": "stay", "newName": new_name},
                rule=rule, arg="newName")
    assert "stay" in mongo.scratch.list_collection_names()


def test_insert_and_delete_through_a_dotted_database_change_nothing(nexus, mongo):
    """(nx-27017 shares one store between databases: `scratch.keep` + `kept` would reach `kept` there.)"""
    mongo.scratch.kept.insert_many([{"k": 1}, {"k": 2}])
    refused(nexus, "delete-many", {"database": "scratch.keep", "collection": "kept", "filter": {}},
            rule="database name", arg="database")
    assert mongo.scratch.kept.count_documents({}) == 2
    refused(nexus, "insert-many", {"database": "scratch.dotted", "collection": "fresh", "documents": [{"a": 1}]},
            rule="database name", arg="database")
    names = mongo.scratch.list_collection_names()
    assert "fresh" not in names, names
    assert "dotted.fresh" not in names, names


PIPELINES = [
    # (pipeline, rule, argument named)
    ([{"$unionWith": {"db": "secret", "coll": "x"}}], "mcp.denied_databases", "pipeline[0].$unionWith.db"),
    ([{"$unionWith": {"db": "Secret", "coll": "x"}}], "mcp.denied_databases", "pipeline[0].$unionWith.db"),
    ([{"$unionWith": {"db": "secret", "pipeline": [{"$documents": [{}]}]}}], "mcp.denied_databases",
     "pipeline[0].$unionWith.db"),
    ([{"$lookup": {"from": {"db": "secret", "coll": "x"}, "as": "s", "pipeline": []}}], "mcp.denied_databases",
     "pipeline[0].$lookup.from.db"),
    ([{"$lookup": {"from": {"db": "SECRET", "coll": "x"}, "as": "s", "pipeline": []}}], "mcp.denied_databases",
     "pipeline[0].$lookup.from.db"),
    ([{"$match": {}}, {"$facet": {"a": [{"$unionWith": {"db": "secret", "coll": "x"}}]}}],
     "mcp.denied_databases", "pipeline[1].$facet.a[0].$unionWith.db"),
    ([{"$lookup": {"from": "customers", "as": "c", "pipeline": [{"$unionWith": {"db": "sEcReT", "coll": "x"}}]}}],
     "mcp.denied_databases", "pipeline[0].$lookup.pipeline[0].$unionWith.db"),
    ([{"$out": {"db": "Secret", "coll": "x"}}], "mcp.denied_databases", "pipeline[0].$out.db"),
    ([{"$merge": {"into": {"db": "SECRET", "coll": "x"}}}], "mcp.denied_databases", "pipeline[0].$merge.into.db"),
    ([{"$lookup": {"from": {"db": "secret.creds", "coll": "x"}, "as": "s", "pipeline": []}}], "database name",
     "pipeline[0].$lookup.from.db"),
    ([{"$unionWith": {"db": "shop$", "coll": "x"}}], "database name", "pipeline[0].$unionWith.db"),
    ([{"$unionWith": {"db": 5, "coll": "x"}}], "database name", "pipeline[0].$unionWith.db"),
    ([{"$unionWith": "x$y"}], "collection name", "pipeline[0].$unionWith"),
    ([{"$unionWith": {"coll": ""}}], "collection name", "pipeline[0].$unionWith.coll"),
    ([{"$lookup": {"from": "a$b", "localField": "a", "foreignField": "b", "as": "c"}}], "collection name",
     "pipeline[0].$lookup.from"),
    ([{"$graphLookup": {"from": "a\u0000b", "startWith": "$a", "connectFromField": "a", "connectToField": "b",
                        "as": "c"}}], "collection name", "pipeline[0].$graphLookup.from"),
    ([{"$merge": {"into": ".hidden"}}], "collection name", "pipeline[0].$merge.into"),
    ([{"$out": "x$"}], "collection name", "pipeline[0].$out"),
]


@pytest.mark.parametrize("pipeline,rule,arg", PIPELINES, ids=[f"{p[2]}-{i}" for i, p in enumerate(PIPELINES)])
def test_every_namespace_in_a_pipeline_is_checked(nexus, mongo, pipeline, rule, arg):
    refused(nexus, "aggregate", {"database": "shop", "collection": "orders", "pipeline": pipeline},
            rule=rule, arg=arg)
    assert list(mongo.secret.x.find()) == [{"_id": "key", "value": "do not leak"}]


def test_explain_and_update_pipelines_are_checked_too(nexus):
    union = [{"$unionWith": {"db": "secret", "coll": "x"}}]
    refused(nexus, "explain", {"database": "shop", "collection": "orders",
                               "method": {"name": "aggregate", "arguments": {"pipeline": union}}},
            rule="mcp.denied_databases", arg="method.arguments.pipeline[0].$unionWith.db")
    refused(nexus, "explain", {"database": "shop", "collection": "orders",
                               "method": {"name": "aggregate", "arguments": {"pipeline": [{"$out": "a$b"}]}}},
            rule="collection name", arg="method.arguments.pipeline[0].$out")


@pytest.mark.parametrize("database,says", [
    ("", "is empty"),
    ("\u0000", "contains '\\0'"),
    ("shop\u0000", "contains '\\0'"),
    ("a" * 64, "64 bytes"),
    ("é" * 32, "64 bytes"),
    ("x" * 100_000, "100000 bytes"),
    ("sh op", "contains ' '"),
    ("sh/op", "contains '/'"),
    ("sh\\op", "contains '\\\\'"),
    ('sh"op', "contains '\"'"),
    ("sh*op", "contains '*'"),
    ("sh<op", "contains '<'"),
    ("sh>op", "contains '>'"),
    ("sh:op", "contains ':'"),
    ("sh|op", "contains '|'"),
    ("sh?op", "contains '?'"),
])
def test_odd_database_names_are_refused_clearly(nexus, database, says):
    text = refused(nexus, "find", {"database": database, "collection": "orders"}, rule="database name",
                   arg="database")
    assert says in text, text
    assert len(text) < 1000, "a long name is not echoed in full"


@pytest.mark.parametrize("collection,says,rule", [
    ("", "is empty", "collection name"),
    ("\u0000", "contains '\\0'", "collection name"),
    ("ord$ers", "contains '$'", "collection name"),
    ("$cmd", "contains '$'", "collection name"),
    (".orders", "starts with '.'", "collection name"),
    ("x" * 251, "256 bytes", "collection name"),
    ("ü" * 126, "257 bytes", "collection name"),
    ("system.users", "system collection", "system collections"),
])
def test_odd_collection_names_are_refused_clearly(nexus, collection, says, rule):
    text = refused(nexus, "find", {"database": "shop", "collection": collection}, rule=rule, arg="collection")
    assert says in text, text


@pytest.mark.parametrize("database,collection", [
    ("a" * 63, "orders"),
    ("shöp", "orders"),
    ("shop", "x" * 250),
    ("shop", "orders.archive"),
    ("shop", "Orders"),
    ("secret_not", "orders"),
])
def test_valid_names_pass_the_name_rules(nexus, database, collection):
    """The limits are MongoDB's, not tighter: these calls reach MongoDB (found or not found, they are answered)."""
    r = call_tool(nexus.mcp_url, "find", {"database": database, "collection": collection})
    assert not r.text.startswith("QUERY_REJECTED"), r.text
    assert nexus.proc.alive() and nexus.status("/health") == 200


def test_valid_names_still_work(nexus):
    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders"})
    assert not r.is_error and r.structured["count"] > 0, r.text
    r = call_tool(nexus.mcp_url, "list-databases", {})
    names = [d["name"] for d in r.structured["databases"]]
    assert "shop" in names and "secret" not in names, names
