"""Replay a recorded session as a psql-like transcript, or as raw JSON lines.

The transcript shows what the client saw: each statement with the gateway's decision, the
result as a table (rows as recorded: masked and capped), command tags and errors, with the
original pauses scaled by `speed` (0: all at once).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlgate.audit.export import iso_time
from sqlgate.recording.events import EventKind
from sqlgate.recording.sessions import SessionSummary, StoredEvent, iter_events, resolve_session
from sqlgate.store.base import Store

Sleep = Callable[[float], Awaitable[Any]]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return value.replace("\r", "\\r").replace("\n", "\\n")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """psql's aligned format: centred headers, numbers right-aligned, text left-aligned."""
    width = len(columns)
    cells = [[_cell(v) for v in (list(r) + [None] * width)[:width]] for r in rows]
    numeric = [
        bool(rows) and all(
            isinstance(r[i], int | float) and not isinstance(r[i], bool)
            for r in rows if i < len(r) and r[i] is not None
        )
        for i in range(width)
    ]  # fmt: skip
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [
        (" " + " | ".join(c.center(w) for c, w in zip(columns, widths, strict=True))).rstrip(),
        "-" + "-+-".join("-" * w for w in widths) + "-",
    ]
    for row in cells:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(row, widths, numeric, strict=True)
        ]
        lines.append((" " + " | ".join(parts)).rstrip())
    return lines


def _column_names(data: dict[str, Any]) -> list[str]:
    names = []
    for column in data.get("columns") or []:
        names.append(str(column.get("name", "?")) if isinstance(column, dict) else str(column))
    return names


@dataclass(slots=True)
class _Result:
    columns: list[str] | None = None
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    shown: bool = False


