"""Regressions found in review: each was a way past a rule."""

from __future__ import annotations

from sqlgate.config import parse_config
from sqlgate.core import Dialect, Identity, Statement, StatementSource, Verdict
from sqlgate.policy.session import PolicyService

CONFIG = """identity: {dev_issuer: true}
targets:
  - {name: app, host: 127.0.0.1, database: app, credentials: {user: u, password: p}}
policies:
  - name: agents
    when: {groups: [agent]}
    rules:
      - {action: block, tables: ["secret*"], reason: secrets are off limits}
      - {action: review, categories: [ddl]}
      - {action: allow, categories: [read, session]}
    default: block
"""


def _session():  # type: ignore[no-untyped-def]
    service = PolicyService(parse_config(CONFIG))
    session = service.open_session(Identity("a", None, frozenset({"agent"}), "t", None), "app")
    assert session is not None
    return session


def _judge(session, sql: str):  # type: ignore[no-untyped-def]
    statement = Statement(sql, Dialect.POSTGRES, StatementSource.SIMPLE, "app")
    decision = session.judge(statement)
    if decision.verdict is Verdict.ALLOW:
        session.statement_forwarded(statement, decision)
    return decision


def test_create_table_as_execute_keeps_its_ddl() -> None:
    session = _session()
    assert _judge(session, "PREPARE p AS SELECT 1").verdict is Verdict.ALLOW
    decision = _judge(session, "CREATE TABLE x AS EXECUTE p")
    assert decision.verdict is Verdict.REVIEW
    assert "create_table" in decision.operations


def test_refused_unknown_execute_is_not_cached_for_later() -> None:
    session = _session()
    assert _judge(session, "EXECUTE later").verdict is Verdict.BLOCK
    assert _judge(session, "PREPARE later AS SELECT 1").verdict is Verdict.ALLOW
    assert _judge(session, "EXECUTE later").verdict is Verdict.ALLOW


def test_quoted_mixed_case_table_still_matches_lowercase_glob() -> None:
    decision = _judge(_session(), 'SELECT * FROM "Secrets"')
    assert decision.verdict is Verdict.BLOCK
    assert decision.reason == "secrets are off limits"
