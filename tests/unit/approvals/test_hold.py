"""Hold mode: the statement waits for the decision, on a real SQLite store."""

from __future__ import annotations

import asyncio
import time

import pytest

from sqlgate.approvals import AlreadyDecided, ApprovalNotFound, NotAnApprover, SelfDecisionRefused
from sqlgate.core import Verdict
from sqlgate.store import ApprovalStatus

from .conftest import (
    AGENT,
    DBA,
    DBA_2,
    DBA_AGENT,
    DDL,
    REVIEW,
    ServiceFactory,
    statement,
    wait_for_status,
)


async def test_approval_releases_the_held_statement_as_allow(make_service: ServiceFactory) -> None:
    service = await make_service()
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, "session-1"))
    request = await wait_for_status(service)
    assert not held.done()
    assert request.sql == DDL and request.requester_sub == "agent-7"
    assert request.session_id == "session-1" and request.policy == "ai-agents"
    assert request.rule == 5 and request.reason == "ddl needs approval"

    decided = await service.decide(DBA, request.id, True, "adding a column is fine")
    decision = await asyncio.wait_for(held, 2)

    assert decision.verdict is Verdict.ALLOW
    assert decision.reason == "approved by dba1@example.com: adding a column is fine"
    assert (decision.policy, decision.rule, decision.category) == ("ai-agents", 5, "ddl")
    assert decided.status is ApprovalStatus.APPROVED
    assert decided.decided_by == {"sub": "dba-1", "email": "dba1@example.com",
                                  "groups": ["dba", "engineering"]}  # fmt: skip
    assert decided.decision_reason == "adding a column is fine"


async def test_resolve_reports_the_request_id_for_the_audit(make_service: ServiceFactory) -> None:
    service = await make_service()
    held = asyncio.create_task(service.resolve(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(service)
    await service.decide(DBA, request.id, True, None)
    outcome = await asyncio.wait_for(held, 2)
    assert outcome.approval_id == request.id
    assert outcome.decision.reason == "approved by dba1@example.com: no reason given"


async def test_denial_blocks_with_the_approvers_reason(make_service: ServiceFactory) -> None:
    service = await make_service()
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(service)
    await service.decide(DBA, request.id, False, "not during the release freeze")
    decision = await asyncio.wait_for(held, 2)
    assert decision.verdict is Verdict.BLOCK
    assert decision.sqlstate == "42501"
    assert decision.reason == (
        f"ddl needs approval; request {request.id} was denied by dba1@example.com: "
        "not during the release freeze"
    )


async def test_no_decision_in_time_blocks_and_expires(make_service: ServiceFactory) -> None:
    service = await make_service(timeout_seconds=0.4)
    started = time.monotonic()
    decision = await service.review(AGENT, statement(), REVIEW, None)
    waited = time.monotonic() - started
    assert 0.35 < waited < 2
    assert decision.verdict is Verdict.BLOCK
    request = (await service.list_requests(ApprovalStatus.EXPIRED))[0]
    assert decision.reason == (
        f"ddl needs approval; request {request.id} timed out: no decision within 0.4 s"
    )
    assert request.decided_at is not None
    with pytest.raises(AlreadyDecided) as refused:
        await service.decide(DBA, request.id, True, "too late")
    assert refused.value.status == "expired" and refused.value.status_code == 409


async def test_disconnected_client_cancels_its_request(make_service: ServiceFactory) -> None:
    service = await make_service()
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(service)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    cancelled = await service.get(request.id)
    assert cancelled is not None and cancelled.status is ApprovalStatus.CANCELLED
    assert cancelled.decision_reason == "client disconnected"
    with pytest.raises(AlreadyDecided, match="already cancelled"):
        await service.decide(DBA, request.id, True, None)


async def test_cancelled_before_the_request_is_stored_still_cancels_it(
    make_service: ServiceFactory,
) -> None:
    service = await make_service()
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, None))
    await asyncio.sleep(0)  # the INSERT has started, not finished
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    request = await wait_for_status(service, ApprovalStatus.CANCELLED)
    assert not await service.list_requests(ApprovalStatus.PENDING)
    assert request.decision_reason == "client disconnected"


