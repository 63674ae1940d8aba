"""Decisions of the reference policy (`sqlgate.example.yaml`), statement by statement.

Policy `ai-agents` (group code-assistant, target app):
  1 block operations drop_database/drop_schema/drop_table/truncate, "destructive commands..."
  2 block category dcl
  3 block functions pg_read_file, pg_read_binary_file, lo_export, lo_import, dblink*,
    pg_terminate_backend
  4 block operations update_without_where, delete_without_where
  5 review category ddl
  6 allow categories read, tcl, session
  default block (so `write` with a WHERE, copy, procedural and admin statements are refused)

Policy `humans` (group engineering, any target):
  1 review operations drop_database, drop_table, truncate
  2 allow categories read, write, ddl, tcl, session
  default allow
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

from sqlgate.config import Config
from sqlgate.core import Decision, Dialect, Identity, Statement, StatementSource, Verdict
from sqlgate.masking import Catalog, Relation
from sqlgate.policy.session import PolicyService, PolicySession

ALLOW, BLOCK, REVIEW = Verdict.ALLOW, Verdict.BLOCK, Verdict.REVIEW

Case = tuple[str, Verdict, int | None]

# ------------------------------------------------------------------------------------------
# ai-agents: (statement, verdict, rule number or None for the policy default)

AGENT_RULE_1_DESTRUCTIVE: list[Case] = [
    ("DROP TABLE t", BLOCK, 1),
    ("DROP TABLE users", BLOCK, 1),
    ("DROP TABLE public.users", BLOCK, 1),
    ('DROP TABLE "Users"', BLOCK, 1),
    ("DROP TABLE IF EXISTS a, b CASCADE", BLOCK, 1),
    ("DROP TABLE t, u", BLOCK, 1),
    ("DROP FOREIGN TABLE ft", BLOCK, 1),
    ("drop table t", BLOCK, 1),
    ("DrOp TaBlE t", BLOCK, 1),
    ("DROP/**/TABLE t", BLOCK, 1),
    ("DROP/* a comment */TABLE/**/t", BLOCK, 1),
    ("DROP -- a comment\nTABLE t", BLOCK, 1),
    ("drop   table\n\tt", BLOCK, 1),
    ("/* harmless */ DROP TABLE t", BLOCK, 1),
    ("DROP TABLE t -- trailing comment", BLOCK, 1),
    ('DROP TABLE IF EXISTS "drop"', BLOCK, 1),
    ("DROP SCHEMA s CASCADE", BLOCK, 1),
    ("DROP SCHEMA IF EXISTS s", BLOCK, 1),
    ("drop schema public cascade", BLOCK, 1),
    ("DROP DATABASE app", BLOCK, 1),
    ("DROP DATABASE IF EXISTS app WITH (FORCE)", BLOCK, 1),
    ("TRUNCATE t", BLOCK, 1),
    ("TRUNCATE TABLE a, b", BLOCK, 1),
    ("TRUNCATE ONLY t", BLOCK, 1),
    ("truncate t restart identity cascade", BLOCK, 1),
    # The whole request is judged: one refused statement refuses the string.
    ("SELECT 1; DROP TABLE t", BLOCK, 1),
    ("SELECT 1; DROP TABLE t;", BLOCK, 1),
    ("BEGIN; DROP TABLE t; COMMIT", BLOCK, 1),
    ("COMMIT; DROP DATABASE app", BLOCK, 1),
    ("SELECT 'x'; TRUNCATE t", BLOCK, 1),
    ("CREATE TABLE x (a int); DROP TABLE y", BLOCK, 1),  # a review and a block: block wins
    # Without an E prefix a backslash does not escape the quote: two statements.
    ("SELECT '\\'; DROP TABLE t; --'", BLOCK, 1),
]

AGENT_RULE_2_DCL: list[Case] = [
    ("SET ROLE postgres", BLOCK, 2),
    ("set role 'postgres'", BLOCK, 2),
    ("SET ROLE NONE", BLOCK, 2),
    ("SET LOCAL ROLE x", BLOCK, 2),
    ("SET SESSION ROLE x", BLOCK, 2),
    ('SET "Role" TO x', BLOCK, 2),
    ("SET role = 'postgres'", BLOCK, 2),
    ("SET SESSION AUTHORIZATION x", BLOCK, 2),
    ("SET SESSION AUTHORIZATION DEFAULT", BLOCK, 2),
    ("SET session_authorization TO x", BLOCK, 2),
    ("RESET ROLE", BLOCK, 2),
    ("RESET SESSION AUTHORIZATION", BLOCK, 2),
    ("DISCARD ALL", BLOCK, 2),
    ("GRANT SELECT ON t TO bob", BLOCK, 2),
    ("GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO PUBLIC", BLOCK, 2),
    ("GRANT postgres TO app_readonly", BLOCK, 2),
    ("grant pg_read_server_files to app_readonly", BLOCK, 2),
    ("REVOKE ALL ON t FROM bob", BLOCK, 2),
    ("REVOKE postgres FROM bob", BLOCK, 2),
    ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", BLOCK, 2),
    ("CREATE ROLE r", BLOCK, 2),
    ("CREATE USER u WITH SUPERUSER PASSWORD 'x'", BLOCK, 2),
    ("CREATE GROUP g", BLOCK, 2),
    ("ALTER ROLE r SUPERUSER", BLOCK, 2),
    ("ALTER USER app_readonly WITH SUPERUSER", BLOCK, 2),
    ("ALTER ROLE r SET search_path = x", BLOCK, 2),
    ("ALTER ROLE r RENAME TO s", BLOCK, 2),
    ("DROP ROLE r", BLOCK, 2),
    ("DROP USER IF EXISTS u", BLOCK, 2),
    ("REASSIGN OWNED BY a TO b", BLOCK, 2),
    ("SELECT 1; SET ROLE postgres", BLOCK, 2),
    ("SET ROLE postgres; SELECT 1", BLOCK, 2),
]

AGENT_RULE_3_FUNCTIONS: list[Case] = [
    ("SELECT pg_read_file('/etc/passwd')", BLOCK, 3),
    ("select PG_CATALOG.PG_READ_FILE('x')", BLOCK, 3),
    ("SELECT * FROM pg_catalog.pg_read_file('x')", BLOCK, 3),
    ("SELECT \"pg_read_file\"('x')", BLOCK, 3),
    ("SELECT U&\"pg_read_fil\\0065\"('x')", BLOCK, 3),
    ("SELECT PG_READ_BINARY_FILE('x')", BLOCK, 3),
    ("SELECT pg_read_binary_file('/etc/passwd')", BLOCK, 3),
    ("SELECT lo_export(1, '/tmp/x')", BLOCK, 3),
    ("select lo_import('/etc/shadow', 1234)", BLOCK, 3),
    ("SELECT dblink('host=x', 'select 1')", BLOCK, 3),
    ("SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", BLOCK, 3),
    ("SELECT dblink_exec('c', 'drop table t')", BLOCK, 3),
    ("SELECT dblink_connect('x')", BLOCK, 3),
    ("SELECT public.dblink_exec('x')", BLOCK, 3),
    ("SELECT pg_terminate_backend(123)", BLOCK, 3),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", BLOCK, 3),
    # nested in subqueries, CTEs, expressions, other statements
    (
        "SELECT * FROM t WHERE id IN (SELECT pg_terminate_backend(pid) FROM pg_stat_activity)",
        BLOCK,
        3,
    ),
    ("WITH x AS (SELECT pg_read_file('x')) SELECT * FROM x", BLOCK, 3),
    ("WITH a AS (SELECT 1), b AS (SELECT lo_import('/etc/passwd')) SELECT * FROM a", BLOCK, 3),
    ("SELECT * FROM (SELECT lo_export(1, '/tmp/x')) s", BLOCK, 3),
    ("SELECT (SELECT (SELECT pg_read_file('x')))", BLOCK, 3),
    ("SELECT length(pg_read_file('x'))", BLOCK, 3),
    ("SELECT CASE WHEN true THEN pg_read_file('x') END", BLOCK, 3),
    ("SELECT 1 WHERE EXISTS (SELECT pg_read_file('x'))", BLOCK, 3),
    ("SELECT * FROM t JOIN LATERAL pg_read_file('x') f ON true", BLOCK, 3),
    ("SELECT count(*) FILTER (WHERE pg_read_file('x') IS NOT NULL) FROM t", BLOCK, 3),
    ("SELECT 1 UNION SELECT length(pg_read_file('x'))", BLOCK, 3),
    ("VALUES (pg_read_file('x'))", BLOCK, 3),
    ("EXPLAIN SELECT pg_read_file('x')", BLOCK, 3),
    ("SELECT 1; SELECT pg_read_file('x')", BLOCK, 3),
    ("SELECT pg_read_file('x') -- just reading", BLOCK, 3),
    ("DECLARE c CURSOR FOR SELECT pg_read_file('x')", BLOCK, 3),
    ("PREPARE p AS SELECT pg_read_file('x')", BLOCK, 3),
    ("COPY (SELECT pg_read_file('x')) TO STDOUT", BLOCK, 3),
    # rule 3 comes before rules 5 and the default: the function decides
    ("CREATE TABLE x AS SELECT pg_read_file('a')", BLOCK, 3),
    ("SELECT * INTO t2 FROM pg_read_file('x') AS f", BLOCK, 3),
    ("CREATE VIEW v AS SELECT pg_read_file('x')", BLOCK, 3),
    ("CREATE TABLE d (a text DEFAULT pg_read_file('x'))", BLOCK, 3),
    ("INSERT INTO t SELECT pg_read_file('x')", BLOCK, 3),
]

AGENT_RULE_4_NO_WHERE: list[Case] = [
    ("UPDATE t SET a = 1", BLOCK, 4),
    ("update t set a = 1", BLOCK, 4),
    ("UPDATE public.users SET email = NULL", BLOCK, 4),
    ("UPDATE t SET a = 1 RETURNING *", BLOCK, 4),
    ("DELETE FROM t", BLOCK, 4),
    ("delete from t", BLOCK, 4),
    ("DELETE FROM ONLY t", BLOCK, 4),
    ("DELETE FROM t RETURNING *", BLOCK, 4),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", BLOCK, 4),
    ("WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u", BLOCK, 4),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT 1", BLOCK, 4),
    ("WITH a AS (SELECT 1), d AS (DELETE FROM t RETURNING *) SELECT * FROM a", BLOCK, 4),
    ("WITH d AS (DELETE FROM t RETURNING *) INSERT INTO x SELECT * FROM d", BLOCK, 4),
    ("EXPLAIN ANALYZE DELETE FROM t", BLOCK, 4),
    ("EXPLAIN ANALYSE DELETE FROM t", BLOCK, 4),
    ("EXPLAIN (ANALYZE) DELETE FROM t", BLOCK, 4),
    ("EXPLAIN (ANALYSE) DELETE FROM t", BLOCK, 4),
    ("EXPLAIN (ANALYZE true, FORMAT JSON) DELETE FROM t", BLOCK, 4),
    ("EXPLAIN (FORMAT JSON, ANALYZE 1) UPDATE t SET a = 1", BLOCK, 4),
    ("EXPLAIN ANALYZE UPDATE t SET a = 1", BLOCK, 4),
    ("PREPARE p AS DELETE FROM t", BLOCK, 4),
    ("PREPARE p AS UPDATE t SET a = 1", BLOCK, 4),
    ("COPY (DELETE FROM t RETURNING *) TO STDOUT", BLOCK, 4),
    ("SELECT 1; DELETE FROM t", BLOCK, 4),
    ("CREATE TABLE x AS WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", BLOCK, 4),
]

AGENT_RULE_5_DDL_REVIEW: list[Case] = [
    ("CREATE TABLE x (a int)", REVIEW, 5),
    ("create table x (a int)", REVIEW, 5),
    ("CREATE TEMP TABLE x (a int)", REVIEW, 5),
    ("CREATE UNLOGGED TABLE x (a int)", REVIEW, 5),
    ("CREATE TABLE IF NOT EXISTS x (a int)", REVIEW, 5),
    ("SELECT * INTO t2 FROM t", REVIEW, 5),
    ("SELECT * INTO TEMP t2 FROM t", REVIEW, 5),
    ("CREATE TABLE x AS SELECT * FROM t", REVIEW, 5),
    ("CREATE MATERIALIZED VIEW mv AS SELECT 1", REVIEW, 5),
    ("ALTER TABLE t ADD COLUMN c int", REVIEW, 5),
    ("ALTER TABLE t DROP COLUMN c", REVIEW, 5),
    ("ALTER TABLE t RENAME TO t_old", REVIEW, 5),
    ("CREATE INDEX ON t (a)", REVIEW, 5),
    ("CREATE VIEW v AS SELECT 1", REVIEW, 5),
    ("DROP VIEW v", REVIEW, 5),
    ("DROP MATERIALIZED VIEW mv", REVIEW, 5),
    ("DROP INDEX i", REVIEW, 5),
    ("DROP FUNCTION f()", REVIEW, 5),
    ("DROP SEQUENCE s", REVIEW, 5),
    ("DROP OWNED BY bob", REVIEW, 5),
    ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", REVIEW, 5),
    ("CREATE EXTENSION dblink", REVIEW, 5),
    ("CREATE SCHEMA s", REVIEW, 5),
    ("COMMENT ON TABLE t IS 'x'", REVIEW, 5),
    ("CREATE SEQUENCE s", REVIEW, 5),
    ("ALTER SEQUENCE s RESTART", REVIEW, 5),
    ("CREATE TYPE mood AS ENUM ('a', 'b')", REVIEW, 5),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", REVIEW, 5),
    ("CREATE DATABASE d", REVIEW, 5),
    ("SELECT 1; CREATE TABLE x (a int)", REVIEW, 5),
    ("CREATE TABLE x (a int); SELECT 1", REVIEW, 5),
]

AGENT_RULE_6_ALLOWED: list[Case] = [
    # read
    ("SELECT 1", ALLOW, 6),
    ("select 1", ALLOW, 6),
    ("SELECT * FROM t", ALLOW, 6),
    ("SELECT * FROM users WHERE id = 1", ALLOW, 6),
    ("SELECT email FROM public.users", ALLOW, 6),
    ("SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1", ALLOW, 6),
    ("SELECT * FROM t FOR UPDATE", ALLOW, 6),
    ("VALUES (1), (2)", ALLOW, 6),
    ("TABLE t", ALLOW, 6),
    ("WITH x AS (SELECT 1) SELECT * FROM x", ALLOW, 6),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
        "SELECT * FROM r",
        ALLOW,
        6,
    ),
    ("SELECT now()", ALLOW, 6),
    ("SELECT current_user, version()", ALLOW, 6),
    ("SELECT * FROM pg_stat_activity", ALLOW, 6),
    ("SELECT 1; SELECT 2", ALLOW, 6),
    # look-alikes: the dangerous words are data or comments, not statements
    ("SELECT 'DROP TABLE t'", ALLOW, 6),
    ("SELECT $$; DROP TABLE t; $$", ALLOW, 6),
    ("SELECT $tag$'; DROP TABLE t; --$tag$", ALLOW, 6),
    ("-- DROP TABLE t\nSELECT 1", ALLOW, 6),
    ("/* DROP */ SELECT 1", ALLOW, 6),
    ("/* DROP TABLE t; */ SELECT 1", ALLOW, 6),
    ('SELECT "drop table" FROM t', ALLOW, 6),
    ('SELECT 1 AS "DROP TABLE t"', ALLOW, 6),
    ('SELECT * FROM "drop"', ALLOW, 6),
    ("SELECT * FROM truncate_log", ALLOW, 6),
    ("SELECT 'pg_read_file(''/etc/passwd'')'", ALLOW, 6),
    ("SELECT * FROM t WHERE note LIKE '%delete from%'", ALLOW, 6),
    ("SELECT E'\\'; DROP TABLE t; --'", ALLOW, 6),  # E'': the backslash escapes the quote
    # plain EXPLAIN only plans
    ("EXPLAIN SELECT * FROM t", ALLOW, 6),
    ("EXPLAIN DELETE FROM t WHERE id=1", ALLOW, 6),
    ("EXPLAIN DELETE FROM t", ALLOW, 6),
    ("EXPLAIN UPDATE t SET a = 1", ALLOW, 6),
    ("EXPLAIN (ANALYZE off) DELETE FROM t", ALLOW, 6),
    ("EXPLAIN (ANALYZE false, VERBOSE) UPDATE t SET a = 1", ALLOW, 6),
    ("EXPLAIN ANALYZE SELECT 1", ALLOW, 6),
    # cursors and prepared reads
    ("DECLARE c CURSOR FOR SELECT 1", ALLOW, 6),
    ("FETCH 10 FROM c", ALLOW, 6),
    ("MOVE NEXT IN c", ALLOW, 6),
    ("PREPARE p AS SELECT 1", ALLOW, 6),
    ("PREPARE p(int) AS SELECT * FROM t WHERE id = $1", ALLOW, 6),
    # tcl
    ("BEGIN", ALLOW, 6),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE", ALLOW, 6),
    ("START TRANSACTION READ ONLY", ALLOW, 6),
    ("COMMIT", ALLOW, 6),
    ("END", ALLOW, 6),
    ("ROLLBACK", ALLOW, 6),
    ("ABORT", ALLOW, 6),
    ("SAVEPOINT s", ALLOW, 6),
    ("ROLLBACK TO SAVEPOINT s", ALLOW, 6),
    ("RELEASE SAVEPOINT s", ALLOW, 6),
    ("BEGIN; SELECT 1; COMMIT", ALLOW, 6),
    # session
    ("SET statement_timeout = 0", ALLOW, 6),
    ("SET search_path TO app, public", ALLOW, 6),
    ("SET TIME ZONE 'UTC'", ALLOW, 6),
    ("SET application_name = 'agent'", ALLOW, 6),
    ("RESET statement_timeout", ALLOW, 6),
    ("RESET ALL", ALLOW, 6),
    ("SHOW search_path", ALLOW, 6),
    ("SHOW ALL", ALLOW, 6),
    ("DISCARD PLANS", ALLOW, 6),
    ("DISCARD TEMP", ALLOW, 6),
    ("DEALLOCATE p", ALLOW, 6),
    ("DEALLOCATE ALL", ALLOW, 6),
    ("LISTEN c", ALLOW, 6),
    ("UNLISTEN *", ALLOW, 6),
    ("NOTIFY c, 'x'", ALLOW, 6),
    ("CLOSE c", ALLOW, 6),
    ("SET CONSTRAINTS ALL DEFERRED", ALLOW, 6),
]

AGENT_DEFAULT_BLOCK: list[Case] = [
    # `write` is not among rule 6's categories: a WHERE does not make it allowed
    ("UPDATE t SET a=1 WHERE id=1", BLOCK, None),
    ("DELETE FROM t WHERE id = 1", BLOCK, None),
    ("INSERT INTO t VALUES (1)", BLOCK, None),
    ("INSERT INTO t SELECT * FROM s", BLOCK, None),
    ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1", BLOCK, None),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", BLOCK, None),
    ("WITH u AS (UPDATE t SET a = 1 WHERE id = 2 RETURNING *) SELECT * FROM u", BLOCK, None),
    ("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i", BLOCK, None),
    ("EXPLAIN ANALYZE UPDATE t SET a = 1 WHERE id = 1", BLOCK, None),
    ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", BLOCK, None),
    ("PREPARE p AS INSERT INTO t VALUES ($1)", BLOCK, None),
    ("LOCK TABLE t", BLOCK, None),
    ("REFRESH MATERIALIZED VIEW mv", BLOCK, None),
    ("SELECT 1; UPDATE t SET a = 1 WHERE id = 1", BLOCK, None),
    # the first refused statement of the request names the rule
    ("INSERT INTO t2 SELECT * FROM t; DELETE FROM t", BLOCK, None),
    # copy, procedural and admin statements are in no allow list
    ("COPY t TO PROGRAM 'id'", BLOCK, None),
    ("COPY t FROM PROGRAM 'id'", BLOCK, None),
    ("COPY t TO '/tmp/x'", BLOCK, None),
    ("COPY t FROM '/etc/passwd'", BLOCK, None),
    ("COPY t TO STDOUT", BLOCK, None),
    ("COPY t FROM STDIN", BLOCK, None),
    ("COPY (SELECT * FROM users) TO STDOUT WITH CSV", BLOCK, None),
    ("DO $$ BEGIN END $$", BLOCK, None),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", BLOCK, None),
    ("DO LANGUAGE plpgsql $$ BEGIN PERFORM 1; END $$", BLOCK, None),
    ("CALL p()", BLOCK, None),
    ("VACUUM t", BLOCK, None),
    ("VACUUM FULL", BLOCK, None),
    ("ANALYZE t", BLOCK, None),
    ("CLUSTER t", BLOCK, None),
    ("REINDEX TABLE t", BLOCK, None),
    ("CHECKPOINT", BLOCK, None),
    ("LOAD 'x'", BLOCK, None),
    ("ALTER SYSTEM SET work_mem = '1GB'", BLOCK, None),
    # unclassified: an EXECUTE of nothing the session prepared fails closed
    ("EXECUTE unknown_p", BLOCK, None),
    ("EXPLAIN ANALYZE EXECUTE unknown_p", BLOCK, None),
]

UNPARSABLE: list[str] = [
    "SELEC 1",
    "SELECT 1 FROM",
    "DROP TABLE",
    "SELECT 'unterminated",
    "GRANT",
    "this is not sql",
    "SELECT 1\x00; DROP TABLE t",  # a NUL would hide the rest from the C parser
]

AGENT_EMPTY: list[Case] = [
    ("", ALLOW, None),
    ("   ", ALLOW, None),
    ("-- only a comment", ALLOW, None),
    ("/* only a comment */", ALLOW, None),
]

AGENT_CASES: list[Case] = [
    *AGENT_RULE_1_DESTRUCTIVE,
    *AGENT_RULE_2_DCL,
    *AGENT_RULE_3_FUNCTIONS,
    *AGENT_RULE_4_NO_WHERE,
    *AGENT_RULE_5_DDL_REVIEW,
    *AGENT_RULE_6_ALLOWED,
    *AGENT_DEFAULT_BLOCK,
    *((sql, BLOCK, None) for sql in UNPARSABLE),
    *AGENT_EMPTY,
]

# ------------------------------------------------------------------------------------------
# humans

HUMAN_CASES: list[Case] = [
    ("DROP TABLE t", REVIEW, 1),
    ("drop/**/table t", REVIEW, 1),
    ("DROP DATABASE app", REVIEW, 1),
    ("TRUNCATE t", REVIEW, 1),
    ("SELECT 1; DROP TABLE t", REVIEW, 1),
    ("CREATE TABLE x (a int); TRUNCATE t", REVIEW, 1),
    ("SELECT 1; DROP TABLE t; GRANT ALL ON t TO bob", REVIEW, 1),
    # drop_schema is not in the humans' review list: ddl, allowed by rule 2
    ("DROP SCHEMA s CASCADE", ALLOW, 2),
    ("DROP VIEW v", ALLOW, 2),
    ("SELECT 1", ALLOW, 2),
    ("SELECT pg_read_file('x')", ALLOW, 2),
    ("UPDATE t SET a = 1", ALLOW, 2),
    ("UPDATE t SET a=1 WHERE id=1", ALLOW, 2),
    ("DELETE FROM t", ALLOW, 2),
    ("INSERT INTO t VALUES (1)", ALLOW, 2),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", ALLOW, 2),
    ("CREATE TABLE x (a int)", ALLOW, 2),
    ("SELECT * INTO t2 FROM t", ALLOW, 2),
    ("ALTER TABLE t ADD COLUMN c int", ALLOW, 2),
    ("BEGIN", ALLOW, 2),
    ("COMMIT", ALLOW, 2),
    ("SET statement_timeout = 0", ALLOW, 2),
    ("SHOW search_path", ALLOW, 2),
    # everything else falls to `default: allow`
    ("GRANT SELECT ON t TO bob", ALLOW, None),
    ("SET ROLE postgres", ALLOW, None),
    ("CREATE ROLE r", ALLOW, None),
    ("COPY t TO PROGRAM 'id'", ALLOW, None),
    ("COPY t FROM STDIN", ALLOW, None),
    ("DO $$ BEGIN END $$", ALLOW, None),
    ("CALL p()", ALLOW, None),
    ("VACUUM", ALLOW, None),
    ("EXECUTE never_prepared", ALLOW, None),  # unknown category, but the default is allow
    ("SELEC 1", ALLOW, None),  # unparsable, but the default is allow
    ("SELECT 'unterminated", ALLOW, None),
]

AGENT_REASONS: dict[int, str] = {
    1: "destructive commands are not allowed",
    2: "dcl is not allowed",
    5: "ddl needs approval",
    6: "allowed",
}


# ------------------------------------------------------------------------------------------
# helpers


def _identity(*groups: str, subject: str = "someone") -> Identity:
    return Identity(subject, None, frozenset(groups), "https://idp.example.com/realms/acme", None)


def _statement(
    sql: str, source: StatementSource = StatementSource.SIMPLE, target: str = "app"
) -> Statement:
    return Statement(sql, Dialect.POSTGRES, source, target)


@pytest.fixture
def service(example_config: Config) -> PolicyService:
    return PolicyService(example_config)


@pytest.fixture
def agent(service: PolicyService) -> PolicySession:
    session = service.open_session(_identity("code-assistant"), "app")
    assert session is not None
    assert session.policy is not None and session.policy.name == "ai-agents"
    return session


@pytest.fixture
def human(service: PolicyService) -> PolicySession:
    session = service.open_session(_identity("engineering"), "app")
    assert session is not None
    assert session.policy is not None and session.policy.name == "humans"
    return session


def _run(session: PolicySession, sql: str) -> Decision:
    """Judge a simple query and, as the proxy does, report it forwarded when allowed."""
    statement = _statement(sql)
    decision = session.judge(statement)
    if decision.verdict is Verdict.ALLOW:
        session.statement_forwarded(statement, decision)
    return decision


def _assert_agent_reason(decision: Decision) -> None:
    """The reason names the rule's own text, or explains the default."""
    if decision.rule in AGENT_REASONS:
        assert decision.reason == AGENT_REASONS[decision.rule]
    elif decision.rule == 3:
        assert re.fullmatch(
            r"calling (pg_read_file|pg_read_binary_file|lo_export|lo_import|dblink\w*|"
            r"pg_terminate_backend)\(\) is not allowed",
            decision.reason,
        ), decision.reason
    elif decision.rule == 4:
        assert decision.reason in {
            "update_without_where is not allowed",
            "delete_without_where is not allowed",
        }
    elif decision.verdict is Verdict.ALLOW:
        assert decision.reason == "empty statement"
    else:
        assert decision.reason == "no rule allows this statement" or decision.reason.startswith(
            (
                "the gateway cannot classify this statement",
                "the statement could not be parsed",
            )
        ), decision.reason


