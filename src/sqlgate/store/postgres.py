"""The shared store: PostgreSQL through psycopg 3 async, for several sqlgate replicas.

A small pool of autocommit connections; a transaction borrows one for its duration. Broken
connections are dropped and replaced on the next use, so a store restart costs the writer a
retry, not a gateway restart. Connection strings are never logged: they may hold a password.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlgate.store.base import Params, Row, Store, StoreError, Tx

if TYPE_CHECKING:
    from psycopg import AsyncConnection


@lru_cache(maxsize=512)
def _adapt(sql: str) -> str:
    """Repository SQL uses `?` placeholders; psycopg wants `%s` (and a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(b"sqlgate:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _PgTx(Tx):
    def __init__(self, conn: AsyncConnection[Row]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._conn.cursor() as cur:
            await cur.execute(_adapt(sql), tuple(params))
            return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            async with self._conn.cursor() as cur:
                await cur.executemany(_adapt(sql), batch)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._conn.cursor() as cur:
            await cur.execute(_adapt(sql), tuple(params))
            return await cur.fetchall()

    async def lock(self, name: str) -> None:
        await self.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(name),))


class PostgresStore(Store):
    """`postgresql://user@host/db` (any libpq connection string works)."""

    dialect = "postgres"

    def __init__(self, conninfo: str, *, pool_size: int = 4, connect_timeout: float = 10) -> None:
        self._conninfo = conninfo
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[AsyncConnection[Row]] = []
        self._connect_timeout = connect_timeout
        self._closed = False

    def __repr__(self) -> str:
        return "PostgresStore(<conninfo hidden>)"

    async def open(self) -> None:
        async with self._connection():
            pass  # fail at start, with a clear error, when the server is unreachable

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def _connect(self) -> AsyncConnection[Row]:
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError:  # pragma: no cover - depends on the installation
            raise StoreError(
                "store.url is a PostgreSQL URL but psycopg is not installed: "
                "pip install 'psycopg[binary]>=3.1'"
            ) from None
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, int(self._connect_timeout)),
            )
        except psycopg.Error as exc:
            # libpq messages name host and port, never the password.
            raise StoreError(f"cannot connect to the PostgreSQL store: {exc}") from exc

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Row]]:
        if self._closed:
            raise StoreError("the PostgreSQL store is closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            if conn.closed or conn.broken:
                conn = await self._connect()
            try:
                yield conn
            finally:
                # A cancelled query can leave the connection mid-transaction: never reuse it.
                if conn.closed or conn.broken or self._closed or not _idle_status(conn):
                    await conn.close()
                else:
                    self._idle.append(conn)

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[Tx]:
        async with self._connection() as conn, conn.transaction():
            if readonly:
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _PgTx(conn)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Tx]:
        async with self._connection() as conn:
            yield _PgTx(conn)


def _idle_status(conn: AsyncConnection[Row]) -> bool:
    return conn.info.transaction_status.name == "IDLE"
