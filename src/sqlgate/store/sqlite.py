"""The embedded store: one SQLite file in WAL mode, driven from worker threads.

sqlite3 calls block, so each connection lives on its own single-thread executor and the event
loop only awaits futures. Two connections: writes (and `BEGIN IMMEDIATE` transactions, which
serialise writers across the `--workers` processes sharing the file) and reads, which WAL
lets run beside a write without waiting for it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlgate.store.base import Params, Row, Store, StoreError, StoreNotInitialized, Tx

T = TypeVar("T")

_BUSY_TIMEOUT_MS = 10_000


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class _Lane:
    """One connection, the one thread that may touch it, and a lock for transactions."""

    def __init__(self, name: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.lock = asyncio.Lock()
        self.conn: sqlite3.Connection | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    def db(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StoreError("the SQLite store is closed")
        return self.conn


class _SqliteTx(Tx):
    def __init__(self, lane: _Lane) -> None:
        self._lane = lane

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._lane.call(_execute, self._lane.db(), sql, tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            await self._lane.call(_executemany, self._lane.db(), sql, batch)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._lane.call(_fetchall, self._lane.db(), sql, tuple(params))

    async def lock(self, name: str) -> None:
        return None  # BEGIN IMMEDIATE already excludes every other writer


def _execute(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    return conn.execute(sql, params).rowcount


def _executemany(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(sql, rows)


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Row]:
    return conn.execute(sql, params).fetchall()


def _create_private(path: str) -> None:
    """Create the file owner-only before SQLite does (it would use the umask): it holds
    statement text and recorded rows. SQLite gives its -wal and -shm files the same mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class SqliteStore(Store):
    """`sqlite:///relative.db` or `sqlite:////absolute/path.db`."""

    dialect = "sqlite"

    def __init__(self, path: str, *, create: bool = True) -> None:
        self.path = path
        self._create = create
        self._memory = path == ":memory:"
        self._writer = _Lane("sqlgate-sqlite-w")
        # An in-memory database exists once per connection: reads must share the writer's.
        self._reader = self._writer if self._memory else _Lane("sqlgate-sqlite-r")

    async def open(self) -> None:
        missing = await self._writer.call(lambda: not Path(self.path).exists())
        if not self._memory and not self._create and missing:
            raise StoreNotInitialized(
                f"no sqlgate store at {self.path}: check store.url, or start the gateway "
                "once (`sqlgate serve`) to create it"
            )
        await self._writer.call(self._connect, self._writer, False)
        if self._reader is not self._writer:
            await self._reader.call(self._connect, self._reader, True)

    def _connect(self, lane: _Lane, readonly: bool) -> None:
        try:
            if self._memory:
                conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            else:
                if not readonly and self._create:
                    _create_private(self.path)
                mode = "rw" if readonly or not self._create else "rwc"
                uri = f"file:{quote(str(Path(self.path).absolute()))}?mode={mode}"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.row_factory = _dict_row
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if not readonly:
                # Switching to WAL takes an exclusive lock and ignores busy_timeout: two
                # workers opening a new store at once can collide, so retry briefly.
                for attempt in range(50):
                    try:
                        conn.execute("PRAGMA journal_mode = WAL")
                        break
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or attempt == 49:
                            raise
                        time.sleep(0.1)
                # FULL: a committed batch of audit records survives a power cut too; batching
                # keeps this to a few fsyncs a second.
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
        lane.conn = conn

    async def close(self) -> None:
        for lane in {id(self._writer): self._writer, id(self._reader): self._reader}.values():
            async with lane.lock:
                if lane.conn is not None:
                    await lane.call(lane.conn.close)
                    lane.conn = None
            lane.executor.shutdown(wait=True)

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[Tx]:
        lane = self._reader if readonly else self._writer
        async with lane.lock:
            conn = lane.db()
            if conn.in_transaction:
                # A BEGIN or COMMIT that was interrupted (lock timeout, cancellation) can
                # leave a transaction open; never build the next one on top of it.
                await lane.call(conn.rollback)
            await lane.call(conn.execute, "BEGIN" if readonly else "BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(lane)
            except BaseException:
                await lane.call(conn.rollback)
                raise
            try:
                await lane.call(conn.commit)
            except BaseException:
                await lane.call(conn.rollback)
                raise

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Tx]:
        async with self._reader.lock:
            yield _SqliteTx(self._reader)
