"""Notifications: a real local HTTP server receives signed webhooks and Slack messages."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sqlgate.approvals import SIGNATURE_HEADER, Notifier
from sqlgate.core import Verdict
from sqlgate.errors import ConfigError

from .conftest import AGENT, DBA, DDL, REVIEW, ServiceFactory, make_config, statement


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Hook:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sqlgate"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver runs (the same code is in docs/approvals.md)."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


async def test_webhook_gets_signed_request_and_decision_events(
    make_service: ServiceFactory, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    service = await make_service(mode="defer",
                                 notify=[{"webhook": hook.url, "secret_env": "HOOK_SECRET"}])  # fmt: skip
    decision = await service.review(AGENT, statement(), REVIEW, None)
    request = (await service.list_requests())[0]
    await service.decide(DBA, request.id, True, "fine")
    await service.notifier.drain()

    assert decision.verdict is Verdict.BLOCK
    assert [r.json()["event"] for r in hook.received] == ["approval.requested", "approval.approved"]
    for received in hook.received:
        assert received.path == "/hooks/sqlgate"
        assert received.headers["Content-Type"] == "application/json"
        assert verify(b"s3cret", received.body, received.headers[SIGNATURE_HEADER])
        assert not verify(b"other", received.body, received.headers[SIGNATURE_HEADER])
        document = received.json()
        assert document["approval"]["id"] == request.id
        assert document["approval"]["sql"] == DDL
        assert document["url"] == f"http://127.0.0.1:18080/api/approvals/{request.id}"
        assert received.headers["X-Sqlgate-Event"] == document["event"]
    approved = hook.received[1].json()["approval"]
    assert approved["status"] == "approved" and approved["reason"] == "fine"
    assert approved["decided_by"]["sub"] == "dba-1"
    assert service.notifier.delivered == 2 and service.notifier.failed == 0


async def test_unsigned_webhook_has_no_signature_header(
    make_service: ServiceFactory, hook: Hook
) -> None:
    service = await make_service(mode="defer", notify=[{"webhook": hook.url}])
    await service.review(AGENT, statement(), REVIEW, None)
    await service.notifier.drain()
    assert len(hook.received) == 1 and SIGNATURE_HEADER not in hook.received[0].headers


async def test_failing_webhook_is_retried_and_never_breaks_decisions(
    make_service: ServiceFactory, hook: Hook
) -> None:
    hook.status = 503
    # Bound but never listening: connections are refused, and no other test can take the port.
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed_port.getsockname()[1]}/hook"
    config = make_config("sqlite:///unused.db",
                         notify=[{"webhook": hook.url}, {"webhook": dead}])  # fmt: skip
    notifier = Notifier.from_config(config, attempts=3, backoff=0.01, timeout=1)
    service = await make_service(mode="defer", notifier=notifier)

    await service.review(AGENT, statement(), REVIEW, None)
    request = (await service.list_requests())[0]
    approved = await service.decide(DBA, request.id, True, None)
    assert approved.status.value == "approved"
    assert (await service.review(AGENT, statement(), REVIEW, None)).verdict is Verdict.ALLOW
    await notifier.drain()

    closed_port.close()
    assert len(hook.received) == 2 * 3  # two events, three attempts each
    assert notifier.failed == 4 and notifier.delivered == 0


async def test_client_errors_are_not_retried(make_service: ServiceFactory, hook: Hook) -> None:
    hook.status = 400
    config = make_config("sqlite:///unused.db", notify=[{"webhook": hook.url}])
    notifier = Notifier.from_config(config, attempts=3, backoff=0.01)
    service = await make_service(mode="defer", notifier=notifier)
    await service.review(AGENT, statement(), REVIEW, None)
    await notifier.drain()
    assert len(hook.received) == 1 and notifier.failed == 1


async def test_slack_gets_the_statement_and_a_link(
    make_service: ServiceFactory, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_URL", hook.url)
    service = await make_service(mode="defer", notify=[{"slack_webhook_env": "SLACK_URL"}])
    sql = "DROP TABLE audit_old -- <b>& friends</b>"
    await service.review(AGENT, statement(sql), REVIEW, None)
    request = (await service.list_requests())[0]
    await service.decide(DBA, request.id, False, "keep it")
    await service.notifier.drain()

    requested, denied = (r.json() for r in hook.received)
    text = json.dumps(requested["blocks"])
    assert "Approval requested" in text and "agent7@example.com" in text
    assert "DROP TABLE audit_old -- &lt;b&gt;&amp; friends&lt;/b&gt;" in text
    assert f"<http://127.0.0.1:18080/api/approvals/{request.id}|request {request.id}>" in text
    assert f"sqlgate approvals approve {request.id}" in text
    assert requested["text"].startswith("sqlgate requested")
    assert "Denied* by *dba1@example.com*: keep it" in json.dumps(denied["blocks"])


def test_unset_secret_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    config = make_config("sqlite:///x.db",
                         notify=[{"webhook": "http://x", "secret_env": "NO_SUCH_SECRET"}])  # fmt: skip
    with pytest.raises(ConfigError, match=r"approvals.notify\[0\].secret_env.*NO_SUCH_SECRET"):
        Notifier.from_config(config)
