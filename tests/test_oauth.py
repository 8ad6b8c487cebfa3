"""nexus-mcp as an OAuth 2.1 resource server: access tokens from a (local) identity provider, checked against its
JWKS; Protected Resource Metadata; 401/403 challenges; scopes per tool class; identity in the audit line."""

from __future__ import annotations

import json

import pytest

from support import call_tool, list_tools
from support.issuer import Issuer
from support.rawhttp import header, post, sse_messages, stateless_call

READ_TOOLS = {"list-databases", "list-collections", "find", "aggregate", "count", "distinct", "collection-schema",
              "collection-indexes", "collection-storage-size", "db-stats", "explain"}
WRITE_TOOLS = {"insert-many", "update-many", "rename-collection", "create-collection", "create-index"}
ADMIN_TOOLS = {"drop-database", "drop-collection", "drop-index", "delete-many"}


@pytest.fixture
def issuer():
    i = Issuer()
    yield i
    i.stop()


def oauth_nexus(stack, issuer, tmp_path, name="nexus", server=None, **sections):
    """nexus-mcp with [server.oauth] pointing at `issuer`, its audience being its own /mcp URL."""
    n = stack.nexus(name, start=False, server={"audit_log": str(tmp_path / f"{name}-audit.log"), **(server or {})},
                    **sections)
    n.audience = f"{n.url}/mcp"
    n.config_path.write_text(n.config_path.read_text() + "\n".join([
        "", "[server.oauth]", f'issuer = "{issuer.url}"', f'audience = "{n.audience}"', 'leeway = "5s"', ""]))
    n.start()
    n.wait_ready()
    return n


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_protected_resource_metadata_and_the_challenge_point_clients_to_the_issuer(stack, issuer, tmp_path):
    n = oauth_nexus(stack, issuer, tmp_path)
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        status, body = n.get(path)
        assert (status, body) == (200, {
            "resource": n.audience, "authorization_servers": [issuer.url],
            "scopes_supported": ["mongodb:read", "mongodb:write", "mongodb:admin"],
            "bearer_methods_supported": ["header"]}), path
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    status, got, text = post(n, body, headers)
    assert status == 401, text
    assert header(got, "WWW-Authenticate") == (
        f'Bearer resource_metadata="{n.url}/.well-known/oauth-protected-resource/mcp", scope="mongodb:read"')


def test_a_read_token_lists_and_calls_only_read_tools_and_names_its_subject(stack, issuer, tmp_path):
    n = oauth_nexus(stack, issuer, tmp_path, mcp={"read_only": False})
    token = issuer.token(audience=n.audience, scope="openid mongodb:read", client_id="agent-1")
    tools = {t.name for t in list_tools(n.mcp_url, token=token)}
    assert tools == READ_TOOLS
    r = call_tool(n.mcp_url, "count", {"database": "shop", "collection": "orders"}, token=token)
    assert not r.is_error, r.text
    audit = [json.loads(line) for line in (tmp_path / "nexus-audit.log").read_text().splitlines()]
    assert [(a["tool"], a["caller"], a["outcome"]) for a in audit] == [("count", "alice (client agent-1)", "ok")]
    assert token not in n.logs()

    # A write tool needs mongodb:write: 403 with the scope to ask for, before anything reaches MongoDB.
    body, headers = stateless_call("insert-many", {"database": "scratch", "collection": "t", "documents": [{"a": 1}]})
    status, got, text = post(n, body, {**headers, **bearer(token)})
    assert status == 403, text
    assert n.metric('nexus_http_rejected_total{reason="insufficient_scope"}') == 1
    assert header(got, "WWW-Authenticate") == (
        'Bearer error="insufficient_scope", scope="mongodb:write", '
        f'resource_metadata="{n.url}/.well-known/oauth-protected-resource/mcp"')
    assert json.loads(text)["error"] == "the access token lacks scope mongodb:write that tool insert-many needs"
    with stack.mongo.client() as c:
        assert "scratch" not in c.list_database_names()


