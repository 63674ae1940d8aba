"""`sqlgate serve` as a real process: CLI, token minting, reload, and SIGTERM drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.conftest import POLICIES
from tests.support.gateway import free_port, gateway_yaml
from tests.support.pgserver import PgServer

SQLGATE = [sys.executable, "-m", "sqlgate.cli"]


def _wait_ready(admin_port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("sqlgate did not become ready")


def _token(config: Path, sub: str, groups: str) -> str:
    out = subprocess.run([*SQLGATE, "token", "--config", str(config), "--sub", sub,
                          "--groups", groups], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_version_and_help() -> None:
    version = subprocess.run([*SQLGATE, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("sqlgate ")
    helptext = subprocess.run([*SQLGATE, "--help"], capture_output=True, text=True, check=True)
    for command in ("serve", "token", "policy"):
        assert command in helptext.stdout


def test_serve_rejects_bad_config_with_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("identity: {dev_issuer: true}\ntargets:\n  - name: app\n    host: h\n"
                      "    database: d\n    credentials: {user: u}\n    colour: blue\n")
    result = subprocess.run([*SQLGATE, "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}:7: targets.0.colour: unknown key" in result.stderr


def test_reload_and_graceful_drain(pg_server: PgServer, tmp_path: Path) -> None:
    admin_port = free_port()
    config = tmp_path / "sqlgate.yaml"
    config.write_text(gateway_yaml(pg_server.port, tmp_path, policies=POLICIES,
                                   admin_port=admin_port))
    proc = subprocess.Popen([*SQLGATE, "serve", "--workers", "2", "--config", str(config)],
                            text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        _wait_ready(admin_port, proc)
        port = int(config.read_text().split("postgres: 127.0.0.1:")[1].split()[0])
        token = _token(config, "erin", "engineering")
        dsn = f"host=127.0.0.1 port={port} dbname=app user=erin password={token} sslmode=require"
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)

        # Cancel works whichever worker the cancel request lands on.
        for _ in range(4):
            with psycopg.connect(dsn, autocommit=True) as conn:
                started = time.monotonic()
                conn.execute("SET statement_timeout = '8s'")
                timer = threading.Timer(0.3, conn.cancel_safe)
                timer.start()
                with pytest.raises(psycopg.errors.QueryCanceled):
                    conn.execute("SELECT pg_sleep(5)")
                timer.join()
                assert time.monotonic() - started < 4

        # Reload through the API: anonymous 401, non-admin 403, admin 200.
        url = f"http://127.0.0.1:{admin_port}/api/reload"
        assert httpx.post(url).status_code == 401
        assert httpx.post(url, headers={"Authorization": f"Bearer {token}"}).status_code == 403
        dba = _token(config, "dan", "dba")
        new_text = config.read_text().replace(
            "      - {action: allow, categories: [read, write, ddl, tcl, session, copy_out, copy_in, procedural, admin]}",
            "      - {action: block, tables: [public.users], reason: users is off limits now}\n"
            "      - {action: allow, categories: [read, write, ddl, tcl, session, copy_out, copy_in, procedural, admin]}",
        )
        assert new_text != config.read_text()
        with psycopg.connect(dsn, autocommit=True) as live:
            config.write_text(new_text)
            reply = httpx.post(url, headers={"Authorization": f"Bearer {dba}"})
            assert reply.status_code == 200 and reply.json()["reloaded"] is True
            # The live session picks up the new policy at its next statement (the workers
            # reload on the supervisor's SIGHUP, so allow them a moment).
            deadline = time.monotonic() + 5
            while True:
                try:
                    live.execute("SELECT * FROM users")
                except psycopg.errors.InsufficientPrivilege as exc:
                    assert "off limits" in str(exc)
                    break
                assert time.monotonic() < deadline, "the reload did not reach the session"
                time.sleep(0.1)
            # A broken config is rejected and the running one kept (SIGHUP path).
            config.write_text(new_text + "\nnonsense_key: 1\n")
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="off limits"):
                live.execute("SELECT * FROM users")
            assert live.execute("SELECT count(*) FROM orders").fetchone() == (100,)

        # SIGTERM: idle sessions close, a running transaction may finish, then exit.
        idle = psycopg.connect(dsn, autocommit=True)
        busy = psycopg.connect(dsn)
        busy.execute("INSERT INTO orders (user_id, amount) VALUES (1, 7)")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(psycopg.OperationalError):
            idle.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=3).close()
        assert busy.execute("SELECT count(*) FROM orders WHERE amount = 7").fetchone() == (2,)
        busy.commit()
        assert proc.wait(timeout=10) == 0
        import glob
        import tempfile

        leftovers = glob.glob(f"{tempfile.gettempdir()}/sqlgate-cancel-{proc.pid}-*.sock")
        assert leftovers == []  # the workers' cancel sockets are removed at shutdown
        busy.close()
        idle.close()
        logs = proc.stderr.read() if proc.stderr else ""
        assert "config reload rejected" in logs
        assert token not in logs  # tokens are never logged
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
