"""Approvals fixtures: real SQLite stores under tmp_path, a real dev issuer for tokens, and a
factory for started ApprovalService instances that are closed after the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sqlgate.approvals import ApprovalService, Notifier
from sqlgate.config import Config
from sqlgate.core import Decision, Dialect, Identity, Statement, StatementSource, Verdict
from sqlgate.identity import DevIssuer, TokenValidator, dev_issuer_validator
from sqlgate.store import Approval, ApprovalStatus, Store, open_store
from tests.unit.store.fixtures import new_pg_url, pg_server

__all__ = ["pg_server"]

ISSUER = "http://127.0.0.1:8080/dev-issuer"

AGENT = Identity("agent-7", "agent7@example.com", frozenset({"code-assistant"}), ISSUER, None)
OTHER_AGENT = Identity("agent-8", None, frozenset({"code-assistant"}), ISSUER, None)
DBA = Identity("dba-1", "dba1@example.com", frozenset({"dba", "engineering"}), ISSUER, None)
DBA_2 = Identity("dba-2", "dba2@example.com", frozenset({"dba"}), ISSUER, None)
# An approver who also asks for approvals: may decide others' requests, never their own.
DBA_AGENT = Identity("dba-bot", None, frozenset({"dba", "code-assistant"}), ISSUER, None)

DDL = "ALTER TABLE users ADD COLUMN age int"
REVIEW = Decision(Verdict.REVIEW, "ai-agents", 5, "ddl needs approval", category="ddl")


def statement(sql: str = DDL, target: str = "app") -> Statement:
    return Statement(sql, Dialect.POSTGRES, StatementSource.SIMPLE, target)


def make_config(store_url: str, **approvals: Any) -> Config:
    settings: dict[str, Any] = {"approvers": ["dba"], **approvals}
    return Config.model_validate(
        {
            "identity": {"dev_issuer": True},
            "store": {"url": store_url},
            "listen": {"admin": "127.0.0.1:18080"},
            "targets": [
                {"name": "app", "host": "127.0.0.1", "database": "app",
                 "credentials": {"user": "svc"}},
                {"name": "reports", "host": "127.0.0.1", "database": "reports",
                 "credentials": {"user": "svc"}},
            ],
            "approvals": settings,
        }
    )  # fmt: skip


async def wait_for_status(
    service: ApprovalService, status: ApprovalStatus = ApprovalStatus.PENDING, within: float = 5
) -> Approval:
    """The newest request in `status`, once there is one."""
    deadline = time.monotonic() + within
    while True:
        found = await service.list_requests(status, 1)
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {status.value} request within {within}s"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def dev_issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer.load_or_create(tmp_path_factory.mktemp("issuer") / "key.json", ISSUER)


@pytest.fixture(scope="session")
def verifier(dev_issuer: DevIssuer) -> TokenValidator:
    return dev_issuer_validator(dev_issuer)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sqlgate.db'}"


ServiceFactory = Callable[..., Awaitable[ApprovalService]]


@pytest.fixture
async def make_service(sqlite_url: str, verifier: TokenValidator) -> AsyncIterator[ServiceFactory]:
    """`await make_service(mode="defer", ...)`: a started service on its own store connection
    (several calls share the test's SQLite file unless `store_url` is given)."""
    opened: list[tuple[ApprovalService, Store]] = []

    async def factory(
        *,
        store_url: str | None = None,
        notifier: Notifier | None = None,
        poll_interval: float = 1.0,
        expiry_interval: float = 5.0,
        **approvals: Any,
    ) -> ApprovalService:
        url = store_url or sqlite_url
        config = make_config(url, **approvals)
        store = await open_store(url)
        service = ApprovalService(
            config, store, verifier, notifier=notifier, poll_interval=poll_interval,
            expiry_interval=expiry_interval,
        )  # fmt: skip
        await service.start()
        opened.append((service, store))
        return service

    yield factory
    for service, store in reversed(opened):
        await service.close()
        await store.close()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    return new_pg_url(pg_server)
