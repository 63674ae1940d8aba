"""FailedLoginLimiter with a hand-driven clock."""

from __future__ import annotations

import pytest

from sqlgate.identity import FailedLoginLimiter
from sqlgate.identity.ratelimit import source_key

from ._support import FakeClock


def test_source_is_blocked_after_per_minute_failures() -> None:
    limiter = FailedLoginLimiter(5, clock=FakeClock())
    for _ in range(4):
        limiter.record_failure("10.0.0.1")
        assert not limiter.is_blocked("10.0.0.1")
    limiter.record_failure("10.0.0.1")
    assert limiter.is_blocked("10.0.0.1")
    assert not limiter.is_blocked("10.0.0.2")


def test_block_lifts_as_the_bucket_refills() -> None:
    clock = FakeClock()
    limiter = FailedLoginLimiter(6, clock=clock)  # one failure back every 10 s
    for _ in range(6):
        limiter.record_failure("10.0.0.1")
    clock.advance(9.9)
    assert limiter.is_blocked("10.0.0.1")
    clock.advance(0.2)
    assert not limiter.is_blocked("10.0.0.1")
    limiter.record_failure("10.0.0.1")  # one refilled attempt, used at once
    assert limiter.is_blocked("10.0.0.1")
    clock.advance(60)
    assert not limiter.is_blocked("10.0.0.1")


def test_success_clears_the_record() -> None:
    limiter = FailedLoginLimiter(3, clock=FakeClock())
    for _ in range(3):
        limiter.record_failure("10.0.0.1")
    assert limiter.is_blocked("10.0.0.1")
    limiter.record_success("10.0.0.1")
    assert not limiter.is_blocked("10.0.0.1")
    assert len(limiter) == 0


def test_ipv6_sources_are_counted_per_64() -> None:
    limiter = FailedLoginLimiter(2, clock=FakeClock())
    limiter.record_failure("2001:db8:1:2::1")
    limiter.record_failure("2001:db8:1:2:ffff::9")
    assert limiter.is_blocked("2001:db8:1:2::77")
    assert not limiter.is_blocked("2001:db8:1:3::1")


@pytest.mark.parametrize(
    ("addr", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("[2001:db8::1]", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("/tmp/.s.PGSQL.6432", "/tmp/.s.PGSQL.6432"),
        ("not:an:address", "not:an:address"),
    ],
)
def test_source_key(addr: str, key: str) -> None:
    assert source_key(addr) == key


def test_table_size_is_capped_under_an_address_spray() -> None:
    clock = FakeClock()
    limiter = FailedLoginLimiter(5, clock=clock, max_entries=100)
    for i in range(10_000):
        limiter.record_failure(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        clock.advance(0.001)
    assert len(limiter) <= 100


def test_recovered_entries_are_forgotten() -> None:
    clock = FakeClock()
    limiter = FailedLoginLimiter(60, clock=clock)
    for i in range(50):
        limiter.record_failure(f"10.0.0.{i}")
    clock.advance(2)  # a single failure refills in one second
    for _ in range(30):
        limiter.record_failure("10.0.1.1")
    assert len(limiter) < 50


def test_per_minute_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FailedLoginLimiter(0)
