"""Real PostgreSQL clients through the gateway: psql, psycopg, asyncpg, JDBC, pgbench."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import shutil
import subprocess
from pathlib import Path

import asyncpg
import psycopg
import pytest

from tests.support.gateway import RunningGateway
from tests.support.jdbc import run_jdbc_probe

PSQL = shutil.which("psql") or "psql"
PGBENCH = shutil.which("pgbench") or "pgbench"


def _env(token: str) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": token, "PGSSLMODE": "require", "PGCONNECT_TIMEOUT": "10"}


def run_psql(
    gateway: RunningGateway, token: str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = [
        PSQL,
        "-h",
        gateway.host,
        "-p",
        str(gateway.port),
        "-U",
        "agent",
        "-d",
        "app",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-At",
        *args,
    ]
    return subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, env=_env(token), timeout=60, check=check
    )


def test_psql_queries_and_meta_commands(gateway: RunningGateway, human_token: str) -> None:
    out = run_psql(
        gateway, human_token, "-c", "SELECT name FROM users ORDER BY id", "-c", r"\dt"
    ).stdout
    lines = out.splitlines()
    assert lines[:3] == ["Alice Archer", "Bob Baker", "Carol Chen"]
    assert any("|users|table|" in line for line in lines)


def test_psql_reports_ssl_and_server_error(gateway: RunningGateway, human_token: str) -> None:
    result = run_psql(gateway, human_token, "-c", "SELECT 1/0", check=False)
    assert result.returncode != 0
    assert "division by zero" in result.stderr
    ssl_line = run_psql(gateway, human_token, "-c", r"\conninfo").stdout
    assert "SSL connection" in ssl_line


def test_psycopg_text_and_binary_results(gateway: RunningGateway, human_token: str) -> None:
    with psycopg.connect(gateway.dsn(human_token)) as conn:
        text_row = conn.execute(
            "SELECT id, email, created_at FROM users WHERE id = %s", (1,)
        ).fetchone()
        binary_row = (
            conn.cursor(binary=True)
            .execute("SELECT id, email, created_at FROM users WHERE id = %s", (1,))
            .fetchone()
        )
        assert text_row == binary_row
        assert text_row is not None and text_row[1] == "alice@example.com"
        assert isinstance(text_row[2], datetime.datetime)


def test_psycopg_server_side_cursor_streams(gateway: RunningGateway, human_token: str) -> None:
    with psycopg.connect(gateway.dsn(human_token)) as conn, conn.transaction():
        with conn.cursor(name="big") as cur:
            cur.itersize = 100
            cur.execute("SELECT g FROM generate_series(1, 5000) g")
            total = sum(row[0] for row in cur)
    assert total == 5000 * 5001 // 2


def test_psycopg_copy_in_and_out(gateway: RunningGateway, human_token: str) -> None:
    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_target")
        conn.execute("CREATE TABLE copy_target (id int, label text)")
        with conn.cursor().copy("COPY copy_target FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i, f"row {i}"))
        assert conn.execute("SELECT count(*), sum(id) FROM copy_target").fetchone() == (
            1000,
            499500,
        )
        out = bytearray()
        with conn.cursor().copy("COPY (SELECT * FROM copy_target ORDER BY id) TO STDOUT") as copy:
            for data in copy:
                out += data
        lines = bytes(out).decode().splitlines()
        assert len(lines) == 1000 and lines[7] == "7\trow 7"
        conn.execute("DROP TABLE copy_target")


def test_psycopg_transactions_and_errors(gateway: RunningGateway, human_token: str) -> None:
    with psycopg.connect(gateway.dsn(human_token)) as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.rollback()
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM t")
        conn.rollback()
        conn.execute("CREATE TEMP TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (2)")
        conn.commit()
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_psycopg_pipeline_mode(gateway: RunningGateway, human_token: str) -> None:
    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as conn:
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
        assert [c.fetchone() for c in cursors] == [(i * 2,) for i in range(50)]


async def test_asyncpg_prepared_and_binary(gateway: RunningGateway, human_token: str) -> None:
    conn = await asyncpg.connect(
        host=gateway.host,
        port=gateway.port,
        user="agent",
        password=human_token,
        database="app",
        ssl="require",
    )
    try:
        stmt = await conn.prepare("SELECT id, email, created_at FROM users WHERE id = $1")
        rows = [await stmt.fetchrow(i) for i in (1, 2, 3)]
        assert [r["email"] for r in rows] == [
            "alice@example.com",
            "bob@example.org",
            "carol@example.net",
        ]
        assert isinstance(rows[0]["created_at"], datetime.datetime)
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE a (v numeric, j jsonb, arr int[])")
            await conn.executemany(
                "INSERT INTO a VALUES ($1, $2, $3)",
                [(i, f'{{"k": {i}}}', [i, i + 1]) for i in range(20)],
            )
        assert await conn.fetchval("SELECT sum(v) FROM a") == 190
        assert await conn.fetchval("SELECT arr FROM a WHERE v = 3") == [3, 4]
        with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
            await conn.fetchval("SELECT 1/0")
        assert await conn.fetchval("SELECT 41 + 1") == 42
    finally:
        await conn.close()


def test_jdbc_driver(
    gateway: RunningGateway, human_token: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = f"jdbc:postgresql://{gateway.host}:{gateway.port}/app?sslmode=require"
    result = run_jdbc_probe(tmp_path_factory.mktemp("jdbc"), url, "agent", human_token)
    assert result.ok, result


def test_pgbench_all_query_modes(gateway: RunningGateway, human_token: str) -> None:
    base = [PGBENCH, "-h", gateway.host, "-p", str(gateway.port), "-U", "agent"]
    init = subprocess.run(
        [*base, "-i", "-s", "1", "-q", "app"],
        capture_output=True,
        text=True,
        env=_env(human_token),
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    for mode in ("simple", "extended", "prepared"):
        run = subprocess.run(
            [*base, "-M", mode, "-c", "4", "-t", "200", "app"],
            capture_output=True,
            text=True,
            env=_env(human_token),
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        processed = re.search(r"number of transactions actually processed: (\d+)", run.stdout)
        failed = re.search(r"number of failed transactions: (\d+)", run.stdout)
        assert processed is not None and int(processed.group(1)) == 800, run.stdout
        assert failed is None or int(failed.group(1)) == 0, run.stdout


async def test_cancel_interrupts_long_query(gateway: RunningGateway, human_token: str) -> None:
    conn = await psycopg.AsyncConnection.connect(gateway.dsn(human_token), autocommit=True)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        query = asyncio.ensure_future(conn.execute("SELECT pg_sleep(10)"))
        await asyncio.sleep(0.5)
        async with asyncio.timeout(8):
            await conn.cancel_safe()
            with pytest.raises(psycopg.errors.QueryCanceled) as info:
                await query
        assert info.value.sqlstate == "57014"
        assert loop.time() - started < 5
        cur = await conn.execute("SELECT 1")
        assert await cur.fetchone() == (1,)
    finally:
        await conn.close()


def test_cancel_with_wrong_key_cancels_nothing(gateway: RunningGateway, human_token: str) -> None:
    import socket
    import struct

    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as victim:
        pid = victim.info.backend_pid
        with socket.create_connection((gateway.host, gateway.port)) as s:
            s.sendall(struct.pack("!iiiI", 16, 80877102, pid, 12345))
            s.recv(1)
        # Still alive and not cancelled.
        assert victim.execute("SELECT pg_sleep(0.3), 1").fetchone() == ("", 1)


def test_psql_sees_data_changed_by_session(
    gateway: RunningGateway, human_token: str, tmp_path: Path
) -> None:
    script = tmp_path / "s.sql"
    script.write_text(
        "BEGIN;\nCREATE TEMP TABLE s (v int);\nINSERT INTO s VALUES (5);\n"
        "SELECT v FROM s;\nCOMMIT;\n"
    )
    assert run_psql(gateway, human_token, "-q", "-f", str(script)).stdout.strip() == "5"
