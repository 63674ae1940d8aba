"""Client login through the gateway: tokens, targets, TLS rules, expiry."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sqlgate.protocols.postgres.messages import (
    AuthenticationCleartextPassword,
    ErrorResponse,
    PasswordMessage,
    SSLRequest,
    StartupMessage,
    decode_backend,
)
from tests.integration.conftest import POLICIES
from tests.support.gateway import RunningGateway, gateway_yaml, start_gateway
from tests.support.pgserver import PgServer


def _connect_error(dsn: str) -> psycopg.OperationalError:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dsn).close()
    return info.value


def test_unknown_target_is_3d000_without_listing_targets(
    gateway: RunningGateway, human_token: str
) -> None:
    error = _connect_error(gateway.dsn(human_token, dbname="nope"))
    assert 'database "nope" does not exist' in str(error)
    assert "app" not in str(error).replace('"nope"', "")


def test_identity_without_policy_is_refused_with_28000(gateway: RunningGateway) -> None:
    token = gateway.token("mallory", ["marketing"])
    error = _connect_error(gateway.dsn(token))
    assert "no policy grants mallory access to target" in str(error)


@pytest.mark.parametrize(
    "make_password",
    [
        pytest.param(lambda g: "", id="empty"),
        pytest.param(lambda g: "not-a-jwt", id="garbage"),
        pytest.param(lambda g: g.token("erin", ["engineering"], ttl_seconds=-120), id="expired"),
        pytest.param(lambda g: g.token("erin", ["engineering"], audience="other"), id="audience"),
        pytest.param(lambda g: _tamper(g.token("erin", ["marketing"])), id="tampered"),
        pytest.param(lambda g: _alg_none(g.token("erin", ["engineering"])), id="alg-none"),
    ],
)
def test_bad_tokens_get_a_generic_28p01(gateway: RunningGateway, make_password: object) -> None:
    password = make_password(gateway)  # type: ignore[operator]
    error = raw_login_error(gateway, password)
    assert error.sqlstate == "28P01"
    assert error.message == 'sqlgate: authentication failed for user "agent"'
    assert error.fields["S"] == "FATAL"


def raw_login_error(gateway: RunningGateway, password: str) -> ErrorResponse:
    """Log in over TLS by hand and return the ErrorResponse, so its SQLSTATE can be checked."""
    raw = socket.create_connection((gateway.host, gateway.port), timeout=10)
    raw.sendall(SSLRequest().encode())
    assert raw.recv(1) == b"S"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(raw) as sock:
        sock.sendall(StartupMessage({"user": "agent", "database": "app"}).encode())
        assert sock.recv(9) == AuthenticationCleartextPassword().encode()
        sock.sendall(PasswordMessage(password.encode() + b"\x00").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data[:1] == b"E", data
    message = decode_backend(data[0], data[5:])
    assert isinstance(message, ErrorResponse)
    return message


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, object]:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def _tamper(token: str) -> str:
    header, _payload_segment, signature = token.split(".")
    claims = _payload(token)
    claims["groups"] = ["engineering"]
    return f"{header}.{_b64(claims)}.{signature}"


def _alg_none(token: str) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_payload(token))}."


def test_token_expiring_during_session_closes_it(gateway: RunningGateway) -> None:
    token = gateway.token("erin", ["engineering"], ttl_seconds=2)
    with psycopg.connect(gateway.dsn(token), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        time.sleep(2.5)
        with pytest.raises(psycopg.OperationalError) as info:
            conn.execute("SELECT 1")
        assert "token has expired" in str(info.value)


@pytest.fixture(scope="module")
def strict_gateway(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway that does not allow plaintext, even on loopback."""
    work: Path = tmp_path_factory.mktemp("strict")
    text = gateway_yaml(pg_server.port, work, policies=POLICIES).replace(
        "allow_plaintext_on_loopback: true", "allow_plaintext_on_loopback: false"
    )
    running = start_gateway(text)
    yield running
    running.stop()


def test_plaintext_token_is_refused_before_it_is_sent(strict_gateway: RunningGateway) -> None:
    token = strict_gateway.token("erin", ["engineering"])
    error = _connect_error(strict_gateway.dsn(token, sslmode="disable"))
    assert "TLS is required" in str(error)
    with psycopg.connect(strict_gateway.dsn(token, sslmode="require")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.pgconn.ssl_in_use


def test_plaintext_allowed_on_loopback_when_configured(
    gateway: RunningGateway, human_token: str
) -> None:
    with psycopg.connect(gateway.dsn(human_token, sslmode="disable")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert not conn.info.pgconn.ssl_in_use


def test_admin_health_and_readiness(gateway: RunningGateway) -> None:
    import httpx

    base = f"http://127.0.0.1:{gateway.admin_port}"
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["listeners"] is True
    jwks = httpx.get(f"{base}/dev-issuer/jwks.json").json()
    assert jwks["keys"] and "d" not in jwks["keys"][0]


def test_backend_credentials_never_reach_the_client(
    gateway: RunningGateway, human_token: str
) -> None:
    import os

    secret = os.environ["SQLGATE_TEST_SVC_PASSWORD"]
    with psycopg.connect(gateway.dsn(human_token)) as conn:
        params = conn.info.get_parameters()
        assert secret not in json.dumps(params)
        assert conn.execute("SELECT current_user").fetchone() == ("sqlgate_svc",)


def test_failed_logins_are_rate_limited_per_address(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("ratelimit")
    text = gateway_yaml(pg_server.port, work, policies=POLICIES).replace(
        "dev_issuer: true", "dev_issuer: true\n  failed_logins_per_minute: 3"
    )
    limited = start_gateway(text)
    try:
        good = limited.token("erin", ["engineering"])
        with psycopg.connect(limited.dsn(good)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        for _ in range(3):
            assert raw_login_error(limited, "wrong").sqlstate == "28P01"
        # Now even a valid token from this address is refused, with the same generic error.
        error = raw_login_error(limited, good)
        assert error.sqlstate == "28P01"
    finally:
        limited.stop()


def test_expired_token_cannot_run_an_already_prepared_statement(gateway: RunningGateway) -> None:
    token = gateway.token("erin", ["engineering"], ttl_seconds=2)
    with psycopg.connect(gateway.dsn(token), autocommit=True) as conn:
        for _ in range(3):  # prepared server-side: later runs are Bind/Execute only
            conn.execute("SELECT %s::int", (1,), prepare=True)
        time.sleep(2.5)
        with pytest.raises(psycopg.OperationalError, match="token has expired"):
            conn.execute("SELECT %s::int", (1,), prepare=True)
