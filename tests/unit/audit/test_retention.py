from __future__ import annotations

import time

from sqlgate.audit import purge_audit, verify
from sqlgate.recording import Recorder, purge, purge_recordings
from sqlgate.recording.recorder import log as recorder_log
from sqlgate.store import Store
from tests.unit.store.fixtures import raw_execute

from .helpers import Clock, record_session

DAY = 86400.0


async def test_purge_keeps_the_chain_verifiable(store: Store) -> None:
    now = time.time()
    clock = Clock()
    rec = Recorder(store, clock=clock)
    await rec.start()
    old = await record_session(store, 4, recorder=rec, clock=clock, start_at=now - 40 * DAY)
    new = await record_session(store, 2, recorder=rec, clock=clock, start_at=now - 1 * DAY)
    await rec.close()
    purged = await purge_audit(store, now - 30 * DAY)
    assert purged == 1 + 4 * 2 + 1  # the whole old session, nothing of the new one
    remaining = {r["session_id"] for r in await store.fetchall("SELECT session_id FROM audit_log")}
    assert remaining == {new}
    chain = await store.fetchone("SELECT anchor_seq, anchor_hash, head_seq FROM audit_chains")
    assert chain is not None and chain["anchor_seq"] == purged
    result = await verify(store)
    assert result.ok, result.problems
    assert result.records == 1 + 2 * 2 + 1
    assert old not in remaining
    assert await purge_audit(store, now - 30 * DAY) == 0  # idempotent


async def test_tampering_after_a_purge_is_still_found(store: Store, store_url: str) -> None:
    now = time.time()
    clock = Clock()
    rec = Recorder(store, clock=clock)
    await rec.start()
    await record_session(store, 2, recorder=rec, clock=clock, start_at=now - 40 * DAY)
    await record_session(store, 2, recorder=rec, clock=clock, start_at=now)
    await rec.close()
    await purge_audit(store, now - 30 * DAY)
    first = await store.fetchval("SELECT MIN(chain_seq) FROM audit_log")
    raw_execute(store_url, "DELETE FROM audit_log WHERE chain_seq = ?", (first,))
    problem = (await verify(store)).first_problem
    assert problem is not None and problem.seq == first and "missing" in problem.what


async def test_purge_refuses_to_launder_a_tampered_prefix(store: Store, store_url: str) -> None:
    now = time.time()
    await record_session(store, 3, start_at=now - 40 * DAY)
    raw_execute(store_url, "UPDATE audit_log SET sql = 'SELECT 0' WHERE chain_seq = 4")
    assert await purge_audit(store, now) == 0
    assert await store.fetchval("SELECT COUNT(*) FROM audit_log") == 1 + 3 * 2 + 1
    assert not (await verify(store)).ok


async def test_a_clock_step_back_does_not_open_a_hole(store: Store) -> None:
    now = time.time()
    clock = Clock()
    rec = Recorder(store, clock=clock)
    await rec.start()
    await record_session(store, 1, recorder=rec, clock=clock, start_at=now - 40 * DAY)
    await record_session(store, 1, recorder=rec, clock=clock, start_at=now)
    await record_session(
        store, 1, recorder=rec, clock=clock, start_at=now - 50 * DAY
    )  # clock went back
    await rec.close()
    assert await purge_audit(store, now - 30 * DAY) == 4  # only the prefix before the new one
    assert (await verify(store)).ok
    assert await store.fetchval("SELECT COUNT(*) FROM audit_log") == 8


async def test_recording_purge_drops_old_sessions_and_their_events(store: Store) -> None:
    now = time.time()
    clock = Clock()
    rec = Recorder(store, clock=clock)
    await rec.start()
    old = await record_session(store, 2, recorder=rec, clock=clock, start_at=now - 10 * DAY)
    new = await record_session(store, 2, recorder=rec, clock=clock, start_at=now)
    await rec.close()
    assert await purge_recordings(store, now - 7 * DAY) == 1
    sessions = {r["session_id"] for r in await store.fetchall("SELECT session_id FROM sessions")}
    events = {
        r["session_id"]
        for r in await store.fetchall("SELECT DISTINCT session_id FROM session_events")
    }
    assert sessions == events == {new}
    # The audit trail has its own retention: recordings going does not touch it.
    assert await store.fetchval("SELECT COUNT(*) FROM audit_log WHERE session_id = ?", (old,)) > 0
    assert (await verify(store)).ok


async def test_purge_applies_both_retentions(store: Store) -> None:
    now = time.time()
    await record_session(store, 1, start_at=now - 100 * DAY)
    assert await purge(
        store, audit_retention_days=None, recording_retention_days=None, now=now
    ) == (0, 0)
    assert await purge(store, audit_retention_days=90, recording_retention_days=30, now=now) == (
        4,
        1,
    )
    assert (await verify(store)).ok


async def test_recorder_runs_the_purge_when_retention_is_set(store: Store) -> None:
    from sqlgate.audit import AuditSettings

    now = time.time()
    await record_session(store, 1, start_at=now - 100 * DAY)
    rec = Recorder(store, audit_settings=AuditSettings(retention_days=30))
    await rec.start()
    for _ in range(100):
        if await store.fetchval("SELECT COUNT(*) FROM audit_log") == 0:
            break
        await _sleep(0.02)
    await rec.close()
    assert await store.fetchval("SELECT COUNT(*) FROM audit_log") == 0
    assert (await verify(store)).ok
    assert recorder_log.name == "sqlgate.recording"


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
