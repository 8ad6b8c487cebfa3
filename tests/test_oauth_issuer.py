"""nexus-mcp against a real OpenID provider process: npm `@mongodb-js/oidc-mock-provider` (pinned in tests/node) on a
loopback port. nexus-mcp finds the provider's keys through its real discovery document; tokens come from its
authorization-code + PKCE flow (tests/support/oidc_mock.py) and are used by the Python `mcp` client."""

from __future__ import annotations

import asyncio
import json
import time

import httpx2
import mcp
import pytest
from mcp import MCPError
from mcp.client.streamable_http import streamable_http_client

from support import call_tool, list_tools, wait_until
from support.oidc_mock import OidcMockProvider, jwt_parts
from support.rawhttp import header, post, stateless_call

READ_TOOLS = {"list-databases", "list-collections", "find", "aggregate", "count", "distinct", "collection-schema",
              "collection-indexes", "collection-storage-size", "db-stats", "explain"}
WRITE_TOOLS = {"insert-many", "update-many", "rename-collection", "create-collection", "create-index"}
ADMIN_TOOLS = {"drop-database", "drop-collection", "drop-index", "delete-many"}
ORDERS = 500  # the test stack's seed data (support/stack.py): shop.orders
KEY_FETCHES = [("GET", "/.well-known/openid-configuration"), ("GET", "/jwks")]


@pytest.fixture
def providers():
    started: list[OidcMockProvider] = []
    yield started
    for p in started:
        p.stop()


def with_provider(stack, providers, tmp_path, *, name="nexus", expiry=3600, leeway="5s", sub="alice", **sections):
    """nexus-mcp whose [server.oauth] issuer is a fresh provider process, and that provider, whose tokens carry
    nexus-mcp's /mcp URL as `aud` (through --payload; else `aud` would be the client id)."""
    n = stack.nexus(name, start=False, server={"audit_log": str(tmp_path / f"{name}-audit.log")}, **sections)
    n.audience = f"{n.url}/mcp"
    p = OidcMockProvider(tmp_path / f"{name}-oidc", payload={"sub": sub, "aud": n.audience}, expiry=expiry)
    providers.append(p)
    n.config_path.write_text(n.config_path.read_text() + "\n".join([
        "", "[server.oauth]", f'issuer = "{p.issuer}"', f'audience = "{n.audience}"', f'leeway = "{leeway}"', ""]))
    n.start()
    n.wait_ready()
    return n, p


def audit(tmp_path, name="nexus") -> list[tuple[str, str, str]]:
    path = tmp_path / f"{name}-audit.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(a["tool"], a["caller"], a["outcome"]) for a in map(json.loads, lines)]


def count_orders(n, token: str) -> tuple[int, dict, str]:
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    return post(n, body, {**headers, "Authorization": f"Bearer {token}"})