# ------------------------------------------------------------------------------------------
# the tables


def test_decision_table_is_large_enough() -> None:
    assert len(AGENT_CASES) >= 150
    assert len(HUMAN_CASES) >= 30
    assert len({sql for sql, _, _ in AGENT_CASES}) == len(AGENT_CASES), "duplicate cases"


@pytest.mark.parametrize(("sql", "verdict", "rule"), AGENT_CASES)
def test_ai_agents_decides_each_statement_by_the_expected_rule(
    agent: PolicySession, sql: str, verdict: Verdict, rule: int | None
) -> None:
    decision = agent.judge(_statement(sql))
    assert (decision.verdict, decision.rule) == (verdict, rule), decision.reason
    assert decision.policy == "ai-agents"
    _assert_agent_reason(decision)


@pytest.mark.parametrize(("sql", "verdict", "rule"), AGENT_CASES)
def test_ai_agents_judges_an_extended_protocol_parse_like_a_simple_query(
    service: PolicyService, sql: str, verdict: Verdict, rule: int | None
) -> None:
    # Separate sessions and a fresh service each: no cached decision can make them agree.
    simple_session = service.open_session(_identity("code-assistant"), "app")
    assert simple_session is not None
    simple = simple_session.judge(_statement(sql))
    fresh = PolicyService(service.config).open_session(_identity("code-assistant"), "app")
    assert fresh is not None
    parsed = fresh.judge(_statement(sql, StatementSource.PREPARE))
    assert (parsed.verdict, parsed.rule, parsed.reason, parsed.sqlstate) == (
        simple.verdict,
        simple.rule,
        simple.reason,
        simple.sqlstate,
    )
    assert (parsed.verdict, parsed.rule) == (verdict, rule)


