"""Several replicas on one real PostgreSQL store: LISTEN/NOTIFY releases held statements."""

from __future__ import annotations

import asyncio
import time

import psycopg

from sqlgate.core import Verdict
from sqlgate.store import ApprovalStatus

from .conftest import AGENT, DBA, REVIEW, ServiceFactory, statement, wait_for_status

# Polling is set far beyond the assertion, so only a NOTIFY can release the statement in time.
NO_POLLING = 30.0


async def test_decision_on_one_replica_releases_a_statement_held_on_another(
    make_service: ServiceFactory, pg_url: str
) -> None:
    replica_a = await make_service(store_url=pg_url, poll_interval=NO_POLLING)
    replica_b = await make_service(store_url=pg_url, poll_interval=NO_POLLING)
    assert replica_a.listening and replica_b.listening

    held = asyncio.create_task(replica_a.review(AGENT, statement(), REVIEW, "s-a"))
    request = await wait_for_status(replica_b)
    await asyncio.sleep(0.1)  # replica A is now parked on its wake-up event

    started = time.perf_counter()
    await replica_b.decide(DBA, request.id, True, "approved on B")
    decision = await asyncio.wait_for(held, 5)
    latency = time.perf_counter() - started

    assert decision.verdict is Verdict.ALLOW
    assert decision.reason == "approved by dba1@example.com: approved on B"
    print(f"\ncross-replica release latency: {latency * 1000:.1f} ms")
    assert latency < 2.0


async def test_denial_on_another_replica_blocks(make_service: ServiceFactory, pg_url: str) -> None:
    replica_a = await make_service(store_url=pg_url, poll_interval=NO_POLLING)
    replica_b = await make_service(store_url=pg_url, poll_interval=NO_POLLING)
    held = asyncio.create_task(replica_a.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(replica_b)
    await replica_b.decide(DBA, request.id, False, "not today")
    decision = await asyncio.wait_for(held, 2)
    assert decision.verdict is Verdict.BLOCK and "not today" in decision.reason


async def test_listener_reconnects_after_losing_its_connection(
    make_service: ServiceFactory, pg_url: str
) -> None:
    replica_a = await make_service(store_url=pg_url, poll_interval=NO_POLLING)
    replica_b = await make_service(store_url=pg_url, poll_interval=NO_POLLING)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        ).fetchall()
    assert len(killed) == 2
    deadline = time.monotonic() + 5
    while not (replica_a.listening and replica_b.listening):
        assert time.monotonic() < deadline, "the LISTEN connections did not come back"
        await asyncio.sleep(0.05)

    held = asyncio.create_task(replica_a.review(AGENT, statement(), REVIEW, None))
    request = await wait_for_status(replica_b)
    await replica_b.decide(DBA, request.id, True, None)
    assert (await asyncio.wait_for(held, 2)).verdict is Verdict.ALLOW


async def test_each_overdue_request_is_expired_by_one_replica(
    make_service: ServiceFactory, pg_url: str
) -> None:
    replica_a = await make_service(store_url=pg_url, mode="defer", timeout_seconds=0.1)
    replica_b = await make_service(store_url=pg_url, mode="defer", timeout_seconds=0.1)
    for sql in ("DROP TABLE a", "DROP TABLE b", "DROP TABLE c"):
        await replica_a.review(AGENT, statement(sql), REVIEW, None)
    await asyncio.sleep(0.2)
    swept_a, swept_b = await asyncio.gather(replica_a.expire_due(), replica_b.expire_due())
    assert not set(swept_a) & set(swept_b)
    assert len(swept_a) + len(swept_b) == 3
    assert len(await replica_b.list_requests(ApprovalStatus.EXPIRED)) == 3
