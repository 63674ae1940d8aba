"""Statements held for review through the gateway: approve, deny, timeout, defer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.conftest import POLICIES
from tests.support.gateway import RunningGateway, gateway_yaml, start_gateway
from tests.support.pgserver import PgServer


def _pending(gateway: RunningGateway, approver: str, sql: str, timeout: float = 10) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {approver}"}
    while time.monotonic() < deadline:
        reply = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/api/approvals",
                          params={"status": "pending"}, headers=headers)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        items = body if isinstance(body, list) else body.get("approvals", body.get("items", []))
        for item in items:
            if item["sql"] == sql:
                return item  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"no pending request for {sql!r}")


def _decide(gateway: RunningGateway, approver: str, sql: str, verb: str, reason: str,
            results: list[object]) -> None:
    item = _pending(gateway, approver, sql)
    reply = httpx.post(f"http://127.0.0.1:{gateway.admin_port}/api/approvals/{item['id']}/{verb}",
                       json={"reason": reason}, headers={"Authorization": f"Bearer {approver}"})
    results.append((item, reply.status_code, reply.json()))


def test_held_ddl_runs_after_approval_and_session_keeps_working(
    gateway: RunningGateway, agent_token: str, human_token: str
) -> None:
    approver = gateway.token("dan", ["dba"], email="dan@corp.example")
    sql = "CREATE TABLE approved_by_dan (x int)"
    results: list[object] = []
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        thread = threading.Thread(target=_decide, args=(gateway, approver, sql, "approve",
                                                        "looks fine", results))
        thread.start()
        conn.execute(sql)  # held until the approval arrives
        thread.join(15)
        item, status, body = results[0]  # type: ignore[misc]
        assert status == 200 and body["status"] == "approved"
        assert item["requested_by"]["sub"] == "agent-7" and item["rule"] == 5
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # A second decision on the same request is a conflict.
        again = httpx.post(
            f"http://127.0.0.1:{gateway.admin_port}/api/approvals/{item['id']}/deny",
            json={"reason": "too late"}, headers={"Authorization": f"Bearer {approver}"})
        assert again.status_code == 409
    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as human:
        assert human.execute("SELECT to_regclass('approved_by_dan') IS NOT NULL").fetchone() == (True,)
        human.execute("DROP TABLE approved_by_dan")


def test_denied_statement_gets_42501_with_the_reason(
    gateway: RunningGateway, agent_token: str
) -> None:
    approver = gateway.token("dan", ["dba"])
    sql = "CREATE TABLE denied_table (x int)"
    results: list[object] = []
    with psycopg.connect(gateway.dsn(agent_token), autocommit=True) as conn:
        thread = threading.Thread(target=_decide, args=(gateway, approver, sql, "deny",
                                                        "not in production", results))
        thread.start()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not in production"):
            conn.execute(sql)
        thread.join(15)
        assert conn.execute("SELECT to_regclass('denied_table') IS NULL").fetchone() == (True,)


def test_self_approval_and_non_approvers_are_refused(
    gateway: RunningGateway, agent_token: str
) -> None:
    # The requester holds the approver group too: still may not decide their own request.
    both = gateway.token("dual", ["code-assistant", "dba"])
    outsider = gateway.token("eve", ["engineering"])
    sql = "CREATE TABLE self_approved (x int)"
    statuses: list[int] = []

    def try_decisions() -> None:
        item = _pending(gateway, gateway.token("dan", ["dba"]), sql)
        base = f"http://127.0.0.1:{gateway.admin_port}/api/approvals/{item['id']}"
        for token in (both, outsider):
            statuses.append(httpx.post(base + "/approve", json={"reason": "me"},
                                       headers={"Authorization": f"Bearer {token}"}).status_code)
        httpx.post(base + "/deny", json={"reason": "cleanup"},
                   headers={"Authorization": f"Bearer {gateway.token('dan', ['dba'])}"})

    with psycopg.connect(gateway.dsn(both), autocommit=True) as conn:
        thread = threading.Thread(target=try_decisions)
        thread.start()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql)
        thread.join(15)
    assert statuses == [403, 403]
    assert httpx.get(f"http://127.0.0.1:{gateway.admin_port}/api/approvals").status_code == 401


@pytest.fixture(scope="module")
def quick_gateway(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    text = gateway_yaml(pg_server.port, tmp_path_factory.mktemp("quick"), policies=POLICIES)
    running = start_gateway(text.replace("timeout_seconds: 20", "timeout_seconds: 1.5"))
    yield running
    running.stop()


def test_timeout_names_the_request_and_session_survives(quick_gateway: RunningGateway) -> None:
    token = quick_gateway.token("agent-7", ["code-assistant"])
    with psycopg.connect(quick_gateway.dsn(token), autocommit=True) as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("CREATE TABLE never_decided (x int)")
        assert 1 <= time.monotonic() - started < 10
        assert "timed out" in str(info.value) or "expired" in str(info.value)
        assert conn.execute("SELECT 2").fetchone() == (2,)


@pytest.fixture(scope="module")
def defer_gateway(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    text = gateway_yaml(pg_server.port, tmp_path_factory.mktemp("defer"), policies=POLICIES)
    running = start_gateway(text.replace("timeout_seconds: 20", "timeout_seconds: 60\n  mode: defer"))
    yield running
    running.stop()


def test_defer_mode_fails_now_and_runs_once_after_approval(defer_gateway: RunningGateway,
                                                           tmp_path: Path) -> None:
    gateway = defer_gateway
    token = gateway.token("agent-7", ["code-assistant"])
    approver = gateway.token("dan", ["dba"])
    sql = "CREATE TABLE deferred_table (x int)"
    with psycopg.connect(gateway.dsn(token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(sql)
        item = _pending(gateway, approver, sql)
        assert item["id"] in str(info.value)
        reply = httpx.post(f"http://127.0.0.1:{gateway.admin_port}/api/approvals/{item['id']}/approve",
                           json={"reason": "ok"}, headers={"Authorization": f"Bearer {approver}"})
        assert reply.status_code == 200
        conn.execute(sql)  # the grant: runs once
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql)  # a second run needs a new approval


def test_decision_on_another_gateway_releases_the_held_statement(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two gateways share a PostgreSQL store: one holds, the other approves (LISTEN/NOTIFY)."""
    from urllib.parse import quote

    pg_server.create_database("sqlgate_store_replicas")
    store_url = (f"postgresql://{pg_server.superuser}:{quote(pg_server.superuser_password)}"
                 f"@127.0.0.1:{pg_server.port}/sqlgate_store_replicas")
    work = tmp_path_factory.mktemp("replicas")
    key = work / "shared-dev-key.json"
    gateways = []
    for name in ("a", "b"):
        text = gateway_yaml(pg_server.port, work / name, policies=POLICIES)
        text = text.replace(f"url: sqlite:///{work / name / 'sqlgate.db'}", f"url: {store_url}")
        text = text.replace(f"dev_issuer_key_file: {work / name / 'dev-key.json'}",
                            f"dev_issuer_key_file: {key}")
        gateways.append(start_gateway(text))
    holder, decider = gateways
    try:
        agent = holder.token("agent-7", ["code-assistant"])
        sql = "CREATE TABLE replica_approved (x int)"
        released: list[float] = []
        with psycopg.connect(holder.dsn(agent), autocommit=True) as conn:
            def approve_on_b() -> None:
                approver = decider.token("dan", ["dba"])
                item = _pending(decider, approver, sql)
                reply = httpx.post(
                    f"http://127.0.0.1:{decider.admin_port}/api/approvals/{item['id']}/approve",
                    json={"reason": "ok from b"}, headers={"Authorization": f"Bearer {approver}"})
                assert reply.status_code == 200
                released.append(time.monotonic())

            thread = threading.Thread(target=approve_on_b)
            thread.start()
            conn.execute(sql)
            done = time.monotonic()
            thread.join(15)
            assert released and done - released[0] < 1.0  # released within a second
    finally:
        for gateway in gateways:
            gateway.stop()


