"""Retention for recordings and the audit trail, run periodically by the recorder."""

from __future__ import annotations

import logging
import time

from sqlgate.audit.retention import purge_audit
from sqlgate.store.base import Store

log = logging.getLogger("sqlgate.recording")

_SESSIONS_PER_TX = 200
_DAY = 86400.0


async def purge_recordings(store: Store, before: float) -> int:
    """Delete sessions (and their events) that ended, or started if never ended, before
    `before`; a few hundred sessions per transaction. Returns the number of sessions."""
    total = 0
    while True:
        async with store.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT session_id FROM sessions WHERE COALESCE(ended_at, started_at) < ? "
                "ORDER BY started_at LIMIT ?",
                (before, _SESSIONS_PER_TX),
            )
            ids = [r["session_id"] for r in rows]
            if ids:
                marks = ", ".join("?" for _ in ids)
                await tx.execute(f"DELETE FROM session_events WHERE session_id IN ({marks})", ids)
                await tx.execute(f"DELETE FROM sessions WHERE session_id IN ({marks})", ids)
        total += len(ids)
        if len(ids) < _SESSIONS_PER_TX:
            return total


async def purge(
    store: Store,
    *,
    audit_retention_days: float | None,
    recording_retention_days: float | None,
    now: float | None = None,
) -> tuple[int, int]:
    """Apply both retentions (None: keep forever); returns (audit records, sessions) purged."""
    now = time.time() if now is None else now
    audit = sessions = 0
    if audit_retention_days is not None:
        audit = await purge_audit(store, now - audit_retention_days * _DAY)
    if recording_retention_days is not None:
        sessions = await purge_recordings(store, now - recording_retention_days * _DAY)
    if audit or sessions:
        log.info("retention: purged %d audit records and %d recorded sessions", audit, sessions)
    return audit, sessions
