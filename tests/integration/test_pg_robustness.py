"""Malformed and hostile input ends that connection, logs it, and leaves other sessions alone."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time

import psycopg
import pytest

from sqlgate.protocols.postgres.messages import (
    PasswordMessage,
    Query,
    SSLRequest,
    StartupMessage,
)
from tests.support.gateway import RunningGateway


def _recv_all(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _logged_in_socket(gateway: RunningGateway, token: str) -> ssl.SSLSocket:
    raw = socket.create_connection((gateway.host, gateway.port), timeout=10)
    raw.sendall(SSLRequest().encode())
    assert raw.recv(1) == b"S"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = ctx.wrap_socket(raw)
    sock.sendall(StartupMessage({"user": "agent", "database": "app"}).encode())
    assert sock.recv(9)[:1] == b"R"  # AuthenticationCleartextPassword
    sock.sendall(PasswordMessage(token.encode() + b"\x00").encode())
    data = b""
    while not data.endswith(b"Z\x00\x00\x00\x05I"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return sock


@pytest.fixture
def bystander(gateway: RunningGateway, human_token: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(gateway.dsn(human_token), autocommit=True)
    conn.execute("SELECT 1")
    return conn


def _bystander_alive(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert conn.execute("SELECT 'alive'").fetchone() == ("alive",)
    conn.close()


def test_garbage_before_startup_closes_connection(
    gateway: RunningGateway, bystander: psycopg.Connection[tuple[object, ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = _recv_all(sock)
    assert reply == b"" or reply.startswith(b"E")
    assert any("protocol error" in r.getMessage() for r in caplog.records)
    _bystander_alive(bystander)


def test_huge_length_prefix_after_login_closes_connection(
    gateway: RunningGateway, human_token: str, bystander: psycopg.Connection[tuple[object, ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sock = _logged_in_socket(gateway, human_token)
    sock.sendall(b"Q" + struct.pack("!I", 2**31) + b"SELECT 1")
    reply = _recv_all(sock)
    sock.close()
    assert b"exceeds the limit" in reply
    assert any("exceeds the limit" in r.getMessage() for r in caplog.records)
    _bystander_alive(bystander)


def test_truncated_message_then_disconnect(
    gateway: RunningGateway, human_token: str, bystander: psycopg.Connection[tuple[object, ...]],
) -> None:
    sock = _logged_in_socket(gateway, human_token)
    sock.sendall(Query("SELECT 1").encode()[:7])
    sock.close()
    _bystander_alive(bystander)


def test_invalid_message_contents_close_connection(
    gateway: RunningGateway, human_token: str, bystander: psycopg.Connection[tuple[object, ...]],
) -> None:
    sock = _logged_in_socket(gateway, human_token)
    sock.sendall(b"Q" + struct.pack("!I", 8) + b"abcd")  # no NUL terminator
    reply = _recv_all(sock)
    sock.close()
    assert b"08P01" in reply
    _bystander_alive(bystander)


def test_disconnect_mid_query_leaves_gateway_healthy(
    gateway: RunningGateway, human_token: str, bystander: psycopg.Connection[tuple[object, ...]],
) -> None:
    sock = _logged_in_socket(gateway, human_token)
    sock.sendall(Query("SELECT pg_sleep(1), g FROM generate_series(1, 100000) g").encode())
    time.sleep(0.2)
    sock.close()
    _bystander_alive(bystander)
    with psycopg.connect(gateway.dsn(human_token)) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_oversized_startup_packet_is_refused(
    gateway: RunningGateway, bystander: psycopg.Connection[tuple[object, ...]],
) -> None:
    with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
        sock.sendall(struct.pack("!ii", 1_000_000, 196608))
        reply = _recv_all(sock)
    assert b"invalid startup packet length" in reply
    _bystander_alive(bystander)


def test_pipelined_bytes_after_sslrequest_are_refused(gateway: RunningGateway) -> None:
    with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
        sock.sendall(SSLRequest().encode() + StartupMessage({"user": "x"}).encode())
        reply = _recv_all(sock)
    assert reply[:1] == b"S"
    assert b"TLS" not in reply[1:] or reply[1:2] != b"R"
    assert b"R\x00\x00\x00\x08\x00\x00\x00\x03" not in reply  # never asked for a password
