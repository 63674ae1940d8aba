"""The dialect-neutral store interface: async transactions over plain SQL.

Repositories (audit, recording, approvals) write their SQL once, with `?` placeholders and
the subset of SQL that SQLite and PostgreSQL share (`ON CONFLICT`, `RETURNING`, row-value
free keyset paging); each backend adapts placeholders and runs it. Rows come back as dicts
keyed by column name so repository code never depends on the driver.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

from sqlgate.errors import SqlgateError

Row = dict[str, Any]
Params = Sequence[Any]
Dialect = Literal["sqlite", "postgres"]


class StoreError(SqlgateError):
    """The state store cannot be opened, migrated or used; the message says what to check."""


class StoreNotInitialized(StoreError):
    """The store has no sqlgate schema (yet): the gateway has never run against it."""


class Tx(abc.ABC):
    """One open transaction (or, for plain reads, one autocommit connection)."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the affected row count."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement for many parameter rows (batched by the driver)."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """All rows of one query."""

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = await self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()))

    @abc.abstractmethod
    async def lock(self, name: str) -> None:
        """Serialise this transaction against others taking the same named lock.

        PostgreSQL: a transaction-scoped advisory lock (replicas migrate or purge one at a
        time). SQLite: a no-op, because write transactions are already exclusive.
        """


class Store(abc.ABC):
    """A state store. Open it with `sqlgate.store.open_store(url)`."""

    dialect: Dialect

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (and for SQLite, create the file unless told not to)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads; idempotent."""

    @abc.abstractmethod
    def transaction(self, *, readonly: bool = False) -> AbstractAsyncContextManager[Tx]:
        """A transaction: committed when the block ends, rolled back on an exception.

        `readonly=True` gives a consistent snapshot for multi-query reads (verify, export)
        without taking the write lock.
        """

    @abc.abstractmethod
    def reader(self) -> AbstractAsyncContextManager[Tx]:
        """An autocommit connection for independent reads."""

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.reader() as tx:
            return await tx.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self.reader() as tx:
            return await tx.fetchone(sql, params)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        async with self.reader() as tx:
            return await tx.fetchval(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement in its own write transaction."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def iterate(
        self, sql: str, params: Params, *, key: str, start: Any, page: int = 1000
    ) -> AsyncIterator[Row]:
        """Keyset paging over `sql`, whose last two placeholders are `key > ?` and `LIMIT ?`
        (with `ORDER BY key`). No cursor or lock is held between pages, so a long export never
        blocks the writer."""
        last = start
        while True:
            rows = await self.fetchall(sql, (*params, last, page))
            for row in rows:
                yield row
            if len(rows) < page:
                return
            last = rows[-1][key]


def describe_error(exc: BaseException) -> str:
    """A driver error for a log line: the server's primary message only, because the detail
    of a constraint error can quote row data (statement text) that does not belong in logs."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return f"{type(exc).__name__}: {primary or exc}"