def test_a_token_the_provider_issued_completes_calls_with_its_keys_found_through_discovery(
        stack, providers, tmp_path):
    n, p = with_provider(stack, providers, tmp_path)
    assert p.requests() == [], "nexus-mcp fetches nothing before the first token"
    issued = p.token(client_id="agent-1", scope="openid mongodb:read")
    assert (issued.token_type, issued.expires_in) == ("Bearer", 3600)
    claims = issued.claims
    assert claims == {"jti": claims["jti"], "iat": claims["iat"], "exp": claims["iat"] + 3600,
                      "client_id": "agent-1", "scope": "openid mongodb:read", "iss": p.issuer, "aud": n.audience,
                      "sub": "alice"}

    assert {t.name for t in list_tools(n.mcp_url, token=issued.access_token)} == READ_TOOLS
    r = call_tool(n.mcp_url, "count", {"database": "shop", "collection": "orders"}, token=issued.access_token)
    assert (r.is_error, r.structured["count"]) == (False, ORDERS), r.text
    r = call_tool(n.mcp_url, "find", {"database": "shop", "collection": "orders", "limit": 2},
                  token=issued.access_token)
    assert not r.is_error, r.text
    assert audit(tmp_path) == [("count", "alice (client agent-1)", "ok"), ("find", "alice (client agent-1)", "ok")]

    # Its discovery document, then its JWKS, once each (cached for the later requests); nothing else.
    assert [r for r in p.requests() if r[1] not in ("/authorize", "/token")] == KEY_FETCHES
    assert n.metric('nexus_oauth_jwks_fetches_total{outcome="ok"}') == 1
    assert p.discovery()["jwks_uri"] == f"{p.issuer}/jwks"
    [key] = p.jwks()["keys"]
    assert issued.header == {"alg": "RS256", "typ": "JWT", "kid": key["kid"]}
    assert (key["alg"], key["kty"]) == ("RS256", "RSA")
    for part in issued.access_token.split("."):
        assert part not in n.logs() and part not in (tmp_path / "nexus-audit.log").read_text()

    # The provider's ID token is signed by the same key but addressed to the client: not an access token here.
    id_head, id_claims = jwt_parts(issued.id_token)
    assert (id_head, id_claims["aud"], id_claims["iss"]) == (issued.header, "agent-1", p.issuer)
    status, got, text = count_orders(n, issued.id_token)
    assert (status, json.loads(text)) == (401, {
        "error": f"the access token is invalid: audience is not {n.audience}", "reason": "bad_audience"}), text
    assert n.metric('nexus_http_rejected_total{reason="bad_audience"}') == 1


def test_tools_list_and_calls_follow_the_scopes_the_provider_granted(stack, providers, tmp_path):
    n, p = with_provider(stack, providers, tmp_path, mcp={"read_only": False})
    cases = {
        "openid": set(),
        "mongodb:read": READ_TOOLS,
        "mongodb:read mongodb:write": READ_TOOLS | WRITE_TOOLS,
        "mongodb:read mongodb:write mongodb:admin": READ_TOOLS | WRITE_TOOLS | ADMIN_TOOLS,
    }
    tokens = {scope: p.token(client_id="agent-1", scope=scope).access_token for scope in cases}
    for scope, expected in cases.items():
        assert {t.name for t in list_tools(n.mcp_url, token=tokens[scope])} == expected, scope

    insert = {"database": "scratch", "collection": "t", "documents": [{"a": 1}]}
    body, headers = stateless_call("insert-many", insert)
    status, got, text = post(n, body, {**headers, "Authorization": f"Bearer {tokens['mongodb:read']}"})
    assert (status, json.loads(text)["error"]) == (
        403, "the access token lacks scope mongodb:write that tool insert-many needs"), text
    assert header(got, "WWW-Authenticate") == (
        'Bearer error="insufficient_scope", scope="mongodb:write", '
        f'resource_metadata="{n.url}/.well-known/oauth-protected-resource/mcp"')
    with stack.mongo.client() as c:
        assert "scratch" not in c.list_database_names()

    r = call_tool(n.mcp_url, "insert-many", insert, token=tokens["mongodb:read mongodb:write"])
    assert not r.is_error, r.text
    with stack.mongo.client() as c:
        assert [{k: v for k, v in d.items() if k != "_id"} for d in c.scratch.t.find()] == [{"a": 1}]
    assert audit(tmp_path) == [("insert-many", "alice (client agent-1)", "ok")]
    assert n.metric('nexus_http_rejected_total{reason="insufficient_scope"}') == 1


def expired_challenge(n) -> str:
    return (f'Bearer resource_metadata="{n.url}/.well-known/oauth-protected-resource/mcp", scope="mongodb:read", '
            'error="invalid_token", error_description="the access token has expired"')