@pytest.mark.parametrize(("sql", "verdict", "rule"), HUMAN_CASES)
def test_humans_decides_each_statement_by_the_expected_rule(
    human: PolicySession, sql: str, verdict: Verdict, rule: int | None
) -> None:
    decision = human.judge(_statement(sql))
    assert (decision.verdict, decision.rule) == (verdict, rule), decision.reason
    assert decision.policy == "humans"
    if verdict is Verdict.REVIEW:
        assert decision.reason.endswith("needs approval")
        assert decision.reason.split()[0] in {"drop_table", "drop_database", "truncate"}


# ------------------------------------------------------------------------------------------
# reasons and SQLSTATEs


def test_destructive_block_carries_the_reason_written_in_the_policy(agent: PolicySession) -> None:
    decision = agent.judge(_statement("DROP TABLE users"))
    assert decision.verdict is Verdict.BLOCK
    assert decision.reason == "destructive commands are not allowed"
    assert decision.rule_label == "rule 1"
    assert decision.sqlstate == "42501"
    assert decision.category == "ddl" and "drop_table" in decision.operations


def test_function_block_names_the_function_called(agent: PolicySession) -> None:
    decision = agent.judge(_statement("SELECT * FROM (SELECT dblink_exec('c', 'x')) s"))
    assert (decision.verdict, decision.rule) == (Verdict.BLOCK, 3)
    assert decision.reason == "calling dblink_exec() is not allowed"


