from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sqlgate.store import Approval, ApprovalRepository, ApprovalStatus, Store


async def _request(repo: ApprovalRepository, *, expires_in: float = 900, **kw: Any) -> Approval:
    now = time.time()
    return await repo.create(
        requester_sub=kw.get("sub", "agent-7"),
        requester_email="agent7@example.com",
        requester_groups=["code-assistant", "ai"],
        target="app",
        sql="ALTER TABLE users ADD COLUMN age int",
        normalized_sql="ALTER TABLE users ADD COLUMN age int",
        policy="ai-agents",
        rule=5,
        reason="DDL needs a human",
        created_at=now,
        expires_at=now + expires_in,
        session_id="s1",
    )


async def test_created_request_reads_back_typed(store: Store) -> None:
    repo = ApprovalRepository(store)
    made = await _request(repo)
    got = await repo.get(made.id)
    assert got == made
    assert got.status is ApprovalStatus.PENDING
    assert got.requester_groups == ("ai", "code-assistant")
    assert got.rule == 5 and got.decided_by is None
    assert await repo.get("no-such-id") is None


async def test_list_by_status_filters_and_orders_newest_first(store: Store) -> None:
    repo = ApprovalRepository(store)
    a = await _request(repo)
    b = await _request(repo)
    assert await repo.decide(a.id, ApprovalStatus.DENIED, decided_by={"sub": "bob"}, reason="no",
                             at=time.time())  # fmt: skip
    assert [x.id for x in await repo.list_by_status(ApprovalStatus.PENDING)] == [b.id]
    assert [x.id for x in await repo.list_by_status(ApprovalStatus.DENIED)] == [a.id]
    assert [x.id for x in await repo.list_by_status()] == [b.id, a.id]


async def test_second_decision_changes_nothing(store: Store) -> None:
    repo = ApprovalRepository(store)
    req = await _request(repo)
    now = time.time()
    assert await repo.decide(req.id, ApprovalStatus.APPROVED, decided_by={"sub": "bob", "email": "bob@x"},
                             reason="looks fine", at=now)  # fmt: skip
    assert not await repo.decide(req.id, ApprovalStatus.DENIED, decided_by={"sub": "carol"},
                                 reason="too late", at=now + 1)  # fmt: skip
    final = await repo.get(req.id)
    assert final is not None
    assert final.status is ApprovalStatus.APPROVED
    assert final.decided_by == {"sub": "bob", "email": "bob@x"}
    assert final.decision_reason == "looks fine" and final.decided_at == now


async def test_racing_approvers_exactly_one_wins(store: Store) -> None:
    repo = ApprovalRepository(store)
    req = await _request(repo)
    now = time.time()
    results = await asyncio.gather(*(
        repo.decide(req.id, status, decided_by={"sub": f"approver-{i}"}, reason=None, at=now)
        for i, status in enumerate([ApprovalStatus.APPROVED, ApprovalStatus.DENIED] * 4)
    ))  # fmt: skip
    assert results.count(True) == 1


async def test_expired_request_cannot_be_approved_and_is_marked(store: Store) -> None:
    repo = ApprovalRepository(store)
    old = await _request(repo, expires_in=-1)
    live = await _request(repo)
    assert not await repo.decide(old.id, ApprovalStatus.APPROVED, decided_by={"sub": "bob"},
                                 reason=None, at=time.time())  # fmt: skip
    assert await repo.expire_due(time.time()) == [old.id]
    assert await repo.expire_due(time.time()) == []
    expired = await repo.get(old.id)
    assert expired is not None and expired.status is ApprovalStatus.EXPIRED
    still = await repo.get(live.id)
    assert still is not None and still.status is ApprovalStatus.PENDING


async def test_cancel_only_touches_pending_requests(store: Store) -> None:
    repo = ApprovalRepository(store)
    req = await _request(repo)
    assert await repo.cancel(req.id, at=time.time(), reason="client disconnected")
    assert not await repo.cancel(req.id, at=time.time())
    assert not await repo.decide(req.id, ApprovalStatus.APPROVED, decided_by={"sub": "bob"},
                                 reason=None, at=time.time())  # fmt: skip
    got = await repo.get(req.id)
    assert got is not None and got.status is ApprovalStatus.CANCELLED


async def test_decide_rejects_non_final_status(store: Store) -> None:
    repo = ApprovalRepository(store)
    req = await _request(repo)
    with pytest.raises(ValueError):
        await repo.decide(req.id, ApprovalStatus.EXPIRED, decided_by={}, reason=None, at=0)


async def test_one_shot_grant_is_spent_once(store: Store) -> None:
    repo = ApprovalRepository(store)
    req = await _request(repo)
    now = time.time()
    assert not await repo.mark_grant_used(req.id, at=now)  # not approved yet
    await repo.decide(
        req.id, ApprovalStatus.APPROVED, decided_by={"sub": "bob"}, reason=None, at=now
    )
    assert await repo.mark_grant_used(req.id, at=now)
    assert not await repo.mark_grant_used(req.id, at=now)


async def test_grant_is_consumed_by_exactly_one_racer(store: Store) -> None:
    repo = ApprovalRepository(store)
    req = await _request(repo)
    now = time.time()
    grant = await repo.create_grant(req.id, subject="agent-7", target="app", normalized_sql="ALTER ...",
                                    created_at=now, expires_at=now + 60)  # fmt: skip
    await repo.create_grant(req.id, subject="agent-7", target="app", normalized_sql="ALTER ...",
                            created_at=now, expires_at=now - 1)  # already expired  # fmt: skip
    got = await asyncio.gather(*(
        repo.consume_grant(subject="agent-7", target="app", normalized_sql="ALTER ...", at=now)
        for _ in range(6)
    ))  # fmt: skip
    winners = [g for g in got if g is not None]
    assert len(winners) == 1
    assert winners[0].id == grant.id and winners[0].used_at == now
    assert await repo.consume_grant(subject="agent-7", target="app", normalized_sql="ALTER ...",
                                    at=now) is None  # fmt: skip
    assert await repo.consume_grant(subject="other", target="app", normalized_sql="ALTER ...",
                                    at=now) is None  # fmt: skip