def mcp_list_tools_on_the_wire(url: str, token: str) -> tuple[list[tuple[str | None, int, str | None]], Exception | None]:
    """tools/list through the Python `mcp` client, with every HTTP response it received (the request's JSON-RPC
    method, status, WWW-Authenticate) and the error it raised (the innermost one), if any."""
    responses: list[tuple[str | None, int, str | None]] = []

    async def seen(response):
        rpc = json.loads(response.request.content or b"{}").get("method")
        responses.append((rpc, response.status_code, response.headers.get("www-authenticate")))

    async def run():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                  event_hooks={"response": [seen]})
        async with mcp.Client(streamable_http_client(url, http_client=http)) as c:
            await c.list_tools()
    error = None
    try:
        asyncio.run(run())
    except BaseException as e:  # noqa: BLE001 - the client wraps its error in task-group exception groups
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        error = e
    return responses, error


def test_a_token_the_provider_issued_already_expired_gets_401_with_the_challenge(stack, providers, tmp_path):
    # --expiry=-120: every token this provider issues expired two minutes before it was issued (leeway 5 s).
    n, p = with_provider(stack, providers, tmp_path, expiry=-120)
    issued = p.token(client_id="agent-1", scope="mongodb:read mongodb:write mongodb:admin")
    assert issued.expires_in == -120
    assert issued.claims["exp"] == issued.claims["iat"] - 120
    status, got, text = count_orders(n, issued.access_token)
    assert (status, json.loads(text)) == (401, {"error": "the access token has expired", "reason": "token_expired"})
    assert header(got, "WWW-Authenticate") == expired_challenge(n)
    # Expiry is judged after the signature: the provider's key was fetched through discovery to check it.
    assert [r for r in p.requests() if r[1] not in ("/authorize", "/token")] == KEY_FETCHES
    assert n.metric('nexus_oauth_jwks_fetches_total{outcome="ok"}') == 1
    assert n.metric('nexus_http_rejected_total{reason="token_expired"}') == 1

    # The Python MCP client gets the same 401 (seen on the wire) for its stateless `server/discover` and for the
    # legacy `initialize` it falls back to, and gets no further.
    responses, error = mcp_list_tools_on_the_wire(n.mcp_url, issued.access_token)
    assert responses == [("server/discover", 401, expired_challenge(n)), ("initialize", 401, expired_challenge(n))]
    assert (type(error), error.code, error.message) == (MCPError, -32603, "Server returned an error response")
    assert n.metric('nexus_http_rejected_total{reason="token_expired"}') == 3
    assert audit(tmp_path) == []
    for part in issued.access_token.split("."):
        assert part not in n.logs()


def test_a_short_lived_token_works_until_its_exp_then_gets_401(stack, providers, tmp_path):
    # Lifetime 4 s and no leeway: the same token is accepted, then refused once the clock passes its `exp`.
    n, p = with_provider(stack, providers, tmp_path, expiry=4, leeway="0s")
    issued = p.token(client_id="agent-1", scope="mongodb:read")
    exp = issued.claims["exp"]
    assert exp == issued.claims["iat"] + 4
    r = call_tool(n.mcp_url, "count", {"database": "shop", "collection": "orders"}, token=issued.access_token)
    assert (r.is_error, r.structured["count"]) == (False, ORDERS), r.text

    accepted = []

    def refused():
        started = time.time()
        status, got, text = count_orders(n, issued.access_token)
        if status == 200:
            accepted.append(started)
            return None
        return status, got, text, time.time()
    status, got, text, when = wait_until(refused, 15, "the token to expire", interval=0.2)
    assert status == 401 and when > exp, f"refused ({status}) at {when}, its exp is {exp}"
    assert all(int(t) <= exp for t in accepted), f"accepted at {accepted}, after exp {exp}"
    assert json.loads(text) == {"error": "the access token has expired", "reason": "token_expired"}
    assert header(got, "WWW-Authenticate") == expired_challenge(n)
    assert audit(tmp_path) == [("count", "alice (client agent-1)", "ok")] * (1 + len(accepted))
