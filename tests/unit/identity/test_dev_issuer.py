"""The dev issuer: key file handling, minted tokens, and its OIDC endpoints over real HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from sqlgate.config import OidcConfig
from sqlgate.errors import AuthenticationFailed, ConfigError
from sqlgate.identity import (
    DEV_ISSUER_PATH,
    DevIssuer,
    JwksCache,
    TokenValidator,
    dev_issuer_routes,
    dev_issuer_url,
    dev_issuer_validator,
)

ISSUER = "http://127.0.0.1:8080/dev-issuer"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "nested" / "dev-issuer-key.json"


def test_key_file_is_created_private(key_file: Path) -> None:
    issuer = DevIssuer.load_or_create(key_file, ISSUER)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    data = json.loads(key_file.read_text())
    assert data["kty"] == "EC" and data["crv"] == "P-256" and "d" in data
    assert data["kid"] == issuer.kid
    assert [p.name for p in key_file.parent.iterdir()] == [key_file.name]  # no temp files left


def test_key_is_reused_on_the_next_load(key_file: Path) -> None:
    first = DevIssuer.load_or_create(key_file, ISSUER)
    token = first.mint("agent-1", ["analysts"])
    second = DevIssuer.load_or_create(key_file, ISSUER)
    assert second.kid == first.kid
    assert asyncio.run(dev_issuer_validator(second).validate(token)).subject == "agent-1"


async def test_minted_token_validates(key_file: Path) -> None:
    issuer = DevIssuer.load_or_create(key_file, ISSUER + "/")
    token = issuer.mint(
        "agent-7",
        ["analysts", "readers"],
        email="a7@example.com",
        extra={"realm_access": {"roles": ["x"]}},
    )
    identity = await dev_issuer_validator(issuer).validate(token)
    assert identity.subject == "agent-7"
    assert identity.email == "a7@example.com"
    assert identity.groups == {"analysts", "readers"}
    assert identity.issuer == ISSUER
    assert identity.expires_at is not None and identity.expires_at > time.time() + 3500
    assert identity.claims["aud"] == "sqlgate"
    assert identity.claims["realm_access"] == {"roles": ["x"]}


async def test_expired_and_foreign_audience_dev_tokens_are_refused(key_file: Path) -> None:
    issuer = DevIssuer.load_or_create(key_file, ISSUER)
    validator = dev_issuer_validator(issuer)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await validator.validate(issuer.mint("a", [], ttl_seconds=-60))
    with pytest.raises(AuthenticationFailed, match="wrong audience"):
        await validator.validate(issuer.mint("a", [], audience="elsewhere"))
    other = DevIssuer.load_or_create(key_file.with_name("other.json"), ISSUER)
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        await validator.validate(other.mint("a", []))


def test_extra_claims_may_not_replace_registered_ones(key_file: Path) -> None:
    issuer = DevIssuer.load_or_create(key_file, ISSUER)
    with pytest.raises(ValueError, match="iss, sub"):
        issuer.mint("a", [], extra={"sub": "admin", "iss": "x"})


def test_jwks_and_discovery_publish_only_the_public_key(key_file: Path) -> None:
    issuer = DevIssuer.load_or_create(key_file, ISSUER)
    (key,) = issuer.jwks()["keys"]
    assert "d" not in key
    assert key == {
        "kty": "EC",
        "crv": "P-256",
        "x": key["x"],
        "y": key["y"],
        "kid": issuer.kid,
        "use": "sig",
        "alg": "ES256",
    }
    discovery = issuer.discovery()
    assert discovery["issuer"] == ISSUER
    assert discovery["jwks_uri"] == f"{ISSUER}/jwks.json"


def test_broken_key_file_is_a_config_error(key_file: Path) -> None:
    key_file.parent.mkdir(parents=True)
    key_file.write_text('{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}')
    with pytest.raises(ConfigError, match="delete it"):
        DevIssuer.load_or_create(key_file, ISSUER)
    key_file.write_text("not json")
    with pytest.raises(ConfigError, match="delete it"):
        DevIssuer.load_or_create(key_file, ISSUER)


def test_readable_key_file_is_warned_about(
    key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    DevIssuer.load_or_create(key_file, ISSUER)
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="sqlgate.identity.dev_issuer"):
        DevIssuer.load_or_create(key_file, ISSUER)
    assert "chmod 600" in caplog.text


def test_dev_issuer_url_brackets_ipv6() -> None:
    assert dev_issuer_url("127.0.0.1", 8080) == "http://127.0.0.1:8080/dev-issuer"
    assert dev_issuer_url("::1", 8080) == "http://[::1]:8080/dev-issuer"


@pytest.fixture
def admin_listener() -> Iterator[tuple[socket.socket, str]]:
    """A bound loopback socket and the dev issuer URL it will serve."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    yield sock, dev_issuer_url("127.0.0.1", port)
    sock.close()


async def test_routes_serve_a_working_oidc_issuer(
    key_file: Path, admin_listener: tuple[socket.socket, str]
) -> None:
    sock, url = admin_listener
    issuer = DevIssuer.load_or_create(key_file, url)
    app = Starlette(routes=dev_issuer_routes(issuer))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert url.endswith(DEV_ISSUER_PATH)
        # An ordinary OIDC consumer (our own JwksCache) finds the keys by discovery.
        config = OidcConfig(issuer=url, audience="sqlgate", algorithms=["ES256"])
        cache = JwksCache(config)
        await cache.start()
        try:
            assert cache.index is not None and cache.index.kids == {issuer.kid}
            token = issuer.mint("agent-9", ["ops"])
            identity = await TokenValidator(config, cache).validate(token)
            assert identity.subject == "agent-9" and identity.groups == {"ops"}
        finally:
            await cache.aclose()
    finally:
        server.should_exit = True
        thread.join(5)