def test_delete_hidden_in_a_cte_is_reported_as_delete_without_where(
    agent: PolicySession,
) -> None:
    decision = agent.judge(_statement("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"))
    assert (decision.verdict, decision.rule) == (Verdict.BLOCK, 4)
    assert decision.category == "write"
    assert {"delete", "delete_without_where"} <= decision.operations


def test_policy_default_refusal_has_no_rule_number(agent: PolicySession) -> None:
    decision = agent.judge(_statement("COPY t TO PROGRAM 'id'"))
    assert decision.verdict is Verdict.BLOCK
    assert decision.rule is None and decision.rule_label == "default"
    assert decision.reason == "no rule allows this statement"
    assert decision.category == "copy_out" and "copy_to_program" in decision.operations


@pytest.mark.parametrize("sql", UNPARSABLE)
def test_ai_agents_refuses_unparsable_text_with_sqlstate_42601(
    agent: PolicySession, sql: str
) -> None:
    decision = agent.judge(_statement(sql))
    assert decision.verdict is Verdict.BLOCK
    assert decision.rule is None
    assert decision.sqlstate == "42601"
    assert decision.reason.startswith("the statement could not be parsed")
    assert decision.reason.endswith("this policy refuses what it cannot parse")


@pytest.mark.parametrize("sql", UNPARSABLE)
def test_humans_allows_unparsable_text_because_its_default_is_allow(
    human: PolicySession, sql: str
) -> None:
    decision = human.judge(_statement(sql))
    assert decision.verdict is Verdict.ALLOW
    assert decision.rule is None
    assert decision.reason == "unparsed, allowed by default"


