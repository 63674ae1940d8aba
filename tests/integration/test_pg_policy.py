"""Policy enforcement through the gateway with real clients (simple and extended protocol)."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest

from tests.support.gateway import RunningGateway


def _human(gateway: RunningGateway, token: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(gateway.dsn(token), autocommit=True)


def _counts(gateway: RunningGateway, human_token: str) -> tuple[object, ...] | None:
    with _human(gateway, human_token) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders), "
            "(SELECT sum(amount) FROM orders)"
        ).fetchone()


def test_agent_reads_are_allowed(gateway: RunningGateway, agent_token: str) -> None:
    with psycopg.connect(gateway.dsn(agent_token)) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE user_id = %s", (1,)).fetchone()


def test_drop_table_is_blocked_with_rule_and_reason(
    gateway: RunningGateway, agent_token: str, human_token: str
) -> None:
    before = _counts(gateway, human_token)
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("DROP TABLE users")
        diag = info.value.diag
        assert info.value.sqlstate == "42501"
        assert diag.message_primary == (
            'sqlgate: blocked by policy "ai-agents" rule 1: destructive commands are not allowed'
        )
        assert diag.message_hint
        # The session stays usable.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _counts(gateway, human_token) == before


def test_blocked_statement_in_multi_statement_string_refuses_all(
    gateway: RunningGateway, agent_token: str, human_token: str
) -> None:
    before = _counts(gateway, human_token)
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO orders (user_id, amount) VALUES (1, 5); DROP TABLE users")
    assert _counts(gateway, human_token) == before


def test_block_inside_transaction_behaves_like_a_postgres_error(
    gateway: RunningGateway, agent_token: str, human_token: str
) -> None:
    before = _counts(gateway, human_token)
    with psycopg.connect(gateway.dsn(agent_token)) as conn:
        conn.execute("INSERT INTO orders (user_id, amount) VALUES (1, 1000)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE orders")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 2").fetchone() == (2,)
        conn.rollback()
    assert _counts(gateway, human_token) == before


def test_extended_protocol_block_and_recovery(
    gateway: RunningGateway, agent_token: str, human_token: str
) -> None:
    before = _counts(gateway, human_token)
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("UPDATE orders SET amount = %s", (0,))
        assert "rule 4" in str(info.value)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM orders", prepare=True)
        assert conn.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)
        assert conn.execute("SELECT %s::text", ("still fine",), prepare=True).fetchone() == (
            "still fine",
        )
    assert _counts(gateway, human_token) == before


def test_pipeline_with_block_in_the_middle(gateway: RunningGateway, agent_token: str) -> None:
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        first = second = None
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            first = conn.execute("SELECT %s::int", (1,))
            conn.execute("DELETE FROM orders")
            second = conn.execute("SELECT %s::int", (2,))
        assert first is not None and first.fetchone() == (1,)
        assert second is not None
        assert conn.execute("SELECT 3").fetchone() == (3,)


def test_sql_prepare_execute_is_judged_by_what_was_prepared(
    gateway: RunningGateway, agent_token: str, human_token: str
) -> None:
    before = _counts(gateway, human_token)
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("PREPARE wipe AS DELETE FROM orders")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("EXECUTE wipe")
        assert "classify" in str(info.value)
        conn.execute("PREPARE n AS SELECT count(*) FROM users")
        assert conn.execute("EXECUTE n").fetchone() == (3,)
    assert _counts(gateway, human_token) == before


def test_dangerous_function_and_copy_program_are_blocked(
    gateway: RunningGateway, agent_token: str
) -> None:
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        for sql in (
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT * FROM (SELECT PG_CATALOG.PG_READ_FILE('/etc/passwd')) s",
            "COPY users TO PROGRAM 'id'",
            "SET ROLE postgres",
            "DO $$ BEGIN PERFORM 1; END $$",
            "EXPLAIN ANALYZE DELETE FROM orders",
            "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        assert conn.execute("SELECT 'DROP TABLE users'").fetchone() == ("DROP TABLE users",)
        assert conn.execute("SELECT $$; DROP TABLE users; $$").fetchone() == (
            "; DROP TABLE users; ",
        )


def test_unparsable_statement_is_refused_for_restricted_identity(
    gateway: RunningGateway, agent_token: str, human_token: str
) -> None:
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as info:
            conn.execute("SELEKT 1")
        assert "sqlgate" in str(info.value)
    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as info:
            conn.execute("SELEKT 1")
        assert "sqlgate" not in str(info.value)  # the server's own error


async def test_asyncpg_prepare_of_blocked_statement(
    gateway: RunningGateway, agent_token: str
) -> None:
    conn = await asyncpg.connect(host=gateway.host, port=gateway.port, user="agent",
                                 password=agent_token, database="app", ssl="require")
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.prepare("DELETE FROM orders")
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("UPDATE orders SET amount = $1", 1)
        assert await conn.fetchval("SELECT count(*) FROM users WHERE id = $1", 2) == 1
    finally:
        await conn.close()
