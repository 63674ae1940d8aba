"""The gateway's own login to servers: SCRAM, md5, cleartext, and backend TLS modes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.conftest import POLICIES, seed_app_database
from tests.support.gateway import RunningGateway, gateway_yaml, start_gateway
from tests.support.pgserver import PgServer, start_pg_server


def _server(tmp: Path, **kwargs: object) -> PgServer:
    server = start_pg_server(tmp, **kwargs)  # type: ignore[arg-type]
    seed_app_database(server)
    return server


@pytest.fixture(scope="module")
def md5_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = _server(tmp_path_factory.mktemp("md5"), auth="md5")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = _server(tmp_path_factory.mktemp("tls"), auth="scram-sha-256", hostssl_only=True)
    yield server
    server.stop()


def _gateway_for(server: PgServer, tmp: Path, tls: str, ca: Path | None = None,
                 host: str = "127.0.0.1") -> RunningGateway:
    text = gateway_yaml(server.port, tmp, policies=POLICIES).replace(
        "    tls: disable\n", f"    tls: {tls}\n" + (f"    tls_ca_file: {ca}\n" if ca else "")
    ).replace("    host: 127.0.0.1\n", f"    host: {host}\n")
    return start_gateway(text)


def _server_side_ssl(conn: psycopg.Connection[tuple[object, ...]]) -> object:
    row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None
    return row[0]


def test_backend_md5_auth(md5_server: PgServer, tmp_path: Path) -> None:
    gateway = _gateway_for(md5_server, tmp_path, "disable")
    try:
        token = gateway.token("erin", ["engineering"])
        with psycopg.connect(gateway.dsn(token)) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)
            assert _server_side_ssl(conn) is False
    finally:
        gateway.stop()


def test_backend_scram_auth_over_required_tls(tls_server: PgServer, tmp_path: Path) -> None:
    gateway = _gateway_for(tls_server, tmp_path, "require")
    try:
        token = gateway.token("erin", ["engineering"])
        with psycopg.connect(gateway.dsn(token)) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)
            assert _server_side_ssl(conn) is True
    finally:
        gateway.stop()


def test_backend_verify_full_with_ca(tls_server: PgServer, tmp_path: Path) -> None:
    assert tls_server.ca_cert_path is not None
    gateway = _gateway_for(tls_server, tmp_path, "verify-full", ca=tls_server.ca_cert_path,
                           host="localhost")
    try:
        token = gateway.token("erin", ["engineering"])
        with psycopg.connect(gateway.dsn(token)) as conn:
            assert _server_side_ssl(conn) is True
    finally:
        gateway.stop()


def test_backend_refusal_is_reported_without_internals(tls_server: PgServer,
                                                       tmp_path: Path) -> None:
    # tls: disable against a hostssl-only server: the server refuses the gateway's login.
    gateway = _gateway_for(tls_server, tmp_path, "disable")
    try:
        token = gateway.token("erin", ["engineering"])
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(gateway.dsn(token)).close()
        message = str(info.value)
        assert 'cannot connect to target "app"' in message
        assert "pg_hba" not in message and "sqlgate_svc" not in message
    finally:
        gateway.stop()


def test_wrong_backend_password_is_an_operator_error(pg_server: PgServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    text = gateway_yaml(pg_server.port, tmp_path, policies=POLICIES).replace(
        "password_env: SQLGATE_TEST_SVC_PASSWORD", "password: not-the-password"
    )
    gateway = start_gateway(text)
    try:
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(gateway.dsn(gateway.token("erin", ["engineering"]))).close()
        assert 'cannot connect to target "app"' in str(info.value)
    finally:
        gateway.stop()


def test_backend_cleartext_password_auth(tmp_path_factory: pytest.TempPathFactory,
                                         tmp_path: Path) -> None:
    server = _server(tmp_path_factory.mktemp("cleartext"), auth="password")
    try:
        gateway = _gateway_for(server, tmp_path, "disable")
        try:
            with psycopg.connect(gateway.dsn(gateway.token("erin", ["engineering"]))) as conn:
                assert conn.execute("SELECT count(*) FROM orders").fetchone() == (100,)
        finally:
            gateway.stop()
    finally:
        server.stop()
