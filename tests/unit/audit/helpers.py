"""Fill a store with a known audit trail through the real recorder."""

from __future__ import annotations

import time

from sqlgate.recording import Recorder, RecordingEvent
from sqlgate.store import Store
from tests.unit.store.fixtures import outcome, session_info, statement


class Clock:
    """A settable wall clock for the recorder, so outcomes get the session's (past) times."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def record_session(
    store: Store,
    statements: int = 5,
    *,
    recorder: Recorder | None = None,
    clock: Clock | None = None,
    start_at: float | None = None,
    step: float = 1.0,
) -> str:
    """One session: start, N statements each with rows and an outcome, end. Chain layout:
    seq 1 session_start, then statement/outcome pairs (statement k at seq 2k), then the end.
    Pass the recorder's `clock` to time the outcomes too."""
    clock = clock or Clock()
    rec = recorder or Recorder(store, clock=clock)
    if recorder is None:
        await rec.start()
    t0 = time.time() if start_at is None else start_at
    info = session_info(started_at=t0)
    rec.session_started(info)
    for seq in range(1, statements + 1):
        rec.statement(statement(info.session_id, seq, f"SELECT {seq} AS n", at=t0 + seq * step))
        rec.event(RecordingEvent.columns(info.session_id, time.monotonic(), seq, ["n"]))
        rec.event(RecordingEvent.rows(info.session_id, time.monotonic(), seq, [[seq]]))
        clock.now = t0 + seq * step + 0.001
        rec.outcome(outcome(info.session_id, seq))
    rec.session_ended(info.session_id, t0 + (statements + 1) * step, "client closed")
    await rec.flush()
    if recorder is None:
        await rec.close()
    return info.session_id
