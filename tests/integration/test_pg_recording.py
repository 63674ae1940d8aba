"""Every statement on record: sessions, replay, a verifiable audit trail, and no raw PII."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.conftest import POLICIES
from tests.integration.test_pg_masking import FORBIDDEN
from tests.support.gateway import RunningGateway, gateway_yaml, start_gateway
from tests.support.pgserver import PgServer

SQLGATE = [sys.executable, "-m", "sqlgate.cli"]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SQLGATE, *args, "--config", str(config)], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def gateway(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with a store of its own, so only this module's sessions are in it."""
    running = start_gateway(gateway_yaml(pg_server.port, tmp_path_factory.mktemp("rec"),
                                         policies=POLICIES))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def recorded_session(gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """Run one agent session with reads of masked data, a block and an error; flush the store."""
    pii_token = gateway.token("agent-pii", ["pii-agent"])
    with psycopg.connect(gateway.dsn(pii_token, application_name="probe-agent"),
                         autocommit=True) as conn:
        conn.execute("SELECT id, email, ssn FROM users ORDER BY id").fetchall()
        conn.execute("SELECT name FROM users WHERE id = %s", (2,)).fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE users")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        session_marker = conn.execute("SELECT 'recording-marker-42'").fetchone()
        assert session_marker == ("recording-marker-42",)
    recorder = gateway.runtime.recorder
    assert recorder is not None
    gateway.call(recorder.flush)
    store_url = gateway.config.store.url
    db_path = Path(store_url.removeprefix("sqlite:///"))
    config = tmp_path_factory.mktemp("cli") / "sqlgate.yaml"
    config.write_text(
        "identity: {dev_issuer: true}\n"
        f"store: {{url: '{store_url}'}}\n"
        "targets: [{name: app, host: 127.0.0.1, database: app, credentials: {user: u}}]\n"
    )
    sessions = _cli(config, "sessions", "list", "--json")
    assert sessions.returncode == 0, sessions.stderr
    ours = [json.loads(line) for line in sessions.stdout.splitlines()
            if '"probe-agent"' in line]
    assert len(ours) == 1
    return ours[0]["session_id"], config, db_path


def test_session_is_listed_with_identity_and_replayed(
    recorded_session: tuple[str, Path, Path],
) -> None:
    session_id, config, _db = recorded_session
    listing = _cli(config, "sessions", "list")
    assert "agent-pii" in listing.stdout and "app" in listing.stdout
    replay = _cli(config, "replay", session_id, "--speed", "0")
    assert replay.returncode == 0, replay.stderr
    text = replay.stdout
    for expected in ("SELECT id, email, ssn FROM users ORDER BY id", "DROP TABLE users",
                     'blocked by policy "masked-agents"', "22012",
                     "recording-marker-42", "****", "*******6789"):
        assert expected in text, (expected, text)


def test_audit_trail_names_the_rule_and_verifies(
    recorded_session: tuple[str, Path, Path],
) -> None:
    session_id, config, _db = recorded_session
    export = _cli(config, "audit", "export")
    assert export.returncode == 0, export.stderr
    records = [json.loads(line) for line in export.stdout.splitlines()]
    ours = [r for r in records if r.get("session_id") == session_id]
    blocked = [r for r in ours if r.get("decision") == "block"]
    assert blocked and blocked[0]["policy"] == "masked-agents"
    assert "DROP TABLE users" in blocked[0]["sql"]
    errors = [r for r in ours if (r.get("outcome") or {}).get("sqlstate") == "22012"
              or r.get("sqlstate") == "22012"]
    assert errors, ours
    verify = _cli(config, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_no_raw_pii_in_the_store_file_or_exports(
    recorded_session: tuple[str, Path, Path],
) -> None:
    session_id, config, db = recorded_session
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    leaked = sorted(f for f in FORBIDDEN if f.encode() in raw)
    assert not leaked, leaked
    replay = _cli(config, "replay", session_id, "--speed", "0", "--json").stdout
    assert not [f for f in FORBIDDEN if f in replay]


def test_tampering_is_detected_and_named(
    recorded_session: tuple[str, Path, Path], tmp_path: Path,
) -> None:
    _session_id, config, db = recorded_session
    copy = tmp_path / "tampered.db"
    with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as conn:
        row = conn.execute(
            "SELECT id FROM audit_log WHERE sql LIKE 'DROP TABLE users%' LIMIT 1").fetchone()
        assert row is not None
        conn.execute("UPDATE audit_log SET sql = 'SELECT 1' WHERE id = ?", row)
    tampered = tmp_path / "tampered.yaml"
    tampered.write_text(config.read_text().replace(str(db), str(copy)))
    verify = _cli(tampered, "audit", "verify")
    assert verify.returncode != 0
    assert str(row[0]) in verify.stdout + verify.stderr


def test_api_refuses_anonymous_callers_and_agents(
    gateway: RunningGateway, recorded_session: tuple[str, Path, Path],
) -> None:
    session_id = recorded_session[0]
    base = f"http://127.0.0.1:{gateway.admin_port}"
    for path in ("/api/sessions", f"/api/sessions/{session_id}", "/api/audit"):
        assert httpx.get(base + path).status_code == 401
        agent = gateway.token("agent-pii", ["pii-agent"])
        assert httpx.get(base + path, headers={"Authorization": f"Bearer {agent}"}).status_code == 403
    auditor = gateway.token("auditor", ["dba"])
    headers = {"Authorization": f"Bearer {auditor}"}
    listing = httpx.get(base + "/api/sessions", headers=headers).json()
    assert any(s["session_id"] == session_id for s in listing["sessions"])
    detail = httpx.get(base + f"/api/sessions/{session_id}", headers=headers).json()
    assert detail["session"]["subject"] == "agent-pii" and detail["events"]
    audit = httpx.get(base + "/api/audit", headers=headers, params={"decision": "block"}).json()
    assert all(r["decision"] == "block" for r in audit["records"]) and audit["records"]
