"""Masked columns never reach the client, however the query is shaped or the rows encoded."""

from __future__ import annotations

import base64
import hashlib
import json

import asyncpg
import psycopg
import pytest

from tests.support.gateway import RunningGateway

PII = {
    "Alice Archer", "Bob Baker", "Carol Chen",
    "alice@example.com", "bob@example.org", "carol@example.net",
    "123-45-6789", "478-65-4321", "555-12-3456",
    "+1 415 555 0101", "+1 212 555 0199", "+44 20 7946 0958",
    "4111111111111111", "5500005555555559", "340000000000009",
}
# Columns whose full value must never show; `partial` keeps the last 4 of ssn and phone.
SECRET_PARTS = {p for p in PII} | {"alice", "bob@", "carol@", "Archer", "example.com"}


def _encodings(value: str) -> set[str]:
    raw = value.encode()
    return {
        value, value.upper(), value.lower(), value[::-1],
        raw.hex(), base64.b64encode(raw).decode(), hashlib.md5(raw).hexdigest(),
        hashlib.sha256(raw).hexdigest(),
    }


FORBIDDEN = {e for v in PII for e in _encodings(v)} | {"Archer", "alice@", "example.com"}


def assert_no_pii(rows: object, query: str) -> None:
    text = json.dumps(rows, default=str)
    leaked = sorted(f for f in FORBIDDEN if f in text)
    assert not leaked, f"{query!r} leaked {leaked}: {text[:300]}"


QUERY_SHAPES = [
    "SELECT * FROM users",
    "SELECT email FROM users",
    "SELECT email AS e FROM users u",
    "SELECT u.email, u.ssn, u.phone, u.card, u.name FROM users u",
    "SELECT users.* FROM users",
    "TABLE users",
    "SELECT upper(email) FROM users",
    "SELECT lower(email), reverse(email) FROM users",
    "SELECT md5(email) FROM users",
    "SELECT encode(email::bytea, 'hex') FROM users",
    "SELECT encode(email::bytea, 'base64') FROM users",
    "SELECT format('%s', ssn) FROM users",
    "SELECT email || '' FROM users",
    "SELECT substr(card, 1, 16) FROM users",
    "SELECT string_agg(email, ',') FROM users",
    "SELECT array_agg(ssn) FROM users",
    "SELECT json_agg(u) FROM users u",
    "SELECT row_to_json(u) FROM users u",
    "SELECT to_jsonb(u) ->> 'email' FROM users u",
    "SELECT to_jsonb(u) FROM users u",
    "SELECT u FROM users u",
    "SELECT (u).email FROM users u",
    "SELECT (SELECT email FROM users WHERE id = 1)",
    "SELECT x.e FROM (SELECT email AS e FROM users) x",
    "WITH c AS (SELECT email, ssn FROM users) SELECT * FROM c",
    "WITH c AS (SELECT email AS m FROM users) SELECT upper(m) FROM c",
    "SELECT email FROM users UNION SELECT 'x'",
    "SELECT 'x' UNION ALL SELECT ssn FROM users",
    "SELECT o.id, u.email FROM orders o JOIN users u ON u.id = o.user_id",
    "SELECT u.email, count(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.email",
    "SELECT * FROM user_contacts",
    "SELECT email FROM user_contacts",
    "SELECT * FROM contacts_again",
    "SELECT upper(mail) FROM contacts_again",
    "SELECT * FROM user_emails",
    "SELECT email_of(1)",
    "SELECT email_of(id) FROM users",
    "SELECT CASE WHEN true THEN email END FROM users",
    "SELECT coalesce(NULL, phone) FROM users",
    "SELECT name::varchar(50) FROM users",
    "SELECT DISTINCT email FROM users",
    "SELECT * FROM users, LATERAL (SELECT email AS again) l",
    "SELECT jsonb_build_object('e', email) FROM users",
    "SELECT ARRAY[email, ssn] FROM users",
    "SELECT concat_ws(' ', name, email) FROM users",
]


