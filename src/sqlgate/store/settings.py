"""Store settings read from the config, with fallbacks for keys config.py does not have yet.

The fallbacks mirror the defaults proposed for `StoreConfig`; once config.py defines a key,
its value (and its default) wins and the fallback here is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlgate.config import Config


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str = "sqlite:///sqlgate.db"
    queue_size: int = 10_000
    on_full: Literal["block", "drop"] = "block"
    batch_size: int = 500
    flush_interval_seconds: float = 0.05
    pool_size: int = 4
    purge_interval_seconds: float = 3600.0

    @classmethod
    def from_config(cls, config: Config) -> StoreSettings:
        section = getattr(config, "store", None)
        base = cls()
        on_full = str(getattr(section, "on_full", base.on_full))
        return cls(
            url=str(getattr(section, "url", base.url)),
            queue_size=int(getattr(section, "queue_size", base.queue_size)),
            on_full="drop" if on_full == "drop" else "block",
            batch_size=int(getattr(section, "batch_size", base.batch_size)),
            flush_interval_seconds=float(
                getattr(section, "flush_interval_seconds", base.flush_interval_seconds)
            ),
            pool_size=int(getattr(section, "pool_size", base.pool_size)),
            purge_interval_seconds=float(
                getattr(section, "purge_interval_seconds", base.purge_interval_seconds)
            ),
        )