def test_scopes_map_to_tool_classes_and_read_only_mode_still_wins(stack, issuer, tmp_path):
    n = oauth_nexus(stack, issuer, tmp_path, mcp={"read_only": False})
    writer = issuer.token(audience=n.audience, scope="mongodb:read mongodb:write", sub="bob")
    assert {t.name for t in list_tools(n.mcp_url, token=writer)} == READ_TOOLS | WRITE_TOOLS
    r = call_tool(n.mcp_url, "insert-many", {"database": "scratch", "collection": "t", "documents": [{"a": 1}]},
                  token=writer)
    assert not r.is_error, r.text
    admin = issuer.token(audience=n.audience, scope="mongodb:read mongodb:write mongodb:admin", sub="root")
    assert {t.name for t in list_tools(n.mcp_url, token=admin)} == READ_TOOLS | WRITE_TOOLS | ADMIN_TOOLS

    ro = oauth_nexus(stack, issuer, tmp_path, name="ro")
    admin_ro = issuer.token(audience=ro.audience, scope="mongodb:read mongodb:write mongodb:admin", sub="root")
    assert {t.name for t in list_tools(ro.mcp_url, token=admin_ro)} == READ_TOOLS


@pytest.mark.parametrize("case", ["expired", "audience", "issuer", "signature", "hs256", "hs256-public-key", "none",
                                  "typ"])
def test_tokens_that_must_not_pass_get_401_invalid_token(stack, issuer, tmp_path, case):
    n = oauth_nexus(stack, issuer, tmp_path)
    other = Issuer()
    other.stop()
    token = {
        "expired": lambda: issuer.token(audience=n.audience, lifetime=-60),
        "audience": lambda: issuer.token(audience="https://elsewhere.example/mcp"),
        "issuer": lambda: issuer.token(audience=n.audience, issuer="https://evil.example"),
        "signature": lambda: issuer.token(audience=n.audience, key=other.keys[0][1]),
        "hs256": lambda: issuer.token(audience=n.audience, key="a-shared-secret-of-enough-length!", algorithm="HS256"),
        # The classic confusion attack: the issuer's *public* key used as an HMAC secret.
        "hs256-public-key": lambda: forge_hs256_with_public_key(issuer, n.audience),
        "none": lambda: issuer.token(audience=n.audience, key=None, algorithm="none"),
        "typ": lambda: issuer.token(audience=n.audience, typ="id_token+jwt"),
    }[case]()
    expected = {
        "expired": "the access token has expired",
        "audience": f"the access token is invalid: audience is not {n.audience}",
        "issuer": f"the access token is invalid: issuer is not {issuer.url}",
        "signature": "the access token is invalid: bad signature",
        "hs256": "the access token is invalid: algorithm HS256 is not allowed (server.oauth.algorithms)",
        "hs256-public-key": "the access token is invalid: algorithm HS256 is not allowed (server.oauth.algorithms)",
        "none": "the access token is invalid: unreadable header",
        "typ": 'the access token is invalid: typ "id_token+jwt" is not an access token',
    }[case]
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    status, got, text = post(n, body, {**headers, **bearer(token)})
    assert status == 401, text
    assert json.loads(text)["error"].startswith(expected), text
    reason = {"expired": "token_expired", "audience": "bad_audience", "issuer": "bad_issuer"}.get(case, "token_invalid")
    assert json.loads(text)["reason"] == reason
    assert n.metric(f'nexus_http_rejected_total{{reason="{reason}"}}') == 1
    challenge = header(got, "WWW-Authenticate")
    assert challenge.startswith(
        f'Bearer resource_metadata="{n.url}/.well-known/oauth-protected-resource/mcp", scope="mongodb:read", '
        'error="invalid_token", error_description="'), challenge
    assert token not in n.logs() and token not in text


def forge_hs256_with_public_key(issuer, audience: str) -> str:
    import base64
    import hashlib
    import hmac
    import time
    from cryptography.hazmat.primitives import serialization
    public_pem = issuer.keys[-1][1].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": issuer.keys[-1][0]}).encode())
    body = b64(json.dumps({"iss": issuer.url, "aud": audience, "sub": "mallory", "scope": "mongodb:admin",
                           "exp": now + 300}).encode())
    signature = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def test_rotated_keys_are_refetched_and_cached_keys_outlive_an_idp_outage(stack, issuer, tmp_path):
    n = oauth_nexus(stack, issuer, tmp_path)
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    first = issuer.token(audience=n.audience)
    assert post(n, body, {**headers, **bearer(first)})[0] == 200
    assert issuer.requests.count("/jwks") == 1
    assert post(n, body, {**headers, **bearer(first)})[0] == 200
    assert issuer.requests.count("/jwks") == 1, "keys are cached"

    issuer.rotate()
    rotated = issuer.token(audience=n.audience)
    status, _, text = post(n, body, {**headers, **bearer(rotated)})
    assert status == 200, text
    assert issuer.requests.count("/jwks") == 2, "an unknown kid refetches once"
    # A token naming a key the issuer never published refetches at most once per 10 s.
    bogus = issuer.token(audience=n.audience, kid="no-such-kid")
    for _ in range(3):
        status, _, text = post(n, body, {**headers, **bearer(bogus)})
        assert status == 401 and "publishes no key" in text, text
    assert issuer.requests.count("/jwks") == 2

    issuer.stop()
    status, _, text = post(n, body, {**headers, **bearer(rotated)})
    assert status == 200, "the cached keys keep serving while the issuer is down"
    assert n.metric('nexus_oauth_jwks_fetches_total{outcome="ok"}') == 2
    surfaces = [n.logs(), str(n.get("/metrics")[1]), str(n.get("/ready?verbose")[1]),
                (tmp_path / "nexus-audit.log").read_text()]
    for token in (first, rotated, bogus):
        for part in token.split("."):
            assert all(part not in text for text in surfaces)


