"""Defer mode: refuse now with a request id; after approval the same statement runs once."""

from __future__ import annotations

import asyncio
import re

from sqlgate.approvals import ApprovalService
from sqlgate.config import Config
from sqlgate.core import Verdict
from sqlgate.identity import TokenValidator
from sqlgate.store import ApprovalStatus, open_store

from .conftest import AGENT, DBA, DDL, OTHER_AGENT, REVIEW, ServiceFactory, make_config, statement


def request_id(reason: str) -> str:
    found = re.search(r"request ([0-9a-f]{32})", reason)
    assert found, reason
    return found.group(1)


async def test_first_run_is_refused_with_the_request_id_and_how_to_ask(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(mode="defer", grant_ttl_seconds=3600)
    decision = await service.review(AGENT, statement(), REVIEW, "s1")
    assert decision.verdict is Verdict.BLOCK and decision.sqlstate == "42501"
    approval_id = request_id(decision.reason)
    assert f"sqlgate approvals approve {approval_id}" in decision.reason
    assert "re-run the same statement within 1 h" in decision.reason
    assert decision.reason.startswith(f"ddl needs approval: request {approval_id} is pending; ")
    stored = await service.get(approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING


async def test_after_approval_the_same_statement_runs_exactly_once(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(mode="defer")
    approval_id = request_id((await service.review(AGENT, statement(), REVIEW, None)).reason)
    await service.decide(DBA, approval_id, True, "go ahead")

    first = await service.review(AGENT, statement(), REVIEW, None)
    assert first.verdict is Verdict.ALLOW
    assert first.reason == f"approved earlier by dba1@example.com: request {approval_id}"

    second = await service.review(AGENT, statement(), REVIEW, None)
    assert second.verdict is Verdict.BLOCK
    assert request_id(second.reason) != approval_id  # a new request for a new run


async def test_layout_and_comments_do_not_matter_literals_do(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer")
    sql = "UPDATE accounts SET limit_cents = 5000 WHERE id = 42"
    approval_id = request_id((await service.review(AGENT, statement(sql), REVIEW, None)).reason)
    await service.decide(DBA, approval_id, True, None)

    other_literal = "UPDATE accounts SET limit_cents = 9999999 WHERE id = 42"
    assert (await service.review(AGENT, statement(other_literal), REVIEW, None)).verdict is (
        Verdict.BLOCK
    )
    reformatted = (
        "-- as approved\nUPDATE accounts\n   SET limit_cents = 5000 /* raise */\n WHERE id = 42;"
    )
    assert (await service.review(AGENT, statement(reformatted), REVIEW, None)).verdict is (
        Verdict.ALLOW
    )


async def test_grant_is_for_the_requester_and_target_only(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer")
    approval_id = request_id((await service.review(AGENT, statement(), REVIEW, None)).reason)
    await service.decide(DBA, approval_id, True, None)
    assert (await service.review(OTHER_AGENT, statement(), REVIEW, None)).verdict is Verdict.BLOCK
    assert (await service.review(AGENT, statement(target="reports"), REVIEW, None)).verdict is (
        Verdict.BLOCK
    )
    assert (await service.review(AGENT, statement(), REVIEW, None)).verdict is Verdict.ALLOW


async def test_rerun_while_pending_reuses_the_open_request(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer")
    first = request_id((await service.review(AGENT, statement(), REVIEW, None)).reason)
    again = await service.review(AGENT, statement(DDL + ";"), REVIEW, None)
    assert request_id(again.reason) == first
    assert f"request {first} is still pending" in again.reason
    assert len(await service.list_requests(ApprovalStatus.PENDING)) == 1


async def test_denied_request_grants_nothing(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer")
    approval_id = request_id((await service.review(AGENT, statement(), REVIEW, None)).reason)
    await service.decide(DBA, approval_id, False, "no")
    again = await service.review(AGENT, statement(), REVIEW, None)
    assert again.verdict is Verdict.BLOCK and request_id(again.reason) != approval_id


async def test_grant_lapses_after_its_ttl(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer", grant_ttl_seconds=0.2)
    approval_id = request_id((await service.review(AGENT, statement(), REVIEW, None)).reason)
    await service.decide(DBA, approval_id, True, None)
    await asyncio.sleep(0.3)
    assert (await service.review(AGENT, statement(), REVIEW, None)).verdict is Verdict.BLOCK


async def test_pending_requests_survive_a_restart(
    sqlite_url: str, verifier: TokenValidator
) -> None:
    config: Config = make_config(sqlite_url, mode="defer")

    async def started() -> ApprovalService:
        service = ApprovalService(config, await open_store(sqlite_url), verifier)
        await service.start()
        return service

    before = await started()
    approval_id = request_id((await before.review(AGENT, statement(), REVIEW, None)).reason)
    await before.close()
    await before.repo._store.close()

    after = await started()
    try:
        pending = await after.list_requests(ApprovalStatus.PENDING)
        assert [p.id for p in pending] == [approval_id]
        await after.decide(DBA, approval_id, True, "after the restart")
        assert (await after.review(AGENT, statement(), REVIEW, None)).verdict is Verdict.ALLOW
    finally:
        await after.close()
        await after.repo._store.close()
