"""The decision cache keyed by statement shape: hits for new constants, never for text rules."""

from __future__ import annotations

from sqlgate.config import parse_config
from sqlgate.core import Dialect, Identity, Statement, StatementSource, Verdict
from sqlgate.policy.session import PolicyService

CONFIG = """identity: {dev_issuer: true}
targets:
  - {name: app, host: 127.0.0.1, database: app, credentials: {user: u, password: p}}
policies:
  - name: plain
    when: {groups: [plain]}
    rules:
      - {action: allow, categories: [read]}
  - name: texty
    when: {groups: [texty]}
    rules:
      - {action: block, statement_regex: "aid = 666", reason: the number of the beast}
      - {action: allow, categories: [read]}
"""


def _session(group: str):  # type: ignore[no-untyped-def]
    service = PolicyService(parse_config(CONFIG))
    session = service.open_session(Identity("s", None, frozenset({group}), "t", None), "app")
    assert session is not None
    return service, session


def _stmt(sql: str) -> Statement:
    return Statement(sql, Dialect.POSTGRES, StatementSource.SIMPLE, "app")


def test_new_constants_hit_the_shape_cache_without_analysis() -> None:
    service, session = _session("plain")
    session.judge(_stmt("SELECT abalance FROM pgbench_accounts WHERE aid = 1"))
    analyzed = len(service._analyses)
    for aid in range(2, 50):
        decision = session.judge(_stmt(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid}"))
        assert decision.verdict is Verdict.ALLOW
    assert len(service._analyses) == analyzed  # no parse for the other 48


def test_policies_with_statement_regex_never_use_the_shape_cache() -> None:
    _service, session = _session("texty")
    assert session.judge(_stmt("SELECT 1 FROM t WHERE aid = 1")).verdict is Verdict.ALLOW
    assert session.judge(_stmt("SELECT 1 FROM t WHERE aid = 666")).verdict is Verdict.BLOCK


def test_standard_conforming_strings_off_disables_shapes() -> None:
    service, session = _session("plain")
    session.judge(_stmt("SELECT 1 FROM t WHERE a = 1"))
    set_scs = _stmt("SET standard_conforming_strings = off")
    session.statement_forwarded(set_scs, session.judge(set_scs))
    before = len(service._analyses)
    session.judge(_stmt("SELECT 1 FROM t WHERE a = 2"))
    assert len(service._analyses) == before + 1  # analyzed by text, not by shape
