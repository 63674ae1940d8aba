"""`sqlgate approvals ...` against a real admin server (uvicorn on a loopback port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sqlgate.api.app import build_app, start_admin
from sqlgate.approvals import ApprovalService
from sqlgate.approvals.cli import main
from sqlgate.core import Verdict
from sqlgate.identity import DevIssuer

from .conftest import AGENT, REVIEW, ServiceFactory, statement, wait_for_status


@pytest.fixture
async def served(make_service: ServiceFactory) -> AsyncIterator[tuple[ApprovalService, str]]:
    service = await make_service()
    server, task = await start_admin(build_app(lambda: {}, service.routes()), "127.0.0.1", 0)
    try:
        yield service, f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        await task


async def run(*argv: str) -> int:
    """The CLI is synchronous: run it off the event loop that serves the API."""
    return await asyncio.to_thread(main, list(argv))


async def test_list_show_and_approve(
    served: tuple[ApprovalService, str], dev_issuer: DevIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    service, url = served
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(service)
    token = dev_issuer.mint("dba-1", ["dba"], email="dba1@example.com")

    assert await run("approvals", "list", "--url", url, "--token", token) == 0
    out = capsys.readouterr().out
    assert request.id in out and "pending" in out and "agent7@example.com" in out
    assert "ALTER TABLE users ADD COLUMN age int" in out

    assert await run("approvals", "show", request.id, "--url", url, "--token", token) == 0
    out = capsys.readouterr().out
    assert "policy:       ai-agents rule 5: ddl needs approval" in out

    assert await run("approvals", "approve", request.id, "-m", "ok", "--url", url,
                     "--token", token) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == f"request {request.id} approved"
    assert (await asyncio.wait_for(held, 2)).verdict is Verdict.ALLOW

    assert await run("approvals", "deny", request.id, "-m", "no", "--url", url,
                     "--token", token) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "too late (409)" in err and "already approved by dba1@example.com" in err


async def test_errors_are_explained_in_words(
    served: tuple[ApprovalService, str],
    dev_issuer: DevIssuer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = served
    monkeypatch.delenv("SQLGATE_TOKEN", raising=False)
    assert await run("approvals", "list", "--url", url) == 2
    assert "no token: pass --token or set SQLGATE_TOKEN" in capsys.readouterr().err

    assert await run("approvals", "list", "--url", url, "--token", "garbage") == 2
    err = capsys.readouterr().err
    assert "did not accept your token (401" in err and "garbage" not in err

    agent = dev_issuer.mint("agent-7", ["code-assistant"])
    monkeypatch.setenv("SQLGATE_TOKEN", agent)
    assert await run("approvals", "list", "--url", url) == 2
    err = capsys.readouterr().err
    assert "not allowed (403): only approvers" in err and agent not in err

    monkeypatch.setenv("SQLGATE_TOKEN", dev_issuer.mint("dba-1", ["dba"]))
    assert await run("approvals", "show", "f" * 32, "--url", url) == 2
    assert "not found (404): no approval request" in capsys.readouterr().err

    assert await run("approvals", "list", "--url", "http://127.0.0.1:9") == 2
    assert "cannot reach sqlgate at http://127.0.0.1:9" in capsys.readouterr().err


async def test_url_comes_from_the_config(
    served: tuple[ApprovalService, str],
    dev_issuer: DevIssuer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = served
    port = url.rsplit(":", 1)[1]
    config = tmp_path / "sqlgate.yaml"
    config.write_text(
        f"listen: {{admin: '0.0.0.0:{port}'}}\nidentity: {{dev_issuer: true}}\n"
        "targets: [{name: app, host: 127.0.0.1, database: app, credentials: {user: svc}}]\n"
    )
    monkeypatch.delenv("SQLGATE_URL", raising=False)
    monkeypatch.setenv("SQLGATE_TOKEN", dev_issuer.mint("dba-1", ["dba"]))
    assert await run("approvals", "list", "--config", str(config), "--status", "all") == 0
    assert capsys.readouterr().out.strip() == "no approval requests"
