"""Audit settings read from the config, with fallbacks for keys config.py does not have yet.

The fallbacks mirror the defaults proposed for an `AuditConfig` section; once config.py
defines a key, its value wins and the fallback is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlgate.config import Config

SinkKind = Literal["none", "stdout", "syslog"]


@dataclass(frozen=True, slots=True)
class AuditSettings:
    sink: SinkKind = "none"
    retention_days: float | None = None  # None: keep forever
    readers: tuple[str, ...] = ()  # empty: the approvers' groups

    @classmethod
    def from_config(cls, config: Config) -> AuditSettings:
        section = getattr(config, "audit", None)
        sink = str(getattr(section, "sink", "none"))
        if sink not in ("none", "stdout", "syslog"):
            sink = "none"
        retention = getattr(section, "retention_days", None)
        return cls(
            sink=sink,  # type: ignore[arg-type]
            retention_days=None if retention is None else float(retention),
            readers=tuple(getattr(section, "readers", None) or ()),
        )


def audit_readers(config: Config) -> frozenset[str]:
    """Groups allowed to read the audit API: `audit.readers`, else the approvers' groups."""
    readers = AuditSettings.from_config(config).readers
    if readers:
        return frozenset(readers)
    approvals = getattr(config, "approvals", None)
    return frozenset(getattr(approvals, "approvers", None) or ())