class TranscriptRenderer:
    """Turns events into transcript lines; results are printed once their outcome arrives."""

    def __init__(self, session: SessionSummary) -> None:
        self.session = session
        self.prompt = f"{session.target}=> "
        self.more = f"{session.target}-> "  # psql's continuation prompt
        self._start_mono: float | None = None
        self._last_seq: int | None = None
        self._results: dict[int, _Result] = {}

    def header(self) -> list[str]:
        s = self.session
        groups = ", ".join(s.groups) or "none"
        who = s.email or s.subject
        app = f", application {s.application_name}" if s.application_name else ""
        return [
            f"-- sqlgate session {s.session_id}",
            f"-- connected {iso_time(s.started_at)}: {who} (sub {s.subject}; groups {groups}) "
            f"from {s.client_addr or '?'} to target {s.target!r} ({s.protocol}){app}",
        ]

    def render(self, event: StoredEvent) -> list[str]:
        if self._start_mono is None:
            self._start_mono = event.mono
        data = event.data
        kind = event.kind
        if kind == EventKind.SESSION_START:
            return []
        if kind == EventKind.STATEMENT:
            return self._statement(event, data)
        if kind == EventKind.COLUMNS:
            self._result(data).columns = _column_names(data)
            return []
        if kind == EventKind.ROWS:
            result = self._result(data)
            if data.get("columns") is not None:  # rows events may carry their header
                result.columns = _column_names(data)
            result.rows.extend(list(r) for r in data.get("rows") or [])
            result.truncated = result.truncated or bool(data.get("truncated"))
            return []
        if kind == EventKind.OUTCOME:
            return self._outcome(data)
        if kind == EventKind.NOTICE:
            return [f"{str(data.get('severity') or 'NOTICE').upper()}:  {data.get('message')}"]
        if kind == EventKind.APPROVAL_WAIT:
            return [f"-- approval {data.get('approval_id')}: {data.get('state')}"]
        if kind == EventKind.ERROR:
            return [_error_line(data.get("sqlstate"), data.get("message"))]
        if kind == EventKind.SESSION_END:
            lines = self._flush_results()
            elapsed = event.mono - self._start_mono
            at = data.get("at")
            when = iso_time(at) if isinstance(at, int | float) else "?"
            return [*lines, "", f"-- disconnected {when}: {data.get('reason')} "
                    f"(after {elapsed:.1f}s)"]  # fmt: skip
        return [f"-- {kind}: {json.dumps(data, ensure_ascii=False, default=str)}"]

    def finish(self) -> list[str]:
        """Results whose outcome never came (the session died first)."""
        return self._flush_results()

    def _result(self, data: dict[str, Any]) -> _Result:
        seq = data.get("seq")
        return self._results.setdefault(seq if isinstance(seq, int) else -1, _Result())

    def _statement(self, event: StoredEvent, data: dict[str, Any]) -> list[str]:
        lines = [""]
        seq = data.get("seq")
        self._last_seq = seq if isinstance(seq, int) else None
        sql = str(data.get("sql") or "").strip()
        if not sql.endswith(";"):
            sql += ";"
        first, *more = sql.splitlines() or [""]
        lines.append(self.prompt + first)
        lines.extend(self.more + line for line in more)
        params = data.get("params")
        if params:
            shown = ", ".join(
                f"${i}=" + ("NULL" if p is None else _quote(str(p)))
                for i, p in enumerate(params, 1)
            )
            lines.append(f"-- params: {shown}")
        offset = event.mono - (self._start_mono or event.mono)
        rule = data.get("rule")
        where = ""
        if data.get("policy"):
            where = f" by policy {data['policy']}, " + (f"rule {rule}" if rule else "default")
        approval = f", approval {data['approval_id']}" if data.get("approval_id") else ""
        lines.append(
            f"-- #{data.get('seq')} {str(data.get('decision', '?')).upper()}{where}{approval}: "
            f"{data.get('reason')} [+{offset:.3f}s]"
        )
        if data.get("decision") == "block":
            self._results.pop(int(data.get("seq") or -1), None)
        return lines

    def _outcome(self, data: dict[str, Any]) -> list[str]:
        seq = data.get("seq")
        result = self._results.pop(seq if isinstance(seq, int) else -1, None)
        # Pipelined clients send several statements before the first result comes back.
        lines = [] if seq == self._last_seq else [f"-- result of #{seq}:"]
        if result is not None:
            lines += self._table(result, data.get("rows"))
        if data.get("sqlstate") or data.get("error_message"):
            lines.append(_error_line(data.get("sqlstate"), data.get("error_message")))
        elif (result is None or result.columns is None) and data.get("command_tag"):
            lines.append(str(data["command_tag"]))
        duration = data.get("duration_ms")
        if isinstance(duration, int | float):
            lines.append(f"-- {duration:.1f} ms")
        return lines

    def _table(self, result: _Result, total: Any) -> list[str]:
        if result.columns is None:
            return []
        lines = format_table(result.columns, result.rows)
        count = len(result.rows)
        noun = "row" if count == 1 else "rows"
        if isinstance(total, int) and total > count:
            lines.append(f"({count} {noun} recorded of {total})")
        elif result.truncated:
            lines.append(f"({count} {noun} recorded; more were not)")
        else:
            lines.append(f"({count} {noun})")
        return lines

    def _flush_results(self) -> list[str]:
        lines: list[str] = []
        for seq in sorted(self._results):
            lines += self._table(self._results[seq], None)
        self._results.clear()
        return lines


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _error_line(sqlstate: Any, message: Any) -> str:
    state = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return f"ERROR:  {message or 'error'}{state}"


async def replay(
    store: Store,
    session_id: str,
    out: TextIO,
    *,
    speed: float = 1.0,
    as_json: bool = False,
    sleep: Sleep = asyncio.sleep,
) -> SessionSummary:
    """Print the session (a full id or a unique prefix) to `out`; JSON lines print at once."""
    session = await resolve_session(store, session_id)
    if as_json:
        summary = {f: getattr(session, f) for f in SessionSummary.__dataclass_fields__}
        out.write(json.dumps({"session": summary}, ensure_ascii=False) + "\n")
        first: float | None = None
        async for event in iter_events(store, session.session_id):
            first = event.mono if first is None else first
            line = {
                "id": event.id,
                "kind": event.kind,
                "seq": event.statement_seq,
                "offset_s": round(event.mono - first, 6),
                "data": event.data,
            }
            out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        out.flush()
        return session

    renderer = TranscriptRenderer(session)
    _emit(out, renderer.header())
    previous: float | None = None
    async for event in iter_events(store, session.session_id):
        if speed > 0 and previous is not None and event.mono > previous:
            await sleep((event.mono - previous) / speed)
        previous = event.mono
        _emit(out, renderer.render(event))
    _emit(out, renderer.finish())
    return session


def _emit(out: TextIO, lines: list[str]) -> None:
    if lines:
        out.write("\n".join(lines) + "\n")
        out.flush()
