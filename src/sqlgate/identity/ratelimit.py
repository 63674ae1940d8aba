"""Failed-login throttling per source address.

Guessing a signed token is hopeless, so this is not about brute force: it caps the signature
checks, JWKS lookups and log lines that one misbehaving or hostile source can cause. Each
address has a token bucket of `per_minute` failures that refills continuously; an address
with an empty bucket is refused before its token is even parsed.

IPv6 sources are counted per /64, because one host usually owns a whole /64 and could
otherwise rotate addresses for free. The table is capped (least recently failing entries go
first) so a spray of addresses cannot grow memory without bound; the price is that a spray
large enough to overflow the cap also forgets older blocks, which is the right trade for a
limiter that only sheds load.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FailedLoginLimiter"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


def source_key(addr: str) -> str:
    """The unit an address is counted in: the address itself, or its /64 for IPv6."""
    if ":" not in addr:
        return addr  # IPv4, a host name or a Unix socket path: counted as is
    try:
        ip = ipaddress.ip_address(addr.strip("[]").partition("%")[0])
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailedLoginLimiter:
    """Allows `per_minute` failed logins per source in a burst, refilling at that rate."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 65_536,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_entries = max_entries
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(self._capacity, bucket.tokens + (now - bucket.updated) * self._rate)

    def is_blocked(self, addr: str) -> bool:
        """True when this source has used up its failures for now."""
        bucket = self._buckets.get(source_key(addr))
        return bucket is not None and self._level(bucket, self._clock()) < 1.0

    def record_failure(self, addr: str) -> None:
        key = source_key(addr)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self._capacity, now)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        before = self._level(bucket, now)
        bucket.tokens = max(0.0, before - 1.0)
        bucket.updated = now
        if before >= 1.0 > bucket.tokens:
            logger.warning("too many failed logins from %s: refusing it for a while", key)
        self._evict(now)

    def record_success(self, addr: str) -> None:
        """A good login clears the source's record (a shared NAT recovers at once)."""
        self._buckets.pop(source_key(addr), None)

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while len(buckets) > self._max_entries:
            buckets.popitem(last=False)
        # Amortised cleanup: the oldest entries are the likeliest to have refilled completely.
        for _ in range(2):
            if not buckets:
                break
            key, oldest = next(iter(buckets.items()))
            if self._level(oldest, now) < self._capacity:
                break
            del buckets[key]
