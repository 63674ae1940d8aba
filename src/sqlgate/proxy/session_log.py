"""What one session tells the recorder: statements, their outcomes, result columns and rows.

Protocol-neutral on purpose (the MySQL front end uses it too): the caller says when a
statement was received, which response unit (PostgreSQL: one ReadyForQuery) it belongs to,
and what came back. Everything handed over is already masked.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sqlgate.core import Decision, Identity
from sqlgate.recording.events import (
    RecordingEvent,
    SessionInfo,
    StatementOutcome,
    StatementRecord,
)
from sqlgate.recording.recorder import Recorder

WITHHELD = "(server error text withheld: it may quote masked values)"


@dataclass(slots=True)
class _Unit:
    """The statements whose answers end at one response boundary, and what came back."""

    statements: list[tuple[int, float]] = field(default_factory=list)  # (seq, monotonic start)
    rows: int | None = None
    tag: str | None = None
    sqlstate: str | None = None
    message: str | None = None


class SessionLog:
    """Numbers a session's statements and reports them, with outcomes, to the Recorder."""

    def __init__(
        self,
        recorder: Recorder,
        identity: Identity,
        client_addr: str,
        application_name: str | None,
        target: str,
        protocol: str,
        *,
        masked: bool,
    ) -> None:
        self.recorder = recorder
        self.session_id = uuid.uuid4().hex
        self.masked = masked  # error texts and parameters may hold masked values
        self.row_cap = recorder.row_cap
        self._seq = 0
        self._units: dict[int, _Unit] = {}
        self._rows: list[list[str | None]] = []
        self._rows_seq = 0
        self._rows_seen = 0
        self._columns: list[str] | None = None
        self.started = recorder.session_started(
            SessionInfo(self.session_id, time.time(), identity, client_addr, application_name,
                        target, protocol)
        )

    def statement(
        self,
        unit: int,
        sql: str,
        decision: Decision,
        params: tuple[str | None, ...] | None = None,
    ) -> bool:
        """Record a statement; False when the recorder refuses (nothing unrecorded runs)."""
        self._seq += 1
        mono = time.monotonic()
        accepted = self.recorder.statement(StatementRecord(
            self.session_id, self._seq, time.time(), mono, sql,
            ("<masked>",) * len(params) if params is not None and self.masked else params,
            decision.category, tuple(sorted(decision.operations)), decision.verdict.value,
            decision.policy, decision.rule, decision.reason, decision.approval_id,
        ))  # fmt: skip
        if accepted:
            self._units.setdefault(unit, _Unit()).statements.append((self._seq, mono))
        return accepted

    def _current(self, unit: int) -> _Unit | None:
        return self._units.get(unit)

    def columns(self, unit: int, names: list[str]) -> None:
        current = self._current(unit)
        if current is None or not current.statements:
            return
        self._flush_rows()
        self._rows_seq = current.statements[-1][0]
        self._rows_seen = 0
        self._columns = names  # sent with the first batch of rows: one queue item, not two

    def wants_rows(self) -> bool:
        return self._rows_seq != 0 and self._rows_seen < self.row_cap

    def row(self, values: list[str | None]) -> None:
        self._rows_seen += 1
        self._rows.append(values)

    def _flush_rows(self, truncated: bool = False) -> None:
        if self._rows_seq and (self._rows or truncated or self._columns is not None):
            event = RecordingEvent.rows(
                self.session_id, time.monotonic(), self._rows_seq, self._rows,
                truncated=truncated)  # fmt: skip
            if self._columns is not None:
                event.data["columns"] = self._columns
                self._columns = None
            self.recorder.event(event)
        self._rows = []

    def completed(self, unit: int, tag: str) -> None:
        """A CommandComplete: remember the rows affected/returned."""
        current = self._current(unit)
        truncated = self._rows_seen > self.row_cap
        self._flush_rows(truncated)
        self._rows_seq = 0
        if current is None:
            return
        current.tag = tag
        count = tag.rsplit(" ", 1)[-1]
        if count.isdigit():
            current.rows = (current.rows or 0) + int(count)

    def failed(self, unit: int, sqlstate: str, message: str, *, ours: bool = False) -> None:
        current = self._current(unit)
        if current is None or current.sqlstate is not None:
            return
        current.sqlstate = sqlstate
        current.message = message if ours or not self.masked else WITHHELD

    def unit_done(self, unit: int) -> None:
        """The response boundary: every statement of the unit gets its outcome."""
        self._flush_rows(self._rows_seen > self.row_cap)
        self._rows_seq = 0
        current = self._units.pop(unit, None)
        if current is None:
            return
        now = time.monotonic()
        for seq, start in current.statements:
            self.recorder.outcome(StatementOutcome(
                self.session_id, seq, (now - start) * 1000, current.rows, current.tag,
                current.sqlstate, current.message))  # fmt: skip

    def closed(self, reason: str) -> None:
        self._flush_rows()
        self.recorder.session_ended(self.session_id, time.time(), reason)