def test_a_key_rotated_while_the_issuer_is_down_is_refused_and_logged(stack, issuer, tmp_path):
    n = oauth_nexus(stack, issuer, tmp_path)
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    first = issuer.token(audience=n.audience)
    assert post(n, body, {**headers, **bearer(first)})[0] == 200
    issuer.stop()
    issuer.rotate()
    unseen = issuer.token(audience=n.audience)
    status, _, text = post(n, body, {**headers, **bearer(unseen)})
    assert (status, json.loads(text)["error"]) == (
        401, f"the access token is invalid: the issuer publishes no key {json.dumps(issuer.keys[-1][0])}"), text
    warned = [line for line in n.log_lines()
              if line.get("message") == "oauth: fetching the issuer's keys failed; keeping the cached ones"]
    assert len(warned) == 1 and warned[0]["cached"] is True and f"{issuer.url}/jwks" in warned[0]["cause"], warned
    assert n.metric('nexus_oauth_jwks_fetches_total{outcome="ok"}') == 1
    assert n.metric('nexus_oauth_jwks_fetches_total{outcome="failed"}') == 1
    assert post(n, body, {**headers, **bearer(first)})[0] == 200, "the cached key still serves"


def test_an_unreachable_issuer_without_cached_keys_is_503_not_401(stack, issuer, tmp_path):
    n = oauth_nexus(stack, issuer, tmp_path)
    token = issuer.token(audience=n.audience)
    issuer.stop()
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    status, got, text = post(n, body, {**headers, **bearer(token)})
    assert status == 503, text
    assert n.metric('nexus_http_rejected_total{reason="auth_unavailable"}') == 1
    assert header(got, "Retry-After") == "5"
    assert "signing keys are unavailable" in json.loads(text)["error"]


def test_static_tokens_still_work_beside_oauth(stack, issuer, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("ops:static-secret-token\n")
    n = oauth_nexus(stack, issuer, tmp_path, server={"auth_tokens_file": str(tokens)})
    r = call_tool(n.mcp_url, "count", {"database": "shop", "collection": "orders"}, token="static-secret-token")
    assert not r.is_error, r.text
    body, headers = stateless_call("count", {"database": "shop", "collection": "orders"})
    status, _, text = post(n, body, {**headers, **bearer("wrong-static-token")})
    assert (status, json.loads(text)["error"]) == (401, "invalid bearer token")


def test_oauth_settings_are_checked_at_start(stack, tmp_path):
    cases = [
        ('issuer = "http://idp.example.com"\naudience = "https://n/mcp"', "server.oauth.issuer",
         "must be https:// (plain http is allowed only on a loopback address)"),
        ('issuer = "https://idp.example.com"\naudience = "https://n/mcp"\nalgorithms = ["HS256"]',
         "server.oauth.algorithms", "HS256 is refused"),
        ('issuer = "https://idp.example.com"\naudience = "/mcp"', "server.oauth.audience", "must be the absolute URL"),
    ]
    for i, (oauth, key, why) in enumerate(cases):
        n = stack.nexus(f"bad{i}", start=False)
        n.config_path.write_text(n.config_path.read_text() + f"\n[server.oauth]\n{oauth}\n")
        done = n.run("serve", timeout=20)
        assert done.returncode == 64, done.stderr
        assert f"{key}: " in done.stderr and why in done.stderr, done.stderr
    # [server.oauth] counts as authentication for a non-loopback listen.
    n = stack.nexus("public", start=False, server={"listen": "0.0.0.0:0"})
    n.config_path.write_text(n.config_path.read_text() + (
        '\n[server.oauth]\nissuer = "https://idp.example.com"\naudience = "https://nexus.example.com/mcp"\n'))
    done = n.run("check", timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
