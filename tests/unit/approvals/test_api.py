"""The HTTP API over real HTTP semantics (httpx ASGI transport), with dev-issuer tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from sqlgate.api.app import build_app
from sqlgate.approvals import ApprovalService
from sqlgate.core import Verdict
from sqlgate.identity import DevIssuer

from .conftest import AGENT, DDL, REVIEW, ServiceFactory, statement, wait_for_status

FIELDS = {"id", "status", "sql", "target", "policy", "rule", "rule_reason", "requested_by",
          "created_at", "expires_at", "decided_by", "decided_at", "reason"}  # fmt: skip


@pytest.fixture
async def service(make_service: ServiceFactory) -> ApprovalService:
    return await make_service()


@pytest.fixture
async def client(service: ApprovalService) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(lambda: {}, service.routes())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sqlgate") as http:
        yield http


def bearer(issuer: DevIssuer, sub: str, *groups: str, email: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(sub, list(groups), email=email)}"}


async def test_requests_without_a_valid_token_get_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
        response = await client.get("/api/approvals", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "error" in response.json()
    response = await client.post("/api/approvals/abc/approve", json={"reason": "x"})
    assert response.status_code == 401


async def test_non_approvers_get_403_even_for_reading(
    client: httpx.AsyncClient, dev_issuer: DevIssuer
) -> None:
    agent = bearer(dev_issuer, "agent-7", "code-assistant")
    for response in (
        await client.get("/api/approvals", headers=agent),
        await client.get("/api/approvals/abc", headers=agent),
        await client.post("/api/approvals/abc/approve", headers=agent),
    ):
        assert response.status_code == 403
        assert response.json() == {"error": "only approvers may read or decide approval requests"}


async def test_unknown_ids_get_404(client: httpx.AsyncClient, dev_issuer: DevIssuer) -> None:
    dba = bearer(dev_issuer, "dba-1", "dba")
    assert (await client.get("/api/approvals/nope", headers=dba)).status_code == 404
    response = await client.post("/api/approvals/nope/deny", headers=dba, json={"reason": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": "no approval request nope"}


async def test_list_show_approve_release_the_held_statement(
    client: httpx.AsyncClient, service: ApprovalService, dev_issuer: DevIssuer
) -> None:
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, "s-9"))
    request = await wait_for_status(service)
    dba = bearer(dev_issuer, "dba-1", "dba", email="dba1@example.com")

    listed = await client.get("/api/approvals", params={"status": "pending"}, headers=dba)
    assert listed.status_code == 200
    (item,) = listed.json()["approvals"]
    assert item.keys() >= FIELDS
    assert item["id"] == request.id and item["status"] == "pending" and item["sql"] == DDL
    assert (item["target"], item["policy"], item["rule"]) == ("app", "ai-agents", 5)
    assert item["rule_reason"] == "ddl needs approval"
    assert item["requested_by"] == {"sub": "agent-7", "email": "agent7@example.com",
                                    "groups": ["code-assistant"]}  # fmt: skip
    assert item["decided_by"] is None and item["decided_at"] is None and item["reason"] is None
    assert item["created_at"].endswith("+00:00") and item["expires_at"] > item["created_at"]

    shown = await client.get(f"/api/approvals/{request.id}", headers=dba)
    assert shown.status_code == 200 and shown.json() == item

    approved = await client.post(
        f"/api/approvals/{request.id}/approve", headers=dba, json={"reason": "reviewed"}
    )
    assert approved.status_code == 200
    body = approved.json()
    assert body["status"] == "approved" and body["reason"] == "reviewed"
    assert body["decided_by"] == {"sub": "dba-1", "email": "dba1@example.com", "groups": ["dba"]}
    assert body["decided_at"] is not None
    assert (await asyncio.wait_for(held, 2)).verdict is Verdict.ALLOW

    again = await client.post(f"/api/approvals/{request.id}/deny", headers=dba)
    assert again.status_code == 409
    assert "already approved by dba1@example.com" in again.json()["error"]
    assert (await client.get("/api/approvals?status=pending", headers=dba)).json() == {
        "approvals": []
    }
    everything = await client.get("/api/approvals", headers=dba)
    assert [a["id"] for a in everything.json()["approvals"]] == [request.id]


async def test_self_decision_over_http_is_403(
    client: httpx.AsyncClient, service: ApprovalService, dev_issuer: DevIssuer
) -> None:
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(service)
    myself = bearer(dev_issuer, "agent-7", "dba", "code-assistant")
    response = await client.post(f"/api/approvals/{request.id}/approve", headers=myself)
    assert response.status_code == 403
    assert "your own" in response.json()["error"]
    denied = await client.post(
        f"/api/approvals/{request.id}/deny",
        headers=bearer(dev_issuer, "dba-2", "dba"),
        json={"reason": "use a migration"},
    )
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    decision = await asyncio.wait_for(held, 2)
    assert decision.verdict is Verdict.BLOCK and "use a migration" in decision.reason


async def test_bad_input_gets_400(
    client: httpx.AsyncClient, service: ApprovalService, dev_issuer: DevIssuer
) -> None:
    dba = bearer(dev_issuer, "dba-1", "dba")
    assert (await client.get("/api/approvals?status=maybe", headers=dba)).status_code == 400
    assert (await client.get("/api/approvals?limit=0", headers=dba)).status_code == 400
    assert (await client.get("/api/approvals?limit=x", headers=dba)).status_code == 400
    for body in (b"{not json", b"[1]", b'{"reason": 5}', b'{"reason": "' + b"x" * 3000 + b'"}'):
        response = await client.post("/api/approvals/any/deny", headers=dba, content=body)
        assert response.status_code == 400, body


def test_routes_need_a_verifier(sqlite_url: str) -> None:
    from sqlgate.errors import SqlgateError
    from sqlgate.store.sqlite import SqliteStore

    from .conftest import make_config

    service = ApprovalService(make_config(sqlite_url), SqliteStore(":memory:"))
    with pytest.raises(SqlgateError, match="token verifier"):
        service.routes()