def test_unclassified_statement_is_refused_with_its_own_reason(agent: PolicySession) -> None:
    decision = agent.judge(_statement("EXECUTE unknown_p"))
    assert (decision.verdict, decision.rule) == (Verdict.BLOCK, None)
    assert decision.category == "unknown"
    assert decision.reason.startswith("the gateway cannot classify this statement")
    assert decision.sqlstate == "42501"


def test_humans_review_reason_names_the_operation(human: PolicySession) -> None:
    decision = human.judge(_statement("TRUNCATE t"))
    assert (decision.verdict, decision.rule) == (Verdict.REVIEW, 1)
    assert decision.reason == "truncate needs approval"


# ------------------------------------------------------------------------------------------
# SQL-level PREPARE / EXECUTE / DEALLOCATE


def test_prepare_of_a_delete_is_refused_at_prepare_time(agent: PolicySession) -> None:
    decision = _run(agent, "PREPARE p AS DELETE FROM t")
    assert (decision.verdict, decision.rule) == (Verdict.BLOCK, 4)
    assert agent.prepared == {}
    assert _run(agent, "EXECUTE p").verdict is Verdict.BLOCK


def test_execute_of_a_prepared_select_is_allowed_once_the_prepare_was_forwarded(
    agent: PolicySession,
) -> None:
    prepare = _statement("PREPARE p AS SELECT * FROM t WHERE id = $1")
    allowed = agent.judge(prepare)
    assert (allowed.verdict, allowed.rule) == (Verdict.ALLOW, 6)
    # Judged but not yet forwarded: the session does not know p.
    assert agent.judge(_statement("EXECUTE p(1)")).verdict is Verdict.BLOCK
    agent.statement_forwarded(prepare, allowed)
    decision = agent.judge(_statement("EXECUTE p(1)"))
    assert (decision.verdict, decision.rule) == (Verdict.ALLOW, 6)
    assert decision.category == "read"
    assert {"execute", "select"} <= decision.operations


