"""Shared bench plumbing: a throwaway PostgreSQL and a `sqlgate serve` process beside it.

The gateway runs as its own process so that the client's Python does not share a GIL with
it: what is measured is what a deployment would see.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.gateway import free_port
from tests.support.pgserver import PgServer, start_pg_server

SVC_PASSWORD = secrets.token_hex(12)


@dataclass
class Gateway:
    port: int
    admin_port: int
    config: Path
    process: subprocess.Popen[bytes]

    def token(self, sub: str, groups: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "sqlgate.cli", "token", "--config", str(self.config),
             "--sub", sub, "--groups", groups],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()


@contextmanager
def postgres(work: Path, **settings: str) -> Iterator[PgServer]:
    server = start_pg_server(work, auth="scram-sha-256", settings=settings or None)
    try:
        server.create_role("sqlgate_svc", SVC_PASSWORD, superuser=True)
        server.create_database("app", owner="sqlgate_svc")
        yield server
    finally:
        server.stop()


def gateway_config(pg: PgServer, work: Path, policies: str, extra: str = "") -> str:
    return f"""
listen:
  postgres: 127.0.0.1:{free_port()}
  admin: 127.0.0.1:{free_port()}
tls:
  allow_plaintext_on_loopback: true
identity:
  dev_issuer: true
  dev_issuer_key_file: {work / "dev-key.json"}
targets:
  - name: app
    host: 127.0.0.1
    port: {pg.port}
    database: app
    tls: disable
    credentials: {{user: sqlgate_svc, password_env: SQLGATE_BENCH_SVC_PASSWORD}}
logging: {{level: warning}}
store: {{url: "sqlite:///{work / "sqlgate.db"}"}}
{extra}
policies:
{policies}
"""


@contextmanager
def sqlgate(pg: PgServer, work: Path, policies: str, extra: str = "",
            workers: int = 1) -> Iterator[Gateway]:
    config = work / "sqlgate.yaml"
    text = gateway_config(pg, work, policies, extra)
    config.write_text(text)
    port = int(text.split("postgres: 127.0.0.1:")[1].split()[0])
    admin = int(text.split("admin: 127.0.0.1:")[1].split()[0])
    env = {**os.environ, "SQLGATE_BENCH_SVC_PASSWORD": SVC_PASSWORD}
    proc = subprocess.Popen([sys.executable, "-m", "sqlgate.cli", "serve", "--workers",
                             str(workers), "--config", str(config)], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sqlgate did not start")
            time.sleep(0.1)
        yield Gateway(port, admin, config, proc)
    finally:
        proc.terminate()
        proc.wait(30)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="sqlgate-bench-"))


def direct_dsn(pg: PgServer) -> str:
    return pg.dsn(user="sqlgate_svc", password=SVC_PASSWORD, dbname="app", sslmode="disable")


def gateway_dsn(gw: Gateway, token: str) -> str:
    return (f"host=127.0.0.1 port={gw.port} dbname=app user=bench password={token} "
            "sslmode=disable")


def connect_seconds(dsn: str, n: int) -> float:
    """Mean seconds for connect + SELECT 1 + close."""
    start = time.perf_counter()
    for _ in range(n):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT 1")
    return (time.perf_counter() - start) / n
