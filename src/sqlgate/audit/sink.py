"""Mirror each committed audit record outside the store (stdout or syslog).

A copy held elsewhere, hashes included, is what catches someone who rewrites the store
*and* recomputes the chain: the mirrored hashes no longer match. Sinks are called from a
worker thread, after the batch commits, so a slow pipe never stalls the event loop.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Protocol

from sqlgate.audit.chain import canonical_json


class AuditSink(Protocol):
    def emit(self, records: Sequence[dict[str, Any]]) -> None:
        """Write the records, one JSON object per line (blocking; runs in a thread)."""
        ...


def _lines(records: Sequence[dict[str, Any]]) -> list[str]:
    return [canonical_json({"sqlgate_audit": r}).decode("utf-8") for r in records]


class StdoutSink:
    def emit(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            sys.stdout.write("\n".join(_lines(records)) + "\n")
            sys.stdout.flush()


class SyslogSink:
    def __init__(self) -> None:
        import syslog

        self._syslog = syslog
        syslog.openlog("sqlgate-audit", syslog.LOG_PID, syslog.LOG_AUTH)

    def emit(self, records: Sequence[dict[str, Any]]) -> None:
        for line in _lines(records):
            self._syslog.syslog(self._syslog.LOG_INFO, line)


def make_sink(kind: str) -> AuditSink | None:
    """The sink for `audit.sink` (none, stdout, syslog)."""
    if kind == "stdout":
        return StdoutSink()
    if kind == "syslog":
        return SyslogSink()
    return None
