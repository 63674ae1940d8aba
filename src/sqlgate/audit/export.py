"""Read the audit trail back: one dict per statement (outcome merged), login and session.

Keyset paging on (at, id) keeps memory flat and holds no lock between pages, so exporting a
year of records neither exhausts memory nor stalls the gateway's writer.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlgate.audit.chain import AuditKind
from sqlgate.store.base import Row, Store

_COLUMNS = (
    "id", "chain_id", "chain_seq", "kind", "at", "session_id", "statement_seq", "subject",
    "email", "groups_json", "issuer", "client_addr", "target", "application_name", "sql",
    "params", "category", "operations", "decision", "policy", "rule", "reason", "approval_id",
    "prev_hash", "hash",
)  # fmt: skip
_OUTCOME_COLUMNS = ("at", "row_count", "duration_ms", "command_tag", "sqlstate",
                    "error_message", "chain_seq", "hash")  # fmt: skip

_QUERY = (
    "SELECT "
    + ", ".join(f"a.{c} AS {c}" for c in _COLUMNS)
    + ", o.id AS o_id, "
    + ", ".join(f"o.{c} AS o_{c}" for c in _OUTCOME_COLUMNS)
    + " FROM audit_log a LEFT JOIN audit_log o ON o.kind = 'outcome' "
    "AND o.chain_id = a.chain_id AND o.session_id = a.session_id "
    "AND o.statement_seq = a.statement_seq "
    "WHERE a.kind <> 'outcome' AND a.at >= ? AND a.at < ? {filters}"
    "AND (a.at > ? OR (a.at = ? AND a.id > ?)) ORDER BY a.at, a.id LIMIT ?"
)


def iso_time(at: float) -> str:
    """UTC ISO 8601 with milliseconds and a Z, the form SIEMs parse without hints."""
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _record(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {"time": iso_time(row["at"])}
    for column in _COLUMNS:
        value = row[column]
        if column == "groups_json":
            out["groups"] = None if value is None else json.loads(value)
        elif column in ("params", "operations"):
            out[column] = None if value is None else json.loads(value)
        else:
            out[column] = value
    if row["kind"] == AuditKind.STATEMENT:
        out["outcome"] = (
            None
            if row["o_id"] is None
            else {c: row[f"o_{c}"] for c in _OUTCOME_COLUMNS} | {"id": row["o_id"]}
        )
    return out


async def export(
    store: Store,
    since: float | None = None,
    until: float | None = None,
    *,
    session_id: str | None = None,
    subject: str | None = None,
    page: int = 1000,
) -> AsyncIterator[dict[str, Any]]:
    """Records with `since <= at < until` (epoch seconds), oldest first. Statements carry
    their outcome under "outcome" (None if the session ended first); outcome records are not
    listed on their own."""
    filters, extra = "", []
    if session_id is not None:
        filters += "AND a.session_id = ? "
        extra.append(session_id)
    if subject is not None:
        filters += "AND a.subject = ? "
        extra.append(subject)
    sql = _QUERY.format(filters=filters)
    low = float("-inf") if since is None else since
    high = float("inf") if until is None else until
    # ±inf are not portable bind values: clamp to the widest finite range instead.
    low, high = max(low, -1e18), min(high, 1e18)
    last_at, last_id = low, -1  # ids start at 1: the first page is simply `at >= low`
    while True:
        rows = await store.fetchall(sql, (low, high, *extra, last_at, last_at, last_id, page))
        for row in rows:
            yield _record(row)
        if len(rows) < page:
            return
        last_at, last_id = rows[-1]["at"], rows[-1]["id"]