def test_execute_of_an_unknown_prepared_statement_is_refused(agent: PolicySession) -> None:
    _run(agent, "PREPARE known AS SELECT 1")
    decision = agent.judge(_statement("EXECUTE unknown_p"))
    assert (decision.verdict, decision.rule) == (Verdict.BLOCK, None)
    assert decision.reason.startswith("the gateway cannot classify")


def test_execute_after_deallocate_is_refused(agent: PolicySession) -> None:
    _run(agent, "PREPARE p AS SELECT 1")
    assert _run(agent, "EXECUTE p").verdict is Verdict.ALLOW
    assert _run(agent, "DEALLOCATE p").verdict is Verdict.ALLOW
    assert _run(agent, "EXECUTE p").verdict is Verdict.BLOCK


@pytest.mark.parametrize("forget", ["DEALLOCATE ALL", "DEALLOCATE PREPARE ALL", "DISCARD PLANS"])
def test_execute_after_forgetting_every_prepared_statement_is_refused(
    agent: PolicySession, forget: str
) -> None:
    _run(agent, "PREPARE p AS SELECT 1")
    assert _run(agent, forget).verdict is Verdict.ALLOW
    assert _run(agent, "EXECUTE p").verdict is Verdict.BLOCK


def test_prepare_inside_the_same_request_as_its_execute_fails_closed(
    agent: PolicySession,
) -> None:
    # The EXECUTE is judged before the PREPARE of the same string has been forwarded.
    assert _run(agent, "PREPARE p AS SELECT 1; EXECUTE p").verdict is Verdict.BLOCK


