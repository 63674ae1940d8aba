"""Waking held statements when their request is decided, in this process or on another replica.

A waiter never trusts a wake-up: it re-reads the request from the store. So a lost or
duplicated signal costs latency, never correctness, and the store stays the only truth. In
this process `Waiters.wake` is called directly; between replicas sharing a PostgreSQL store a
decision is announced with NOTIFY and heard by one dedicated LISTEN connection per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

CHANNEL = "sqlgate_approvals"


class Waiters:
    """approval id -> the events of the tasks holding a statement for it."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def watch(self, approval_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events.setdefault(approval_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._events.get(approval_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._events[approval_id]

    def wake(self, approval_id: str) -> None:
        for event in self._events.get(approval_id, ()):
            event.set()

    def wake_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()

    def __len__(self) -> int:
        return sum(len(events) for events in self._events.values())


class PgListener:
    """One autocommit psycopg connection that LISTENs on `CHANNEL`, reconnecting with backoff.

    While it is down, `listening` is False and waiters poll the store instead; after a
    reconnect every waiter is woken once, because notifications sent meanwhile are lost.
    """

    def __init__(
        self,
        conninfo: str,
        on_notify: Callable[[str], None],
        on_reconnect: Callable[[], None],
        *,
        channel: str = CHANNEL,
        max_backoff: float = 10.0,
    ) -> None:
        self._conninfo = conninfo
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._channel = channel
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.listening = False

    def __repr__(self) -> str:
        return "PgListener(<conninfo hidden>)"

    async def start(self, ready_timeout: float = 10.0) -> None:
        """Start listening; waits (up to `ready_timeout`) for the first LISTEN to be in place
        so a decision made right after start is not missed."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="sqlgate-approvals-listen")
        try:
            async with asyncio.timeout(ready_timeout):
                await self._ready.wait()
        except TimeoutError:
            logger.warning(
                "approvals: cannot LISTEN on the PostgreSQL store yet; polling every second "
                "until it works"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.listening = False

    async def _run(self) -> None:
        import psycopg
        from psycopg import sql

        backoff = 0.5
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=10
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.listening = True
                    self._ready.set()
                    backoff = 0.5
                    if not first:
                        logger.info("approvals: LISTEN connection to the store is back")
                        self._on_reconnect()
                    first = False
                    async for notify in conn.notifies():
                        self._on_notify(notify.payload)
            except psycopg.Error as exc:
                if self.listening or first:
                    # libpq messages name host and port, never the password.
                    logger.warning(
                        "approvals: LISTEN connection to the store failed (%s); "
                        "polling meanwhile", type(exc).__name__,
                    )  # fmt: skip
            finally:
                if self.listening:
                    self.listening = False
                    self._on_reconnect()  # wake waiters: they switch to polling
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