def test_psql_session_keeps_working_after_approval_and_denial(gateway: RunningGateway,
                                                             human_token: str) -> None:
    import os
    import shutil
    import subprocess

    agent = gateway.token("agent-7", ["code-assistant"])
    approver = gateway.token("dan", ["dba"])
    approve_sql = "CREATE TABLE psql_approved (x int)"
    deny_sql = "CREATE TABLE psql_denied (x int)"
    results: list[object] = []

    def decide_both() -> None:
        _decide(gateway, approver, approve_sql, "approve", "fine", results)
        _decide(gateway, approver, deny_sql, "deny", "no thanks", results)

    thread = threading.Thread(target=decide_both)
    thread.start()
    run = subprocess.run(
        [shutil.which("psql") or "psql", "-h", gateway.host, "-p", str(gateway.port), "-U",
         "agent", "-d", "app", "-X", "-At", "-c", approve_sql, "-c", deny_sql,
         "-c", "SELECT 'still here'"],
        env={**os.environ, "PGPASSWORD": agent, "PGSSLMODE": "require"},
        capture_output=True, text=True, timeout=60,
    )
    thread.join(15)
    assert "no thanks" in run.stderr
    assert "still here" in run.stdout
    with psycopg.connect(gateway.dsn(human_token), autocommit=True) as human:
        exists = human.execute("SELECT to_regclass('psql_approved') IS NOT NULL, "
                               "to_regclass('psql_denied') IS NULL").fetchone()
        assert exists == (True, True)
        human.execute("DROP TABLE psql_approved")