def test_prepare_sent_through_the_extended_protocol_is_not_trusted_for_execute(
    agent: PolicySession,
) -> None:
    statement = _statement("PREPARE p AS SELECT 1", StatementSource.PREPARE)
    decision = agent.judge(statement)
    assert decision.verdict is Verdict.ALLOW
    agent.statement_forwarded(statement, decision)  # not tracked: only simple queries are
    assert agent.judge(_statement("EXECUTE p")).verdict is Verdict.BLOCK


def test_wrapped_execute_of_a_prepared_select_keeps_the_wrapper_meaning(
    agent: PolicySession,
) -> None:
    _run(agent, "PREPARE p AS SELECT 1")
    explain = agent.judge(_statement("EXPLAIN ANALYZE EXECUTE p"))
    assert (explain.verdict, explain.rule) == (Verdict.ALLOW, 6)
    ctas = agent.judge(_statement("CREATE TABLE x AS EXECUTE p"))
    assert (ctas.verdict, ctas.rule) == (Verdict.REVIEW, 5)


def test_refused_redefinition_leaves_the_prepared_statement_as_it_was(
    agent: PolicySession,
) -> None:
    _run(agent, "PREPARE p AS SELECT 1")
    assert _run(agent, "DEALLOCATE p; PREPARE p AS DELETE FROM t").verdict is Verdict.BLOCK
    # Nothing of the refused request reached the server, so p still is the SELECT.
    decision = _run(agent, "EXECUTE p")
    assert (decision.verdict, decision.rule) == (Verdict.ALLOW, 6)
    assert "delete" not in decision.operations


