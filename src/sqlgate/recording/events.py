"""What the proxy tells the recorder: typed, already-masked, serialisable events.

The recorder never sees unmasked data: the caller masks parameters, rows and error texts
before building these objects. `RecordingEvent`'s helper constructors fix the `data` shapes
that `replay` and the API read back, so every producer writes the same layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlgate.core import Identity


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A client session that passed login."""

    session_id: str  # uuid4 hex, made by the caller
    started_at: float  # time.time()
    identity: Identity
    client_addr: str
    application_name: str | None
    target: str
    protocol: str  # "postgres" | "mysql"


@dataclass(frozen=True, slots=True)
class StatementRecord:
    """One statement as judged: one audit record and one recording event."""

    session_id: str
    seq: int  # per-session statement counter
    at: float  # time.time() when received
    mono: float  # time.monotonic() when received (recording timing)
    sql: str
    params: tuple[str | None, ...] | None  # Bind parameters, already masked by the caller
    category: str | None
    operations: tuple[str, ...]
    decision: str  # allow | block | review
    policy: str | None
    rule: int | None
    reason: str
    approval_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatementOutcome:
    """How a statement ended; chained into the audit trail as its own record."""

    session_id: str
    seq: int
    duration_ms: float
    rows: int | None  # rows returned/affected (from CommandComplete)
    command_tag: str | None
    sqlstate: str | None  # error, if any
    error_message: str | None  # already free of masked values


class EventKind:
    """The `kind` values replay understands; other kinds are stored and shown raw."""

    SESSION_START = "session_start"
    SESSION_END = "session_end"
    STATEMENT = "statement"
    OUTCOME = "outcome"
    COLUMNS = "columns"
    ROWS = "rows"
    NOTICE = "notice"
    APPROVAL_WAIT = "approval_wait"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RecordingEvent:
    """A free-form recording event. `data` must be JSON-serialisable, masked, capped, and
    not mutated after it is handed to the recorder (it is serialised later, off the hot path).
    """

    session_id: str
    mono: float
    kind: str
    data: dict[str, Any]

    @classmethod
    def columns(
        cls,
        session_id: str,
        mono: float,
        seq: int,
        names: Sequence[str],
        type_names: Sequence[str] | None = None,
    ) -> RecordingEvent:
        """A result's description (names, optionally type names) for statement `seq`."""
        data: dict[str, Any] = {"seq": seq, "columns": list(names)}
        if type_names is not None:
            data["types"] = list(type_names)
        return cls(session_id, mono, EventKind.COLUMNS, data)

    @classmethod
    def rows(
        cls,
        session_id: str,
        mono: float,
        seq: int,
        rows: Sequence[Sequence[Any]],
        *,
        truncated: bool = False,
    ) -> RecordingEvent:
        """A batch of (masked) rows; `truncated` once the row cap cut the rest off."""
        return cls(
            session_id,
            mono,
            EventKind.ROWS,
            {"seq": seq, "rows": [list(r) for r in rows], "truncated": truncated},
        )

    @classmethod
    def notice(
        cls, session_id: str, mono: float, severity: str, message: str, seq: int | None = None
    ) -> RecordingEvent:
        return cls(
            session_id,
            mono,
            EventKind.NOTICE,
            {"seq": seq, "severity": severity, "message": message},
        )

    @classmethod
    def approval_wait(
        cls, session_id: str, mono: float, seq: int, approval_id: str, state: str
    ) -> RecordingEvent:
        """`state`: waiting, approved, denied, expired or cancelled."""
        return cls(
            session_id,
            mono,
            EventKind.APPROVAL_WAIT,
            {"seq": seq, "approval_id": approval_id, "state": state},
        )

    @classmethod
    def error(
        cls, session_id: str, mono: float, sqlstate: str | None, message: str, seq: int | None
    ) -> RecordingEvent:
        """An error outside a statement's outcome (e.g. the server connection broke)."""
        return cls(
            session_id,
            mono,
            EventKind.ERROR,
            {"seq": seq, "sqlstate": sqlstate, "message": message},
        )
