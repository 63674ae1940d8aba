"""Read recorded sessions back: listing with filters, one session's event stream."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlgate.errors import SqlgateError
from sqlgate.store.base import Row, Store

_SUMMARY = (
    "SELECT s.session_id, s.started_at, s.ended_at, s.end_reason, s.subject, s.email, "
    "s.groups_json, s.issuer, s.client_addr, s.application_name, s.target, s.protocol, "
    "(SELECT COUNT(*) FROM session_events e WHERE e.session_id = s.session_id "
    "AND e.kind = 'statement') AS statements FROM sessions s"
)


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session_id: str
    started_at: float
    ended_at: float | None
    end_reason: str | None
    subject: str
    email: str | None
    groups: tuple[str, ...]
    issuer: str | None
    client_addr: str | None
    application_name: str | None
    target: str
    protocol: str
    statements: int

    @property
    def identity(self) -> str:
        return self.email or self.subject


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    session_id: str
    mono: float
    kind: str
    statement_seq: int | None
    data: dict[str, Any]


def _summary(row: Row) -> SessionSummary:
    return SessionSummary(
        session_id=row["session_id"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        subject=row["subject"],
        email=row["email"],
        groups=tuple(json.loads(row["groups_json"])),
        issuer=row["issuer"],
        client_addr=row["client_addr"],
        application_name=row["application_name"],
        target=row["target"],
        protocol=row["protocol"],
        statements=int(row["statements"]),
    )


async def list_sessions(
    store: Store,
    *,
    identity: str | None = None,
    target: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[SessionSummary]:
    """Newest first. `identity` matches the subject, or the email ignoring case."""
    where: list[str] = []
    params: list[Any] = []
    if identity is not None:
        where.append("(s.subject = ? OR LOWER(s.email) = LOWER(?))")
        params += [identity, identity]
    if target is not None:
        where.append("s.target = ?")
        params.append(target)
    if since is not None:
        where.append("s.started_at >= ?")
        params.append(since)
    if until is not None:
        where.append("s.started_at < ?")
        params.append(until)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = await store.fetchall(
        f"{_SUMMARY}{clause} ORDER BY s.started_at DESC, s.session_id LIMIT ?",
        (*params, limit),
    )
    return [_summary(r) for r in rows]


async def get_session(store: Store, session_id: str) -> SessionSummary | None:
    row = await store.fetchone(f"{_SUMMARY} WHERE s.session_id = ?", (session_id,))
    return None if row is None else _summary(row)


async def resolve_session(store: Store, id_or_prefix: str) -> SessionSummary:
    """A session by full id, or by a unique prefix of at least 6 hex digits (like git)."""
    found = await get_session(store, id_or_prefix)
    if found is not None:
        return found
    prefix = id_or_prefix.lower()
    if re.fullmatch(r"[0-9a-f]{6,}", prefix):
        rows = await store.fetchall(
            "SELECT session_id FROM sessions WHERE session_id LIKE ? ORDER BY session_id LIMIT 2",
            (prefix + "%",),
        )
        if len(rows) == 1:
            match = await get_session(store, rows[0]["session_id"])
            if match is not None:
                return match
        if len(rows) > 1:
            raise SqlgateError(f"session id prefix {id_or_prefix!r} is ambiguous: give more")
    raise SqlgateError(
        f"no recorded session {id_or_prefix!r} (see `sqlgate sessions list`; recordings "
        "past recording.retention_days are deleted)"
    )


async def iter_events(store: Store, session_id: str) -> AsyncIterator[StoredEvent]:
    """The session's events in the order they happened."""
    rows = store.iterate(
        "SELECT id, session_id, mono, kind, statement_seq, data FROM session_events "
        "WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
        (session_id,),
        key="id",
        start=0,
    )
    async for row in rows:
        yield StoredEvent(
            id=int(row["id"]),
            session_id=row["session_id"],
            mono=row["mono"],
            kind=row["kind"],
            statement_seq=row["statement_seq"],
            data=json.loads(row["data"]),
        )
