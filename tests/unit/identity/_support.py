"""Test helpers: a real OIDC issuer on loopback (discovery + JWKS over HTTP), token signing."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jws, jwt
from joserfc.jwk import Key, OctKey, RSAKey

AUDIENCE = "sqlgate"
UNSET: Any = object()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeIdp:
    """An IdP that serves discovery and JWKS over real HTTP and counts what it is asked."""

    def __init__(self, realm_path: str = "/realms/test") -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.requests: Counter[str] = Counter()
        self.status = 200
        self._lock = threading.Lock()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with idp._lock:
                    idp.requests[self.path] += 1
                    status = idp.status
                    if self.path == idp.discovery_path:
                        body: Any = {"issuer": idp.issuer, "jwks_uri": idp.jwks_uri}
                    elif self.path == idp.jwks_path:
                        body = idp.jwks
                    else:
                        status, body = 404, {"error": "not found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{port}"
        self.issuer = f"{self.base}{realm_path}"
        self.discovery_path = f"{realm_path}/.well-known/openid-configuration"
        self.jwks_path = f"{realm_path}/protocol/openid-connect/certs"
        self.jwks_uri = f"{self.base}{self.jwks_path}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._stopped = False

    def publish(self, *keys: Key) -> None:
        with self._lock:
            self.jwks = {"keys": [public_jwk(k) for k in keys]}

    @property
    def jwks_requests(self) -> int:
        return self.requests[self.jwks_path]

    @property
    def discovery_requests(self) -> int:
        return self.requests[self.discovery_path]

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(5)


def public_jwk(key: Key) -> dict[str, Any]:
    if isinstance(key, OctKey):
        return dict(key.as_dict())
    return dict(key.as_dict(private=False))


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def default_claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    """Good claims for `issuer`; an override of UNSET removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "agent-1",
        "email": "agent1@example.com",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "groups": ["analysts", "readers"],
    }
    for name, value in overrides.items():
        if value is UNSET:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign(key: Key, claims: dict[str, Any], alg: str | None = None, **header: Any) -> str:
    if alg is None:
        alg = "RS256" if isinstance(key, RSAKey) else "ES256"
    full_header: dict[str, Any] = {"alg": alg}
    if key.kid is not None:
        full_header["kid"] = key.kid
    for name, value in header.items():
        if value is UNSET:
            full_header.pop(name, None)
        else:
            full_header[name] = value
    return jwt.encode(full_header, claims, key, algorithms=[alg])


def sign_raw(key: Key, payload: bytes, alg: str = "RS256", **header: Any) -> str:
    """Sign an arbitrary payload (for claims JSON that `jwt.encode` would never produce)."""
    return jws.serialize_compact(
        {"alg": alg, "kid": key.kid, **header}, payload, key, algorithms=[alg]
    )


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A hand-built compact token with whatever header and signature the test wants."""
    return f"{b64(header)}.{b64(claims)}.{b64(signature) if signature else ''}"