@pytest.fixture(scope="module")
def pii_conn(gateway: RunningGateway, pii_open_token: str):  # type: ignore[no-untyped-def]
    with psycopg.connect(gateway.dsn(pii_open_token), autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("query", QUERY_SHAPES)
def test_query_shape_leaks_no_pii_text(pii_conn: psycopg.Connection[tuple[object, ...]],
                                       query: str) -> None:
    rows = pii_conn.execute(query).fetchall()
    assert rows, "the query must return rows for the check to mean anything"
    assert_no_pii(rows, query)


@pytest.mark.parametrize("query", QUERY_SHAPES[:20])
def test_query_shape_leaks_no_pii_binary(pii_conn: psycopg.Connection[tuple[object, ...]],
                                         query: str) -> None:
    rows = pii_conn.cursor(binary=True).execute(query).fetchall()
    assert_no_pii(rows, query)


def test_unmasked_columns_come_back_exactly(
    gateway: RunningGateway, pii_open_token: str, human_token: str
) -> None:
    query = "SELECT id, created_at, ssn FROM users ORDER BY id"
    with psycopg.connect(gateway.dsn(human_token)) as conn:
        truth = conn.execute(query).fetchall()
    with psycopg.connect(gateway.dsn(pii_open_token)) as conn:
        masked = conn.execute(query).fetchall()
    assert [r[:2] for r in masked] == [r[:2] for r in truth]
    assert [r[2] for r in masked] == ["*******6789", "*******4321", "*******3456"]


def test_strategies_shapes(pii_conn: psycopg.Connection[tuple[object, ...]]) -> None:
    row = pii_conn.execute("SELECT email, card, phone, name FROM users WHERE id = 1").fetchone()
    assert row is not None
    email, card, phone, name = row
    assert email == "****" and card == "****"
    assert phone == "***********0101"
    assert isinstance(name, str) and name.startswith("h:") and len(name) == 18


def test_hash_is_stable_across_sessions_and_joins_still_work(
    gateway: RunningGateway, pii_open_token: str
) -> None:
    query = "SELECT name FROM users ORDER BY id"
    with psycopg.connect(gateway.dsn(pii_open_token)) as one:
        first = one.execute(query).fetchall()
        ids = one.execute("SELECT user_id FROM orders ORDER BY id LIMIT 3").fetchall()
    with psycopg.connect(gateway.dsn(pii_open_token)) as two:
        assert two.execute(query).fetchall() == first
        assert two.execute("SELECT user_id FROM orders ORDER BY id LIMIT 3").fetchall() == ids
    assert len({r[0] for r in first}) == 3  # distinct people stay distinct
    assert all(isinstance(r[0], int) for r in ids)  # an int column stays an int


def test_extended_protocol_prepared_statement_is_masked(
    pii_conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    for _ in range(3):  # prepared after a few runs: Bind/Execute without a new Parse
        rows = pii_conn.execute("SELECT email, ssn FROM users WHERE id = %s", (2,),
                                prepare=True).fetchall()
        assert rows == [("****", "*******4321")]


def test_server_side_cursor_rows_are_masked(
    gateway: RunningGateway, pii_open_token: str
) -> None:
    with psycopg.connect(gateway.dsn(pii_open_token)) as conn, conn.transaction():
        with conn.cursor(name="c") as cur:
            cur.itersize = 1
            cur.execute("SELECT email FROM users ORDER BY id")
            assert [r[0] for r in cur] == ["****", "****", "****"]


async def test_asyncpg_binary_rows_are_masked_and_decodable(
    gateway: RunningGateway, pii_open_token: str
) -> None:
    conn = await asyncpg.connect(host=gateway.host, port=gateway.port, user="agent",
                                 password=pii_open_token, database="app", ssl="require")
    try:
        stmt = await conn.prepare("SELECT id, email, name, ssn, created_at FROM users ORDER BY id")
        for _ in range(2):
            rows = await stmt.fetch()
            assert_no_pii([dict(r) for r in rows], "asyncpg")
            assert [r["id"] for r in rows] == [1, 2, 3]
        joined = await conn.fetch("SELECT user_id, to_jsonb(u) AS j FROM orders o "
                                  "JOIN users u ON u.id = o.user_id LIMIT 5")
        assert_no_pii([dict(r) for r in joined], "asyncpg join")
    finally:
        await conn.close()


def test_copy_out_of_masked_table_is_refused(
    pii_conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="COPY"), \
            pii_conn.cursor().copy("COPY users TO STDOUT"):
        pass
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="COPY"), \
            pii_conn.cursor().copy("COPY (SELECT email FROM users) TO STDOUT"):
        pass


def test_detectors_mask_pii_in_unmasked_columns(gateway: RunningGateway) -> None:
    token = gateway.token("scanner", ["detector-agent"])
    with psycopg.connect(gateway.dsn(token), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT email, card, ssn, 'order 42 for ' || email AS note, id FROM users ORDER BY id"
        ).fetchall()
    assert_no_pii(rows, "detectors")
    assert rows[0][3].startswith("order 42 for ")
    assert [r[4] for r in rows] == [1, 2, 3]


def test_masked_values_are_not_in_gateway_logs(
    gateway: RunningGateway, pii_open_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with psycopg.connect(gateway.dsn(pii_open_token)) as conn:
        conn.execute("SELECT * FROM users").fetchall()
    assert_no_pii([r.getMessage() for r in caplog.records], "logs")


def test_cursor_and_prepared_derived_values_are_masked(
    gateway: RunningGateway, pii_open_token: str
) -> None:
    with psycopg.connect(gateway.dsn(pii_open_token)) as conn:
        conn.execute("DECLARE c CURSOR FOR SELECT upper(email), id FROM users ORDER BY id")
        rows = conn.execute("FETCH ALL c").fetchall()
        assert_no_pii(rows, "FETCH")
        assert [r[1] for r in rows] == [1, 2, 3]
        conn.rollback()
        conn.autocommit = True
        conn.execute("PREPARE leak AS SELECT reverse(email) FROM users")
        rows = conn.execute("EXECUTE leak").fetchall()
        assert_no_pii(rows, "EXECUTE")
