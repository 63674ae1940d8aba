"""The one object the proxy talks to for recording and audit.

Hot-path methods only append a tuple to a bounded in-memory queue; a background task drains
it in batches (one transaction per batch) into the store. When the queue is full and
`store.on_full` is `block`, `statement()` answers False and the caller refuses the statement,
so nothing runs unrecorded; with `drop` the record is dropped, counted and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlgate.audit.chain import ChainHead, new_chain_id, writer_label
from sqlgate.audit.settings import AuditSettings
from sqlgate.audit.sink import AuditSink, make_sink
from sqlgate.recording.events import (
    RecordingEvent,
    SessionInfo,
    StatementOutcome,
    StatementRecord,
)
from sqlgate.recording.retention import purge
from sqlgate.recording.settings import RecordingSettings
from sqlgate.recording.writer import (
    END,
    EVENT,
    LOGIN_FAILED,
    OUTCOME,
    START,
    STATEMENT,
    BatchBuilder,
    Item,
    batch_committed,
    write_batch,
)
from sqlgate.store.base import Store, describe_error
from sqlgate.store.factory import open_store
from sqlgate.store.settings import StoreSettings

if TYPE_CHECKING:
    from sqlgate.config import Config

log = logging.getLogger("sqlgate.recording")

_COMPLAIN_EVERY_S = 10.0
_RETRY_MAX_S = 5.0


class Recorder:
    """Queue + background writer between the proxy and the store."""

    def __init__(
        self,
        store: Store,
        store_settings: StoreSettings | None = None,
        audit_settings: AuditSettings | None = None,
        recording_settings: RecordingSettings | None = None,
        *,
        sink: AuditSink | None = None,
        chain_id: str | None = None,
        owns_store: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        # The clocks for the times the recorder stamps itself (outcomes, session start/end).
        self._clock = clock
        self._monotonic = monotonic
        settings = store_settings or StoreSettings()
        self._audit = audit_settings or AuditSettings()
        self._recording = recording_settings or RecordingSettings()
        self._capacity = settings.queue_size
        # Outcomes, session ends and events of statements already admitted may overshoot the
        # statement capacity (they must not be lost because the queue filled meanwhile),
        # up to a hard memory bound.
        self._hard_capacity = 2 * settings.queue_size
        self._block = settings.on_full == "block"
        self._batch_size = max(1, settings.batch_size)
        self._flush_interval = max(0.0, settings.flush_interval_seconds)
        self._purge_interval = settings.purge_interval_seconds
        self._sink = sink if sink is not None else make_sink(self._audit.sink)
        self._owns_store = owns_store

        self.chain_id = chain_id or new_chain_id()
        self._builder = BatchBuilder(
            ChainHead(self.chain_id), writer=writer_label(), started_at=time.time()
        )
        self._queue: deque[Item] = deque()
        self._sessions: dict[str, SessionInfo] = {}
        self._wake = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._purger: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._failing = False
        self._inflight = 0
        self._batch_no = 0
        self._enqueued = 0
        self._done = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

        self.dropped = 0  # items lost: queue full (drop mode, overflow, closed) or malformed
        self.refused = 0  # statements refused because the queue was full (block mode)
        self.records_written = 0  # audit records committed
        self._complained_at = 0.0
        self._complaints = 0

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: Config) -> Recorder:
        """Open and migrate the configured store, and start writing."""
        settings = StoreSettings.from_config(config)
        store = await open_store(settings.url, pool_size=settings.pool_size)
        recorder = cls(
            store,
            settings,
            AuditSettings.from_config(config),
            RecordingSettings.from_config(config),
            owns_store=True,
        )
        await recorder.start()
        return recorder

    async def start(self) -> None:
        """Start the background writer (and the retention purge, when configured)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sqlgate-recorder")
        retention = (self._audit.retention_days, self._recording.retention_days)
        if self._purger is None and any(r is not None for r in retention):
            self._purger = asyncio.create_task(self._purge_loop(), name="sqlgate-purge")

    async def close(self, drain_seconds: float | None = 30.0) -> None:
        """Write everything queued, then stop. After `drain_seconds` (store unreachable) the
        rest is abandoned, with an error naming how much was lost."""
        self._closing = True
        self._wake.set()
        self._batch_ready.set()
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), drain_seconds)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                log.error(
                    "recorder closed with %d events unwritten: the store did not accept them "
                    "within %.0fs",
                    len(self._queue) + self._inflight,
                    drain_seconds or 0,
                )
            except Exception:
                pass  # the writer died earlier and logged why; close the rest anyway
        self._closed = True
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        if self._owns_store:
            await self.store.close()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (tests, API read-after-write)."""
        target = self._enqueued
        if self._done >= target:
            return
        if self._task is None or self._task.done():
            raise RuntimeError("the recorder's writer is not running: start() it first")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._batch_ready.set()
        await waiter

    # -- state for /readyz and metrics ----------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Writing works and there is room for statements."""
        return (
            self._task is not None
            and not self._task.done()
            and not self._failing
            and len(self._queue) < self._capacity
        )

    @property
    def queue_depth(self) -> int:
        return len(self._queue) + self._inflight

    @property
    def row_cap(self) -> int:
        """`recording.max_rows_per_statement`: the caller records at most this many rows."""
        return self._recording.max_rows_per_statement

    # -- hot path: enqueue only -----------------------------------------------------------

    def session_started(self, info: SessionInfo) -> bool:
        self._sessions[info.session_id] = info
        return self._put((START, info, self._monotonic()), self._hard_capacity)

    def statement(self, record: StatementRecord) -> bool:
        """False: the queue is full in block mode, and the caller must refuse the statement."""
        if self._closed or len(self._queue) >= self._capacity:
            if self._block:
                self.refused += 1
                self._complain()
                return False
            self.dropped += 1
            self._complain()
            return True
        self._queue.append((STATEMENT, record, self._sessions.get(record.session_id)))
        self._kick()
        return True

    def outcome(self, outcome: StatementOutcome) -> None:
        self._put((OUTCOME, outcome, self._clock(), self._monotonic()), self._hard_capacity)

    def event(self, event: RecordingEvent) -> None:
        self._put((EVENT, event), self._hard_capacity)

    def session_ended(self, session_id: str, at: float, reason: str) -> None:
        info = self._sessions.pop(session_id, None)
        self._put((END, session_id, at, reason, self._monotonic(), info), self._hard_capacity)

    def login_failed(
        self, at: float, client_addr: str, reason: str, subject_hint: str | None
    ) -> None:
        """Audit a refused login with its real reason (the client was told less)."""
        self._put((LOGIN_FAILED, at, client_addr, reason, subject_hint), self._hard_capacity)

    def _put(self, item: Item, capacity: int) -> bool:
        if self._closed or len(self._queue) >= capacity:
            self.dropped += 1
            self._complain()
            return False
        self._queue.append(item)
        self._kick()
        return True

    def _kick(self) -> None:
        self._enqueued += 1
        if not self._wake.is_set():
            self._wake.set()
        if len(self._queue) >= self._batch_size:
            self._batch_ready.set()

    def _complain(self) -> None:
        """Loud, but at most one log line per interval however many statements hit it."""
        self._complaints += 1
        now = time.monotonic()
        if now - self._complained_at < _COMPLAIN_EVERY_S:
            return
        self._complained_at = now
        action = (
            "refusing statements (store.on_full: block)"
            if self._block
            else "statements run UNRECORDED (store.on_full: drop)"
        )
        log.error(
            "recording queue full or closed (%d queued, capacity %d): %s; %d hits since the "
            "last report, %d dropped and %d refused in total. Check the store.",
            len(self._queue),
            self._capacity,
            action,
            self._complaints,
            self.dropped,
            self.refused,
        )
        self._complaints = 0

    # -- the writer -----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if len(self._queue) < self._batch_size and not (self._closing or self._waiters):
                    # Group commit: give a trickle of events a moment to become a batch.
                    self._batch_ready.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._flush_interval):
                            await self._batch_ready.wait()
                count = min(len(self._queue), self._batch_size)
                items = [self._queue.popleft() for _ in range(count)]
                self._inflight = count
                await self._write(items)
                self._inflight = 0
                self._done += count
                self._release_waiters()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the recorder's writer stopped; statements will be refused")
            raise

    def _release_waiters(self) -> None:
        if not self._waiters:
            return
        pending = []
        for target, waiter in self._waiters:
            if self._done >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                pending.append((target, waiter))
        self._waiters = pending

    async def _write(self, items: list[Item]) -> None:
        self._batch_no += 1
        # Serialising and hashing a batch is CPU work: keep it off the event loop.
        batch = await asyncio.to_thread(self._builder.build, items, self._batch_no)
        self.dropped += batch.skipped
        delay = 0.05
        while True:
            try:
                await write_batch(self.store, batch, self._builder)
                break
            except Exception as exc:
                self._failing = True
                log.error(
                    "cannot write %d recording events to the store (retrying in %.1fs): %s",
                    len(items),
                    delay,
                    describe_error(exc),
                )
                with contextlib.suppress(Exception):
                    if await batch_committed(self.store, self.chain_id, batch.number):
                        break
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
        self._failing = False
        self.records_written += len(batch.audit)
        if self._sink is not None and batch.audit:
            try:
                await asyncio.to_thread(self._sink.emit, batch.audit)
            except Exception as exc:
                log.error("audit sink failed for %d records: %s", len(batch.audit), exc)

    async def _purge_loop(self) -> None:
        while True:
            try:
                await purge(
                    self.store,
                    audit_retention_days=self._audit.retention_days,
                    recording_retention_days=self._recording.retention_days,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("retention purge failed (will retry): %s", describe_error(exc))
            await asyncio.sleep(self._purge_interval)
