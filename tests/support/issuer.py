"""A local OAuth issuer for tests: an HTTP server on loopback (a thread of the test process) serving an OpenID
discovery document and a JWKS, and minting access tokens with PyJWT. Keys can be rotated and the server stopped
(to test cached keys and refetching). What it is not: an authorization server (no /authorize, no /token)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .procs import free_port


class Issuer:
    def __init__(self, kind: str = "RS256"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.kind = kind
        self.keys: list[tuple[str, object]] = []
        self.requests: list[str] = []
        self.rotate()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def rotate(self) -> str:
        """Adds a new signing key (published next to the old ones) and signs with it from now on."""
        kid = uuid.uuid4().hex[:12]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if self.kind.startswith(("RS", "PS")) \
            else ec.generate_private_key(ec.SECP256R1())
        self.keys.append((kid, key))
        return kid

    def jwks(self) -> dict:
        keys = []
        for kid, key in self.keys:
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[self.kind].to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": self.kind})
        return {"keys": keys}

    def token(self, *, audience: str, scope: str = "mongodb:read", sub: str = "alice", client_id: str | None = None,
              lifetime: int = 300, issuer: str | None = None, typ: str = "at+jwt", kid: str | None = None,
              key=None, algorithm: str | None = None, **claims) -> str:
        now = int(time.time())
        payload = {"iss": issuer or self.url, "aud": audience, "sub": sub, "scope": scope, "iat": now,
                   "nbf": now - 5, "exp": now + lifetime, **claims}
        if client_id:
            payload["client_id"] = client_id
        last_kid, last_key = self.keys[-1]
        if algorithm == "none":
            return jwt.encode(payload, None, algorithm="none", headers={"typ": typ})
        return jwt.encode(payload, key if key is not None else last_key, algorithm=algorithm or self.kind,
                          headers={"typ": typ, "kid": kid or last_kid})

    def start(self) -> None:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
