"""Recording settings read from the config, with fallbacks for keys config.py lacks yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlgate.config import Config


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    max_rows_per_statement: int = 100
    retention_days: float | None = None  # None: keep forever

    @classmethod
    def from_config(cls, config: Config) -> RecordingSettings:
        section = getattr(config, "recording", None)
        retention = getattr(section, "retention_days", None)
        return cls(
            max_rows_per_statement=int(getattr(section, "max_rows_per_statement", 100)),
            retention_days=None if retention is None else float(retention),
        )
