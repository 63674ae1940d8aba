"""Self-checks for the test support code: throwaway PostgreSQL servers and the JDBC probe."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from .jdbc import PROBE_STEPS, JdbcProbeError, jdbc_url, run_jdbc_probe
from .pgserver import PgServer, PgServerError, start_pg_server

pytestmark = pytest.mark.integration

ALICE_PW = "alice pw with 'quotes' \\ and spaces"


def _whoami(dsn: str) -> tuple[str, bool]:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return str(row[0]), bool(row[1])


def _password_prefix(server: PgServer, role: str) -> str:
    rows = server.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", params=[role])
    return str(rows[0][0])


@pytest.fixture(scope="session")
def jdbc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jdbc-cache")


@pytest.fixture(scope="module")
def scram_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    with start_pg_server(tmp_path_factory.mktemp("pg-scram")) as server:
        server.create_role("alice", ALICE_PW)
        yield server


@pytest.fixture(scope="module")
def ssl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    with start_pg_server(tmp_path_factory.mktemp("pg-ssl"), ssl=True, hostssl_only=True) as server:
        server.create_role("carol", "carol-pw")
        yield server


# --------------------------------------------------------------------------- pgserver


def test_scram_server_right_and_wrong_password(scram_server: PgServer) -> None:
    assert scram_server.auth == "scram-sha-256"
    assert scram_server.execute("SHOW password_encryption") == [("scram-sha-256",)]
    assert _password_prefix(scram_server, "alice").startswith("SCRAM-SHA-256$")

    assert _whoami(scram_server.dsn("alice", ALICE_PW)) == ("alice", False)
    assert _whoami(scram_server.dsn())[0] == "postgres"  # superuser over TCP with its password

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(scram_server.dsn("alice", "wrong"), connect_timeout=10).close()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(scram_server.dsn("alice"), connect_timeout=10).close()  # none given


def test_execute_and_helpers(scram_server: PgServer) -> None:
    scram_server.create_database("appdb", owner="alice")
    assert scram_server.execute("SELECT current_database()", dbname="appdb") == [("appdb",)]
    # DDL returns [], several statements return the last result set.
    assert scram_server.execute("CREATE TABLE t (x int)", dbname="appdb") == []
    assert scram_server.execute(
        "INSERT INTO t VALUES (1), (2); SELECT sum(x) FROM t; SELECT 'last'", dbname="appdb"
    ) == [("last",)]
    owner = scram_server.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'"
    )
    assert owner == [("alice",)]
    assert scram_server.execute("SHOW max_connections") == [("200",)]
    assert scram_server.execute("SHOW fsync") == [("off",)]
    assert scram_server.execute("SHOW listen_addresses") == [("127.0.0.1",)]
    assert scram_server.log_path.is_file()
    assert scram_server.log_path.parent == scram_server.datadir


def test_md5_server_and_stop_cleans_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("pg-md5")
    server = start_pg_server(base, auth="md5")
    try:
        assert server.execute("SHOW password_encryption") == [("md5",)]
        server.create_role("bob", "bob-pw")
        assert _password_prefix(server, "bob").startswith("md5")
        assert _password_prefix(server, "postgres").startswith("md5")
        assert _whoami(server.dsn("bob", "bob-pw"))[0] == "bob"
        assert _whoami(server.dsn())[0] == "postgres"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(server.dsn("bob", "nope"), connect_timeout=10).close()
        datadir, port = server.datadir, server.port
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not datadir.exists()
    assert list(base.iterdir()) == []  # instance dir (or its symlink) removed
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    with pytest.raises(PgServerError, match="stopped"):
        server.execute("SELECT 1")


@pytest.mark.parametrize("auth", ["password", "trust"])
def test_password_and_trust_auth(tmp_path_factory: pytest.TempPathFactory, auth: str) -> None:
    settings = {"max_connections": "1000"} if auth == "trust" else None
    with start_pg_server(tmp_path_factory.mktemp(f"pg-{auth}"), auth=auth, settings=settings) as s:
        s.create_role("dave", "dave-pw")
        assert _whoami(s.dsn("dave", "dave-pw"))[0] == "dave"
        if auth == "trust":
            assert _whoami(s.dsn("dave", "anything"))[0] == "dave"
            assert s.execute("SHOW max_connections") == [("1000",)]
        else:
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(s.dsn("dave", "nope"), connect_timeout=10).close()


def test_ssl_hostssl_only(ssl_server: PgServer) -> None:
    ca = ssl_server.ca_cert_path
    assert ca is not None and ca.is_file()
    assert ssl_server.execute("SHOW ssl") == [("on",)]
    user, pw = "carol", "carol-pw"

    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        psycopg.connect(ssl_server.dsn(user, pw, sslmode="disable"), connect_timeout=10).close()
    assert _whoami(ssl_server.dsn(user, pw, sslmode="require")) == ("carol", True)
    for host in ("127.0.0.1", "localhost"):  # SAN has both
        dsn = ssl_server.dsn(user, pw, sslmode="verify-full", sslrootcert=str(ca), host=host)
        assert _whoami(dsn) == ("carol", True)


def test_port_conflict_reports_server_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("pg-conflict")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        with pytest.raises(PgServerError, match=r"could not bind|could not create") as info:
            start_pg_server(base, port=blocker.getsockname()[1])
    assert "server log tail" in str(info.value)
    assert list(base.iterdir()) == []


def test_bad_auth_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="auth must be one of"):
        start_pg_server(tmp_path, auth="ident")


# --------------------------------------------------------------------------- JDBC


def test_jdbc_url() -> None:
    assert jdbc_url("127.0.0.1", 5432) == "jdbc:postgresql://127.0.0.1:5432/postgres"
    assert (
        jdbc_url("h", 1, "db", sslmode="verify-full", sslrootcert="/a b/ca.crt", ssl=True, x=None)
        == "jdbc:postgresql://h:1/db?sslmode=verify-full&sslrootcert=%2Fa%20b%2Fca.crt&ssl=true"
    )


def test_jdbc_probe_scenario(scram_server: PgServer, jdbc_cache: Path, tmp_path: Path) -> None:
    url = jdbc_url(scram_server.host, scram_server.port)
    result = run_jdbc_probe(tmp_path, url, "alice", ALICE_PW, cache_dir=jdbc_cache)
    assert result.ok, result.describe()
    assert [s for s in PROBE_STEPS if s not in result.steps] == []
    assert result["connect"]["current_user"] == "alice"
    assert result["connect"]["server_version"].startswith("15")

    ins = result["insert_prepared"]
    assert ins["inserted"] == 10 and ins["executions"] > ins["prepare_threshold"]
    assert ins["server_prepared"] is True  # switched to a named server-side statement
    assert ins["backend_named_statements"] >= 1

    sel = result["select_binary"]
    assert sel["server_prepared"] is True and sel["rows"] == 10 and sel["mismatches"] == []
    assert sel["first_row"] == [
        1, "row-1-\u00fcn\u00efc\u00f8d\u00e9-\u2713", "1.25", "2024-01-03T03:04:05.123456", False
    ]  # fmt: skip
    assert result["batch_insert"]["count"] == 20
    assert result["txn_commit"]["visible_after_commit"] == 1
    assert result["txn_rollback"]["visible_after_rollback"] == 0
    assert result["error_recovery"]["error_sqlstate"] == "22012"
    assert result["error_recovery"]["after_error_value"] == 42
    assert result["txn_error"]["aborted_sqlstate"] == "25P02"
    assert result["prepared_error"]["after_error_value"] == 25

    meta = result["metadata_tables"]
    assert len(meta["tables"]) == 1
    table = meta["tables"][0]
    assert table["name"] == "sqlgate_jdbc_probe" and table["type"] == "TEMPORARY TABLE"
    assert table["schema"].startswith("pg_temp")
    assert meta["primary_key"] == ["id"]


def test_jdbc_probe_auth_failure(scram_server: PgServer, jdbc_cache: Path, tmp_path: Path) -> None:
    url = jdbc_url(scram_server.host, scram_server.port)
    result = run_jdbc_probe(tmp_path, url, "alice", "wrong", check=False, cache_dir=jdbc_cache)
    assert not result.ok and result.returncode == 2
    assert result.failed_steps == ["connect", "done"]
    assert result["connect"]["sqlstate"] == "28P01"
    with pytest.raises(JdbcProbeError, match="password authentication failed"):
        run_jdbc_probe(tmp_path, url, "alice", "wrong", cache_dir=jdbc_cache)


def test_jdbc_probe_tls_verify_full(ssl_server: PgServer, jdbc_cache: Path, tmp_path: Path) -> None:
    url = jdbc_url(
        "localhost",
        ssl_server.port,
        sslmode="verify-full",
        sslrootcert=str(ssl_server.ca_cert_path),
    )
    result = run_jdbc_probe(tmp_path, url, "carol", "carol-pw", cache_dir=jdbc_cache)
    assert result.ok, result.describe()
