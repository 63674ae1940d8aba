"""The gateway's own view of a PostgreSQL target's catalog, for column provenance.

One connection per target (the target's default credentials), opened on first use and
reopened after errors. Answers are cached and dropped after DDL through the gateway and on
a timer, so a renamed or new table is seen without restarting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from sqlgate.config import TargetConfig
from sqlgate.errors import BackendError, ProtocolError
from sqlgate.masking.planner import Relation
from sqlgate.protocols.postgres.datarow import split_data_row
from sqlgate.protocols.postgres.framing import FrameBuffer
from sqlgate.protocols.postgres.messages import ErrorResponse, Query, Terminate, decode_backend
from sqlgate.proxy.pg_backend import BackendConnection, connect_backend
from sqlgate.proxy.tls import backend_context

log = logging.getLogger(__name__)

_RELATIONS_SQL = """
SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, a.attnum, a.attname,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE {where}
ORDER BY c.oid, a.attnum
"""

_FUNCTIONS_SQL = """
SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.proname IN ({names})
"""


def _literal(value: str) -> str:
    # The connection runs with standard_conforming_strings on: only quotes need doubling.
    return "'" + value.replace("'", "''") + "'"


def _split_name(qualified: str) -> tuple[str, str]:
    schema, _, name = qualified.partition(".")
    return schema.strip('"'), name.strip('"')


class PgCatalog:
    """Implements masking.planner.Catalog for one PostgreSQL target."""

    def __init__(self, target: TargetConfig, max_message_bytes: int, ttl_seconds: float = 60.0):
        self.target = target
        self._max = max_message_bytes
        self._ttl = ttl_seconds
        self._conn: BackendConnection | None = None
        self._lock = asyncio.Lock()
        self._by_oid: dict[int, Relation | None] = {}
        self._by_name: dict[str, Relation | None] = {}
        self._functions: dict[str, bool] = {}
        self._loaded_at = time.monotonic()
        self.generation = 0

    def invalidate(self) -> None:
        self._by_oid.clear()
        self._by_name.clear()
        self._functions.clear()
        self._loaded_at = time.monotonic()
        self.generation += 1

    def _expire(self) -> None:
        if time.monotonic() - self._loaded_at > self._ttl:
            self.invalidate()

    async def relations(self, oids: Iterable[int]) -> dict[int, Relation]:
        self._expire()
        wanted = [o for o in set(oids) if o not in self._by_oid]
        if wanted:
            found = await self._load_relations(
                f"c.oid = ANY('{{{','.join(str(o) for o in wanted)}}}'::oid[])"
            )
            for oid in wanted:
                self._by_oid[oid] = found.get(oid)
        return {o: r for o in oids if (r := self._by_oid.get(o)) is not None}

    async def relations_by_name(self, names: Iterable[str]) -> dict[str, Relation]:
        self._expire()
        wanted = [n for n in set(names) if n not in self._by_name]
        if wanted:
            pairs = ", ".join(
                f"({_literal(s)}, {_literal(t)})" for s, t in map(_split_name, wanted)
            )
            found = await self._load_relations(f"(n.nspname, c.relname) IN (VALUES {pairs})")
            by_name = {r.qualified: r for r in found.values()}
            for name in wanted:
                self._by_name[name] = by_name.get("{}.{}".format(*_split_name(name)))
        return {n: r for n in names if (r := self._by_name.get(n)) is not None}

    async def user_functions(self, names: Iterable[str]) -> frozenset[str]:
        self._expire()
        wanted = [n for n in set(names) if n not in self._functions]
        if wanted:
            rows = await self._query(
                _FUNCTIONS_SQL.format(names=", ".join(_literal(n) for n in wanted))
            )
            user = {r[0] for r in rows}
            for name in wanted:
                self._functions[name] = name in user
        return frozenset(n for n in names if self._functions.get(n))

    async def _load_relations(self, where: str) -> dict[int, Relation]:
        rows = await self._query(_RELATIONS_SQL.format(where=where))
        grouped: dict[int, tuple[list[str | None], dict[int, str]]] = {}
        for row in rows:
            oid = int(row[0] or 0)
            entry = grouped.setdefault(oid, (row, {}))
            if row[4] is not None and row[5] is not None:
                entry[1][int(row[4])] = row[5]
        return {
            oid: Relation(oid, str(head[1]), str(head[2]), str(head[3]), columns, head[6])
            for oid, (head, columns) in grouped.items()
        }

    async def _query(self, sql: str) -> list[list[str | None]]:
        async with self._lock:
            try:
                return await self._run(sql)
            except (OSError, BackendError, ProtocolError, asyncio.IncompleteReadError) as exc:
                log.warning("catalog query on target %r failed (%s); reconnecting",
                            self.target.name, exc)
                self._drop()
                return await self._run(sql)

    async def _run(self, sql: str) -> list[list[str | None]]:
        if self._conn is None:
            self._conn = await connect_backend(
                self.target, self.target.credentials,
                {"application_name": "sqlgate-catalog", "standard_conforming_strings": "on"},
                backend_context(self.target), self._max,
            )
        conn = self._conn
        conn.writer.write(Query(sql).encode())
        await conn.writer.drain()
        frames = FrameBuffer(self._max)
        rows: list[list[str | None]] = []
        error: ErrorResponse | None = None
        while True:
            data = await conn.reader.read(65536)
            if not data:
                raise BackendError("catalog connection closed")
            chunk, found = frames.push(data)
            for type_code, start, end in found:
                if type_code == 68:  # 'D'
                    rows.append([None if v is None else v.decode()
                                 for v in split_data_row(chunk[start:end])])
                elif type_code == 69:  # 'E'
                    message = decode_backend(type_code, chunk[start + 5 : end])
                    assert isinstance(message, ErrorResponse)
                    error = message
                elif type_code == 90:  # 'Z'
                    if error is not None:
                        raise BackendError(f"catalog query failed: {error.message}")
                    return rows

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.writer.close()
            self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.writer.write(Terminate().encode())
            except (OSError, RuntimeError):
                pass
            self._drop()