def test_redefinition_as_a_write_after_a_forwarded_deallocate_is_refused(
    agent: PolicySession,
) -> None:
    _run(agent, "PREPARE p AS SELECT 1")
    assert _run(agent, "DEALLOCATE p").verdict is Verdict.ALLOW
    assert _run(agent, "PREPARE p AS DELETE FROM t").verdict is Verdict.BLOCK
    assert _run(agent, "EXECUTE p").verdict is Verdict.BLOCK  # unknown now: fails closed


# ------------------------------------------------------------------------------------------
# fast-path function calls


def test_fast_path_function_call_is_refused_for_ai_agents(agent: PolicySession) -> None:
    decision = agent.judge(
        _statement("-- fast-path function call (oid 2620)", StatementSource.FUNCTION_CALL)
    )
    assert decision.verdict is Verdict.BLOCK
    assert decision.policy == "ai-agents" and decision.rule is None
    assert "function_call" in decision.operations


def test_fast_path_function_call_is_allowed_for_humans_by_their_default(
    human: PolicySession,
) -> None:
    decision = human.judge(
        _statement("-- fast-path function call (oid 2620)", StatementSource.FUNCTION_CALL)
    )
    assert decision.verdict is Verdict.ALLOW
    assert decision.policy == "humans" and decision.rule is None


class _NoCatalog:
    """A catalog stub: enough for the planner to exist; judging never consults it."""

    async def relations(self, oids: Iterable[int]) -> dict[int, Relation]:
        return {}

    async def relations_by_name(self, names: Iterable[str]) -> dict[str, Relation]:
        return {}

    async def user_functions(self, names: Iterable[str]) -> frozenset[str]:
        return frozenset()

    def invalidate(self) -> None:
        return None


def _no_catalog(target: str) -> Catalog:
    return _NoCatalog()


def test_fast_path_function_call_is_refused_where_results_are_masked(
    example_config: Config,
) -> None:
    service = PolicyService(example_config, catalog_for=_no_catalog)
    session = service.open_session(_identity("engineering"), "app")
    assert session is not None and session.planner is not None
    decision = session.judge(_statement("-- fast-path", StatementSource.FUNCTION_CALL))
    assert decision.verdict is Verdict.BLOCK
    assert decision.reason == "fast-path function calls bypass result masking"


def test_copy_to_stdout_is_refused_where_masked_columns_could_be_copied(
    example_config: Config,
) -> None:
    service = PolicyService(example_config, catalog_for=_no_catalog)
    session = service.open_session(_identity("engineering"), "app")
    assert session is not None
    decision = session.judge(_statement("COPY people TO STDOUT"))  # `*.ssn` may be in it
    assert decision.verdict is Verdict.BLOCK
    assert decision.reason.startswith("COPY ... TO is refused where masked columns")


# ------------------------------------------------------------------------------------------
# who gets which policy


@pytest.mark.parametrize(
    ("groups", "target"),
    [
        ((), "app"),
        (("other",), "app"),
        (("dba",), "app"),
        (("Code-Assistant",), "app"),  # group names are case-sensitive
        (("code-assistant-x",), "app"),
        (("code-assistant",), "analytics"),  # ai-agents is limited to target app
        (("code-assistant",), "APP"),
    ],
)
def test_identity_matching_no_policy_gets_no_session(
    service: PolicyService, groups: tuple[str, ...], target: str
) -> None:
    assert service.open_session(_identity(*groups), target) is None


@pytest.mark.parametrize(
    ("groups", "target", "policy"),
    [
        (("code-assistant",), "app", "ai-agents"),
        (("engineering",), "app", "humans"),
        (("engineering",), "analytics", "humans"),  # humans has no target restriction
        (("code-assistant", "engineering"), "app", "ai-agents"),  # the first policy wins
        (("engineering", "code-assistant"), "app", "ai-agents"),
        (("code-assistant", "engineering"), "analytics", "humans"),
    ],
)
def test_first_policy_whose_when_matches_applies(
    service: PolicyService, groups: tuple[str, ...], target: str, policy: str
) -> None:
    session = service.open_session(_identity(*groups), target)
    assert session is not None
    assert session.judge(_statement("SELECT 1", target=target)).policy == policy


def test_member_of_both_groups_is_judged_as_an_ai_agent(service: PolicyService) -> None:
    session = service.open_session(_identity("engineering", "code-assistant"), "app")
    assert session is not None
    decision = session.judge(_statement("UPDATE t SET a = 1 WHERE id = 1"))
    assert (decision.verdict, decision.policy) == (Verdict.BLOCK, "ai-agents")
