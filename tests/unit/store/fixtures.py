"""Store fixtures shared by the store, audit and recording tests.

`store_url` runs a test once on SQLite (a file under tmp_path) and once on a real, throwaway
PostgreSQL (one server per test module, one fresh database per test). The server only starts
when a module asks for the postgres variant.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlgate.core import Identity
from sqlgate.recording import SessionInfo, StatementOutcome, StatementRecord
from sqlgate.store import Store, open_store
from tests.support.pgserver import PgServer, start_pg_server


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = start_pg_server(tmp_path_factory.mktemp("pgstore"), auth="trust")
    try:
        yield server
    finally:
        server.stop()


def new_pg_url(server: PgServer) -> str:
    name = f"t_{secrets.token_hex(6)}"
    server.create_database(name)
    return f"postgresql://{server.superuser}@{server.host}:{server.port}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sqlgate.db'}"
    return new_pg_url(request.getfixturevalue("pg_server"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def raw_execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run SQL on the store's database behind sqlgate's back, as a tamperer would."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True) as pg:
        cur = pg.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


ALICE = Identity(
    subject="alice", email="alice@example.com", groups=frozenset({"eng", "analysts"}),
    issuer="https://idp.example", expires_at=None,
)  # fmt: skip


def session_info(session_id: str | None = None, *, started_at: float | None = None,
                 identity: Identity = ALICE, target: str = "app") -> SessionInfo:  # fmt: skip
    return SessionInfo(
        session_id=session_id or secrets.token_hex(16),
        started_at=time.time() if started_at is None else started_at,
        identity=identity,
        client_addr="10.0.0.5:51234",
        application_name="psql",
        target=target,
        protocol="postgres",
    )


def statement(session_id: str, seq: int, sql: str = "SELECT 1", *, at: float | None = None,
              decision: str = "allow", mono: float | None = None,
              params: tuple[str | None, ...] | None = None) -> StatementRecord:  # fmt: skip
    return StatementRecord(
        session_id=session_id,
        seq=seq,
        at=time.time() if at is None else at,
        mono=time.monotonic() if mono is None else mono,
        sql=sql,
        params=params,
        category="read",
        operations=("select",),
        decision=decision,
        policy="ai-agents",
        rule=6 if decision == "allow" else 1,
        reason="reads are fine" if decision == "allow" else "destructive commands are not allowed",
    )


def outcome(session_id: str, seq: int, rows: int | None = 1, *, tag: str | None = "SELECT 1",
            sqlstate: str | None = None, error: str | None = None) -> StatementOutcome:  # fmt: skip
    return StatementOutcome(session_id, seq, 1.25, rows, tag, sqlstate, error)


CONFIG_TEMPLATE = """
identity: {{dev_issuer: true}}
store: {{url: "{url}"}}
targets:
  - name: app
    host: 127.0.0.1
    database: app
    credentials: {{user: svc}}
"""


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "sqlgate.yaml"
    path.write_text(CONFIG_TEMPLATE.format(url=url))
    return path
