"""Masked columns can be read (masked) but not probed: predicates, ordering, side doors."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.test_pg_masking import assert_no_pii
from tests.support.gateway import RunningGateway

PROBES = [
    "SELECT id FROM users WHERE email LIKE 'a%'",
    "SELECT id FROM users ORDER BY ssn",
    "SELECT id FROM users WHERE ssn BETWEEN '100' AND '500'",
    "SELECT 1/(CASE WHEN email LIKE 'a%' THEN 0 ELSE 1 END) FROM users",
    "SELECT id FROM users WHERE substr(ssn, 1, 1) = '1'",
    "SELECT id FROM users WHERE length(ssn) = 11",
    "SELECT id FROM users WHERE position('@' in email) > 5",
    "SELECT id FROM users WHERE email ~ '^a'",
    "SELECT max(email) FROM users",
    "SELECT count(*) FROM users GROUP BY email",
    "SELECT DISTINCT ON (email) id FROM users",
    "SELECT rank() OVER (PARTITION BY email) FROM users",
    "SELECT o.id FROM orders o JOIN users u ON u.email = 'x' || o.id",
    "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM users u2 WHERE u2.email LIKE 'a%' AND u2.id = u.id)",
    "WITH c AS (SELECT email FROM users) SELECT 1 FROM c WHERE email LIKE 'a%'",
    "SELECT * FROM orders o, LATERAL (SELECT id FROM users u WHERE u.email > 'm' AND u.id = o.user_id) l",
    "SELECT 1 FROM users HAVING max(email) > 'm'",
    "SELECT count(DISTINCT email) FROM users",
    "SELECT string_agg(name, ',' ORDER BY email) FROM users",
    "SELECT id FROM users WHERE email IN (SELECT email FROM users WHERE id = 1)",
    "SELECT id FROM users WHERE email <> 'x'",
    "SELECT id FROM users WHERE lower(email) = 'alice@example.com'",
    "SELECT id, email FROM users ORDER BY 2",
    "SELECT id FROM users WHERE card IS NOT NULL",
    "SELECT id FROM users WHERE phone > '+2'",
    "SELECT e FROM (SELECT email AS e FROM users) s ORDER BY e",
]

ALLOWED = [
    "SELECT email FROM users WHERE email = 'alice@example.com'",
    "SELECT id FROM users WHERE email IN ('alice@example.com', 'bob@example.org')",
    "SELECT id, email, upper(email) FROM users WHERE id > 1 ORDER BY id",
    "SELECT count(*) FROM orders WHERE amount > 10",
    "SELECT o.id FROM orders o JOIN users u ON u.id = o.id WHERE u.id = 1",
]


@pytest.fixture(scope="module")
def agent(gateway: RunningGateway, pii_token: str):  # type: ignore[no-untyped-def]
    with psycopg.connect(gateway.dsn(pii_token), autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("probe", PROBES)
def test_probe_is_refused_in_equality_mode(agent: psycopg.Connection[tuple[object, ...]],
                                           probe: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
        agent.execute(probe)
    message = info.value.diag.message_primary or ""
    assert "masked column public.users." in message and "'equality'" in message


@pytest.mark.parametrize("query", ALLOWED)
def test_lookups_and_unmasked_queries_pass(agent: psycopg.Connection[tuple[object, ...]],
                                           query: str) -> None:
    rows = agent.execute(query).fetchall()
    assert rows
    assert_no_pii(rows, query)


def test_parameter_lookup_passes(agent: psycopg.Connection[tuple[object, ...]]) -> None:
    assert agent.execute("SELECT id FROM users WHERE email = %s",
                         ("bob@example.org",)).fetchall() == [(2,)]


def test_strict_mode_refuses_even_equality(gateway: RunningGateway) -> None:
    token = gateway.token("s", ["strict-agent"])
    with psycopg.connect(gateway.dsn(token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="'strict'"):
            conn.execute("SELECT id FROM users WHERE email = 'alice@example.com'")
        assert conn.execute("SELECT email FROM users WHERE id = 1").fetchone() == ("****",)


def test_off_mode_allows_probes_but_still_masks(gateway: RunningGateway) -> None:
    token = gateway.token("l", ["loose-agent"])
    with psycopg.connect(gateway.dsn(token), autocommit=True) as conn:
        rows = conn.execute("SELECT id, email FROM users WHERE email LIKE 'a%'").fetchall()
        assert rows == [(1, "****")]


def test_statistics_views_are_side_doors(gateway: RunningGateway, human_token: str,
                                         agent: psycopg.Connection[tuple[object, ...]]) -> None:
    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as human:
        human.execute("ANALYZE users")
        bounds = human.execute(
            "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'users' "
            "AND attname = 'email'").fetchone()
        assert bounds is not None and "alice@example.com" in str(bounds)  # the door exists
    for probe in ("SELECT histogram_bounds FROM pg_stats WHERE tablename = 'users'",
                  "SELECT * FROM pg_catalog.pg_statistic",
                  "SELECT query FROM pg_stat_activity",
                  "SELECT * FROM pg_stats_ext"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="masked values"):
            agent.execute(probe)


def test_failed_cast_does_not_reveal_the_value(
        agent: psycopg.Connection[tuple[object, ...]]) -> None:
    with pytest.raises(psycopg.errors.InvalidTextRepresentation) as info:
        agent.execute("SELECT email::int FROM users")
    assert info.value.sqlstate == "22P02"
    assert_no_pii([str(info.value), info.value.diag.message_detail or ""], "cast error")
    assert "withheld" in str(info.value)


def test_notifications_cannot_carry_masked_values(
        gateway: RunningGateway, agent: psycopg.Connection[tuple[object, ...]],
        human_token: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="pg_notify"):
        agent.execute("SELECT pg_notify('leak', email) FROM users")
    agent.execute("LISTEN news")
    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as human:
        human.execute("NOTIFY news, 'alice@example.com'")
    agent.execute("SELECT 1")
    notifies = list(agent.notifies(timeout=1, stop_after=1))
    assert notifies and notifies[0].channel == "news" and notifies[0].payload == ""


@pytest.mark.parametrize("statement", [
    "CREATE TEMP TABLE copy_of_users AS SELECT email FROM users",
    "SELECT email INTO TEMP copy2 FROM users",
    "INSERT INTO orders (user_id, amount) SELECT id, length(ssn) FROM users",
    "UPDATE orders SET amount = (SELECT length(email) FROM users WHERE id = 1) WHERE id = 1",
    "CREATE TEMP VIEW v_leak AS SELECT email FROM users",
])
def test_masked_values_cannot_be_copied_into_tables(gateway: RunningGateway,
                                                    statement: str) -> None:
    # An identity with masks that may write: it still cannot move masked values anywhere.
    token = gateway.token("w", ["pii-writer"])
    with psycopg.connect(gateway.dsn(token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="copied into a table"):
            conn.execute(statement)