async def test_nobody_decides_their_own_request_even_an_approver(
    make_service: ServiceFactory,
) -> None:
    service = await make_service()
    held = asyncio.create_task(service.review(DBA_AGENT, statement(), REVIEW, None))
    request = await wait_for_status(service)
    for approve in (True, False):
        with pytest.raises(SelfDecisionRefused) as refused:
            await service.decide(DBA_AGENT, request.id, approve, "I trust myself")
        assert refused.value.status_code == 403
    assert (await service.get(request.id)).status is ApprovalStatus.PENDING  # type: ignore[union-attr]
    await service.decide(DBA, request.id, True, None)
    assert (await asyncio.wait_for(held, 2)).verdict is Verdict.ALLOW


async def test_non_approvers_cannot_decide(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer")
    await service.review(DBA, statement(), REVIEW, None)
    request = await wait_for_status(service)
    with pytest.raises(NotAnApprover) as refused:
        await service.decide(AGENT, request.id, True, None)
    assert refused.value.status_code == 403
    assert (await service.get(request.id)).status is ApprovalStatus.PENDING  # type: ignore[union-attr]


async def test_second_decision_is_a_conflict(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer")
    await service.review(AGENT, statement(), REVIEW, None)
    request = await wait_for_status(service)
    await service.decide(DBA, request.id, True, "ok")
    for approver, approve in ((DBA_2, False), (DBA_2, True), (DBA, True)):
        with pytest.raises(AlreadyDecided, match=r"already approved by dba1@example\.com") as c:
            await service.decide(approver, request.id, approve, "me too")
        assert c.value.status_code == 409
    final = await service.get(request.id)
    assert final is not None and final.decision_reason == "ok"


async def test_racing_approvers_one_wins(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer")
    await service.review(AGENT, statement(), REVIEW, None)
    request = await wait_for_status(service)
    results = await asyncio.gather(
        service.decide(DBA, request.id, True, "yes"),
        service.decide(DBA_2, request.id, False, "no"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, AlreadyDecided) for r in results) == 1


async def test_unknown_request_is_not_found(make_service: ServiceFactory) -> None:
    service = await make_service()
    with pytest.raises(ApprovalNotFound) as missing:
        await service.decide(DBA, "0" * 32, True, None)
    assert missing.value.status_code == 404


async def test_decision_in_another_process_is_seen_by_polling(
    make_service: ServiceFactory,
) -> None:
    """Two services on one SQLite file stand for two worker processes of one host."""
    holder = await make_service(poll_interval=0.2)
    decider = await make_service()
    held = asyncio.create_task(holder.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(decider)
    started = time.monotonic()
    await decider.decide(DBA, request.id, True, "fine")
    assert (await asyncio.wait_for(held, 2)).verdict is Verdict.ALLOW
    assert time.monotonic() - started < 1


async def test_background_sweep_expires_overdue_requests(make_service: ServiceFactory) -> None:
    service = await make_service(mode="defer", timeout_seconds=0.2, expiry_interval=0.1)
    await service.review(AGENT, statement(), REVIEW, None)
    request = await wait_for_status(service, ApprovalStatus.EXPIRED, within=3)
    assert request.decided_by is None


async def test_closing_releases_held_statements_blocked(make_service: ServiceFactory) -> None:
    service = await make_service()
    held = asyncio.create_task(service.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(service)
    await service.close()
    decision = await asyncio.wait_for(held, 2)
    assert decision.verdict is Verdict.BLOCK and request.id in decision.reason
    final = await service.get(request.id)
    assert final is not None and final.status is ApprovalStatus.CANCELLED
    again = await service.review(AGENT, statement(), REVIEW, None)
    assert again.verdict is Verdict.BLOCK and "shutting down" in again.reason


async def test_unavailable_store_blocks_instead_of_failing(make_service: ServiceFactory) -> None:
    service = await make_service()
    await service.repo._store.close()  # the store goes away under the gateway
    decision = await service.review(AGENT, statement(), REVIEW, None)
    assert decision.verdict is Verdict.BLOCK
    assert "approvals store is unavailable" in decision.reason
