"""Turn a batch of queued events into rows, and write them in one transaction.

Building (serialising, sealing audit records into the chain) happens once per batch; a
failed write is retried with the very same rows, so a retry can never fork the chain. The
chain head and a batch counter are stored in the same transaction, which lets the writer tell
"failed" from "committed but the acknowledgement was lost" after a connection drop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from sqlgate.audit.chain import (
    GENESIS_HASH,
    STORED_COLUMNS,
    AuditKind,
    ChainHead,
    clean_text,
    json_text,
)
from sqlgate.recording.events import (
    EventKind,
    RecordingEvent,
    SessionInfo,
    StatementOutcome,
    StatementRecord,
)
from sqlgate.store.base import Store

# Queue item tags. Items are plain tuples: the hot path allocates one tuple per call.
START: Final = 0  # (START, info, mono)
STATEMENT: Final = 1  # (STATEMENT, record, info | None)
OUTCOME: Final = 2  # (OUTCOME, outcome, at, mono)
EVENT: Final = 3  # (EVENT, event)
END: Final = 4  # (END, session_id, at, reason, mono, info | None)
LOGIN_FAILED: Final = 5  # (LOGIN_FAILED, at, client_addr, reason, subject_hint)

Item = tuple[Any, ...]

log = logging.getLogger("sqlgate.recording")

_INSERT_SESSION = (
    "INSERT INTO sessions (session_id, started_at, subject, email, groups_json, issuer, "
    "client_addr, application_name, target, protocol, chain_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING"
)
_END_SESSION = "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE session_id = ?"
_INSERT_EVENT = (
    "INSERT INTO session_events (session_id, mono, kind, statement_seq, data) "
    "VALUES (?, ?, ?, ?, ?)"
)
_INSERT_AUDIT = (
    f"INSERT INTO audit_log ({', '.join(STORED_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in STORED_COLUMNS)})"
)
_UPSERT_CHAIN = (
    "INSERT INTO audit_chains (chain_id, writer, started_at, updated_at, head_seq, head_hash, "
    "anchor_seq, anchor_hash, last_batch) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) "
    "ON CONFLICT (chain_id) DO UPDATE SET updated_at = excluded.updated_at, "
    "head_seq = excluded.head_seq, head_hash = excluded.head_hash, "
    "last_batch = excluded.last_batch"
)


@dataclass(slots=True)
class Batch:
    number: int
    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    session_ends: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = ""
    skipped: int = 0


def _data_json(data: dict[str, Any]) -> str:
    try:
        return orjson.dumps(data, default=str).decode("utf-8")
    except (TypeError, ValueError):
        # Lone surrogates or odd keys: stdlib json escapes them instead of failing.
        return json.dumps(data, default=str, ensure_ascii=True)


def _identity_fields(info: SessionInfo | None) -> dict[str, Any]:
    if info is None:
        return {}
    ident = info.identity
    return {
        "subject": ident.subject,
        "email": ident.email,
        "groups_json": json_text(sorted(ident.groups)),
        "issuer": ident.issuer,
        "client_addr": info.client_addr,
        "target": info.target,
        "application_name": info.application_name,
    }


def _text(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


class BatchBuilder:
    """Owns this process's chain head; only the writer task calls it, one batch at a time."""

    def __init__(self, head: ChainHead, *, writer: str, started_at: float) -> None:
        self.head = head
        self.writer = writer
        self.started_at = started_at

    def build(self, items: Sequence[Item], number: int) -> Batch:
        """Rows for `items`. An item the caller got wrong (a field of the wrong type) is
        logged and skipped: one bad event must not stop recording for every session."""
        batch = Batch(number)
        for item in items:
            marks = (len(batch.sessions), len(batch.session_ends), len(batch.events))
            try:
                self._add(batch, item)
            except Exception:
                del batch.sessions[marks[0] :], batch.session_ends[marks[1] :]
                del batch.events[marks[2] :]
                batch.skipped += 1
                log.exception("skipping a malformed recording item of kind %s", item[0])
        batch.head_seq = self.head.seq
        batch.head_hash = self.head.hash
        return batch

    def _add(self, batch: Batch, item: Item) -> None:
        tag = item[0]
        if tag == STATEMENT:
            self._statement(batch, item[1], item[2])
        elif tag == OUTCOME:
            self._outcome(batch, item[1], item[2], item[3])
        elif tag == EVENT:
            event: RecordingEvent = item[1]
            seq = event.data.get("seq")
            batch.events.append(
                (
                    str(event.session_id),
                    float(event.mono),
                    clean_text(str(event.kind)),
                    seq if isinstance(seq, int) else None,
                    _data_json(event.data),
                )
            )
        elif tag == START:
            self._start(batch, item[1], item[2])
        elif tag == END:
            self._end(batch, *item[1:])
        elif tag == LOGIN_FAILED:
            _, at, client_addr, reason, subject_hint = item
            batch.audit.append(
                self.head.seal(
                    {
                        "kind": AuditKind.LOGIN_FAILED.value,
                        "at": at,
                        "client_addr": client_addr,
                        "reason": reason,
                        "subject": subject_hint,
                    }
                )
            )

    def _start(self, batch: Batch, info: SessionInfo, mono: float) -> None:
        ident = info.identity
        batch.sessions.append(
            (
                str(info.session_id),
                float(info.started_at),
                clean_text(ident.subject),
                _text(ident.email),
                json_text(sorted(ident.groups)),
                _text(ident.issuer),
                _text(info.client_addr),
                _text(info.application_name),
                clean_text(info.target),
                clean_text(info.protocol),
                self.head.chain_id,
            )
        )
        batch.events.append(
            (
                info.session_id,
                mono,
                EventKind.SESSION_START,
                None,
                _data_json({"at": info.started_at}),
            )
        )
        fields = _identity_fields(info)
        fields.update(
            kind=AuditKind.SESSION_START.value, at=info.started_at, session_id=info.session_id
        )
        batch.audit.append(self.head.seal(fields))

    def _statement(self, batch: Batch, rec: StatementRecord, info: SessionInfo | None) -> None:
        operations = list(rec.operations)
        params = None if rec.params is None else list(rec.params)
        batch.events.append(
            (
                str(rec.session_id),
                float(rec.mono),
                EventKind.STATEMENT,
                int(rec.seq),
                _data_json(
                    {
                        "seq": rec.seq,
                        "at": rec.at,
                        "sql": rec.sql,
                        "params": params,
                        "category": rec.category,
                        "operations": operations,
                        "decision": rec.decision,
                        "policy": rec.policy,
                        "rule": rec.rule,
                        "reason": rec.reason,
                        "approval_id": rec.approval_id,
                    }
                ),
            )
        )
        fields = _identity_fields(info)
        fields.update(
            kind=AuditKind.STATEMENT.value,
            at=rec.at,
            session_id=rec.session_id,
            statement_seq=rec.seq,
            sql=rec.sql,
            params=None if params is None else json_text([_text(p) for p in params]),
            category=rec.category,
            operations=json_text(operations),
            decision=rec.decision,
            policy=rec.policy,
            rule=rec.rule,
            reason=rec.reason,
            approval_id=rec.approval_id,
        )
        batch.audit.append(self.head.seal(fields))

    def _outcome(self, batch: Batch, out: StatementOutcome, at: float, mono: float) -> None:
        batch.events.append(
            (
                str(out.session_id),
                mono,
                EventKind.OUTCOME,
                int(out.seq),
                _data_json(
                    {
                        "seq": out.seq,
                        "duration_ms": out.duration_ms,
                        "rows": out.rows,
                        "command_tag": out.command_tag,
                        "sqlstate": out.sqlstate,
                        "error_message": out.error_message,
                    }
                ),
            )
        )
        batch.audit.append(
            self.head.seal(
                {
                    "kind": AuditKind.OUTCOME.value,
                    "at": at,
                    "session_id": out.session_id,
                    "statement_seq": out.seq,
                    "row_count": out.rows,
                    "duration_ms": out.duration_ms,
                    "command_tag": out.command_tag,
                    "sqlstate": out.sqlstate,
                    "error_message": out.error_message,
                }
            )
        )

    def _end(
        self,
        batch: Batch,
        session_id: str,
        at: float,
        reason: str,
        mono: float,
        info: SessionInfo | None,
    ) -> None:
        batch.session_ends.append((float(at), clean_text(str(reason)), str(session_id)))
        batch.events.append(
            (
                session_id,
                mono,
                EventKind.SESSION_END,
                None,
                _data_json({"at": at, "reason": reason}),
            )
        )
        fields = _identity_fields(info)
        fields.update(kind=AuditKind.SESSION_END.value, at=at, session_id=session_id, reason=reason)
        batch.audit.append(self.head.seal(fields))


async def write_batch(store: Store, batch: Batch, builder: BatchBuilder) -> None:
    """All of a batch or nothing, in one transaction."""
    async with store.transaction() as tx:
        await tx.executemany(_INSERT_SESSION, batch.sessions)
        await tx.executemany(_INSERT_EVENT, batch.events)
        await tx.executemany(
            _INSERT_AUDIT, [tuple(r[c] for c in STORED_COLUMNS) for r in batch.audit]
        )
        await tx.executemany(_END_SESSION, batch.session_ends)
        await tx.execute(
            _UPSERT_CHAIN,
            (
                builder.head.chain_id,
                builder.writer,
                builder.started_at,
                time.time(),
                batch.head_seq,
                batch.head_hash,
                GENESIS_HASH,
                batch.number,
            ),
        )


async def batch_committed(store: Store, chain_id: str, number: int) -> bool:
    """Whether batch `number` reached the store although its commit reported an error."""
    last = await store.fetchval(
        "SELECT last_batch FROM audit_chains WHERE chain_id = ?", (chain_id,)
    )
    return last is not None and int(last) >= number
