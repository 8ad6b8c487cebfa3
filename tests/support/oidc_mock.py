"""A real OpenID provider process for tests: npm `@mongodb-js/oidc-mock-provider` (pinned in tests/node), started
through its CLI on a loopback port it picks itself, stopped by PID.

What the provider is (read from its source, dist/index.js of 0.13.18):
- `GET /.well-known/openid-configuration`: `issuer` (`http://<--host>:<port>`), `jwks_uri` (`/jwks`),
  `authorization_endpoint` (`/authorize`), `token_endpoint` (`/token`), `device_authorization_endpoint` (`/device`).
- `GET /jwks`: one RSA-2048 key, `alg: RS256`, a random 16-hex-digit `kid`; both are made anew at every start.
- `/authorize` logs nobody in: it answers `307` to `redirect_uri?code=…&state=…` at once (`response_type=code`);
  `POST /token` (form-encoded) trades the code for tokens after checking PKCE (`S256` only). `/device` + `/token`
  with `device_code` is the same without PKCE.
- Tokens: header `{"alg": "RS256", "typ": "JWT", "kid": …}`; access-token claims `jti`, `iat`,
  `exp = iat + --expiry` (no `nbf`), `client_id` and `scope` as the client asked, `iss`, `aud = client_id`, then the
  `--payload` JSON on top (it wins: its `aud` replaces the client id, its `sub` is the subject). The ID token has the
  same claims with `aud` = the client id again. `--expiry` applies to every token the process issues (negative
  values give tokens that are expired when issued).
- `--log-requests` is inverted in the CLI: the default (true) logs nothing; `--log-requests=false` logs each request
  as `METHOD URL` (POST form fields appear as the URL's query).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import secrets
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .nexus import REPO
from .procs import Proc, wait_until

NODE_DIR = REPO / "tests" / "node"
PROVIDER = NODE_DIR / "node_modules" / "@mongodb-js" / "oidc-mock-provider" / "bin" / "oidc-mock-provider.js"
REDIRECT_URI = "http://127.0.0.1:1/callback"  # never contacted: the code is read from the 307's Location


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwt_parts(token: str) -> tuple[dict, dict]:
    """A JWT's header and claims, unverified (to state what the provider issued)."""
    head, claims, _signature = token.split(".")
    return _b64json(head), _b64json(claims)


@dataclass
class Issued:
    """The provider's token response."""
    access_token: str
    id_token: str | None
    token_type: str
    expires_in: int

    @property
    def header(self) -> dict:
        return jwt_parts(self.access_token)[0]

    @property
    def claims(self) -> dict:
        return jwt_parts(self.access_token)[1]


class OidcMockProvider:
    """One `oidc-mock-provider` process on 127.0.0.1. `payload`: claims put over every token's (e.g. `sub`, `aud`);
    `expiry`: the tokens' lifetime in seconds (`exp - iat`, may be negative)."""

    def __init__(self, directory: Path, *, payload: dict, expiry: int = 3600, name: str = "oidc"):
        node = shutil.which("node")
        if not node:
            raise RuntimeError("node is missing: run `make deps` (scripts/install-test-deps.sh)")
        if not PROVIDER.exists():
            raise RuntimeError(f"{PROVIDER} is missing: run `make deps` (scripts/install-test-deps.sh)")
        directory.mkdir(parents=True, exist_ok=True)
        self.payload = dict(payload)
        self.expiry = expiry
        # --port 0: the provider binds a free port itself and names it in its issuer line (no port race).
        self.proc = Proc([node, str(PROVIDER), "--port", "0", "--host", "127.0.0.1", "--log-requests=false",
                          "--payload", json.dumps(self.payload), f"--expiry={expiry}", "--skip-refresh-token"],
                         directory / f"{name}.log")
        # The CLI prints the issuer after the server listens and the key pair exists.
        found = wait_until(
            lambda: re.search(r"^OIDC mock identity provider server issuer: (http://127\.0\.0\.1:(\d+))$",
                              self.proc.text(), re.M) or (None if self.proc.alive() else self._died()),
            20, "oidc-mock-provider to print its issuer", on_timeout=self.proc.text)
        self.issuer: str = found.group(1)
        self.port = int(found.group(2))

    def _died(self):
        raise AssertionError(f"oidc-mock-provider exited ({self.proc.popen.returncode}):\n{self.proc.text()}")

    # -- what it serves ------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
            conn.request(method, path, body=urllib.parse.urlencode(body) if body is not None else None,
                         headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> dict:
        status, _, data = self._request("GET", path)
        assert status == 200, (path, status, data)
        return json.loads(data)

    def discovery(self) -> dict:
        return self.get_json("/.well-known/openid-configuration")

    def jwks(self) -> dict:
        return self.get_json("/jwks")

    def requests(self) -> list[tuple[str, str]]:
        """Every request it answered so far, as (method, path), in order (from its log)."""
        out = []
        for line in self.proc.text().splitlines():
            m = re.match(r"^(GET|POST|PUT|DELETE|HEAD|OPTIONS) (\S+)$", line)
            if m:
                out.append((m.group(1), urllib.parse.urlsplit(m.group(2)).path))
        return out

    # -- getting a token, as an MCP client would: authorization code + PKCE (S256), no browser ------------------
    def token(self, *, client_id: str, scope: str) -> Issued:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_hex(8)
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client_id, "scope": scope, "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": state})
        status, headers, data = self._request("GET", f"/authorize?{query}")
        assert status == 307, (status, data)
        location = urllib.parse.urlsplit(headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI, headers["location"]
        params = dict(urllib.parse.parse_qsl(location.query))
        assert params["state"] == state, params
        status, _, data = self._request("POST", "/token", {
            "grant_type": "authorization_code", "code": params["code"], "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI, "client_id": client_id})
        assert status == 200, (status, data)
        body = json.loads(data)
        return Issued(body["access_token"], body.get("id_token"), body["token_type"], body["expires_in"])

    def stop(self) -> None:
        self.proc.stop()
