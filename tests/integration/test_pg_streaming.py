"""Large results stream through the gateway process with flat memory, masked or not."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sqlgate.protocols.postgres.messages import PasswordMessage, Query, StartupMessage
from tests.integration.conftest import POLICIES
from tests.support.gateway import free_port, gateway_yaml
from tests.support.pgserver import PgServer

GIB = 1 << 30


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _stream(port: int, token: str, sql: str) -> tuple[int, bytes]:
    """Run one simple query over plaintext loopback and discard the rows; bytes received."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(StartupMessage({"user": "agent", "database": "app"}).encode())
        sock.recv(64)
        sock.sendall(PasswordMessage(token.encode() + b"\x00").encode())
        buf = b""
        while not buf.endswith(b"Z\x00\x00\x00\x05I"):
            buf += sock.recv(65536)
        sock.sendall(Query(sql).encode())
        total = 0
        tail = b""
        while True:
            chunk = sock.recv(1 << 20)
            assert chunk, "gateway closed the connection"
            total += len(chunk)
            tail = (tail + chunk)[-4096:]
            if tail.endswith(b"Z\x00\x00\x00\x05I"):
                return total, tail


def test_one_gib_masked_result_streams_with_flat_memory(pg_server: PgServer,
                                                        tmp_path: Path) -> None:
    admin = free_port()
    config = tmp_path / "sqlgate.yaml"
    config.write_text(gateway_yaml(pg_server.port, tmp_path, policies=POLICIES, admin_port=admin))
    port = int(config.read_text().split("postgres: 127.0.0.1:")[1].split()[0])
    proc = subprocess.Popen([sys.executable, "-m", "sqlgate.cli", "serve", "--workers", "1",
                             "--config", str(config)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{admin}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        token = subprocess.run([sys.executable, "-m", "sqlgate.cli", "token", "--config",
                                str(config), "--sub", "m", "--groups", "pii-agent"],
                               capture_output=True, text=True, check=True).stdout.strip()
        baseline = _peak_rss_kib(proc.pid)
        # ~1 GiB of rows leave the server: id (kept) and a 10 KB ssn-derived value (masked).
        rows = GIB // 10_000
        received, tail = _stream(
            port, token,
            f"SELECT g AS id, repeat(u.ssn, 910) AS blob FROM users u, "
            f"generate_series(1, {rows // 3}) g",
        )
        peak = _peak_rss_kib(proc.pid)
        assert b"SELECT " in tail  # CommandComplete arrived: the whole result was read
        assert received < 100 * (1 << 20), "masked values must be replaced by short markers"
        assert peak - baseline < 150 * 1024, f"RSS grew {peak - baseline} KiB"
    finally:
        proc.terminate()
        proc.wait(30)
