"""JwksCache over real HTTP: discovery, rotation, rate-limited refetch, IdP outages."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from sqlgate.config import OidcConfig
from sqlgate.errors import AuthenticationFailed
from sqlgate.identity import JwksCache, TokenValidator

from ._support import AUDIENCE, FakeClock, FakeIdp, default_claims, sign


async def test_discovery_finds_the_jwks(idp: FakeIdp, cache: JwksCache) -> None:
    assert cache.ready
    assert idp.discovery_requests == 1
    assert idp.jwks_requests == 1
    assert cache.index is not None and cache.index.kids == {"rsa-1", "ec-1"}


async def test_explicit_jwks_uri_skips_discovery(
    idp: FakeIdp, rsa_key: RSAKey, clock: FakeClock
) -> None:
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE, jwks_uri=idp.jwks_uri)
    cache = JwksCache(config, clock=clock)
    await cache.start()
    try:
        identity = await TokenValidator(config, cache).validate(
            sign(rsa_key, default_claims(idp.issuer))
        )
        assert identity.subject == "agent-1"
        assert idp.discovery_requests == 0
        assert idp.jwks_requests == 1
    finally:
        await cache.aclose()


async def test_rotated_key_validates_after_one_refetch(
    idp: FakeIdp,
    cache: JwksCache,
    validator: TokenValidator,
    clock: FakeClock,
    rsa_key: RSAKey,
    rsa_key_2: RSAKey,
) -> None:
    idp.publish(rsa_key_2)  # the IdP rotates: new kid, old key gone
    clock.advance(31)
    token = sign(rsa_key_2, default_claims(idp.issuer))
    assert (await validator.validate(token)).subject == "agent-1"
    assert idp.jwks_requests == 2
    assert idp.discovery_requests == 1  # the discovered jwks_uri is remembered
    # the key the IdP dropped is no longer trusted
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        await validator.validate(sign(rsa_key, default_claims(idp.issuer)))


async def test_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    idp: FakeIdp, cache: JwksCache, validator: TokenValidator, clock: FakeClock
) -> None:
    clock.advance(31)  # the start-up fetch no longer counts against the interval
    forged = [
        sign(
            RSAKey.generate_key(2048) if i == 0 else ECKey.generate_key("P-256"),
            default_claims(idp.issuer),
            kid=secrets.token_hex(8),
        )
        for i in range(50)
    ]
    before = idp.jwks_requests
    results = await asyncio.gather(*(validator.validate(t) for t in forged), return_exceptions=True)
    assert all(isinstance(r, AuthenticationFailed) for r in results)
    assert {r.reason for r in results if isinstance(r, AuthenticationFailed)} == {"unknown key"}
    assert idp.jwks_requests - before == 1
    # and sequentially, inside the same interval: no more fetches at all
    for token in forged:
        with pytest.raises(AuthenticationFailed, match="unknown key"):
            await validator.validate(token)
    assert idp.jwks_requests - before == 1
    # the next interval allows exactly one more
    clock.advance(31)
    for token in forged[:10]:
        with pytest.raises(AuthenticationFailed, match="unknown key"):
            await validator.validate(token)
    assert idp.jwks_requests - before == 2


async def test_new_kid_right_after_a_fetch_waits_for_the_next_interval(
    idp: FakeIdp,
    cache: JwksCache,
    validator: TokenValidator,
    clock: FakeClock,
    rsa_key: RSAKey,
    rsa_key_2: RSAKey,
) -> None:
    idp.publish(rsa_key, rsa_key_2)
    token = sign(rsa_key_2, default_claims(idp.issuer))
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        await validator.validate(token)  # within 30 s of the start-up fetch
    assert idp.jwks_requests == 1
    clock.advance(30)
    assert (await validator.validate(token)).subject == "agent-1"
    assert idp.jwks_requests == 2


async def test_idp_down_after_start_keeps_known_keys_working(
    idp: FakeIdp,
    cache: JwksCache,
    validator: TokenValidator,
    clock: FakeClock,
    rsa_key: RSAKey,
    ec_key: ECKey,
    rsa_key_2: RSAKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    idp.stop()
    clock.advance(7200)  # past jwks_max_age_seconds: a refresh is due and will fail
    caplog.set_level(logging.WARNING, logger="sqlgate.identity.jwks")
    for key in (rsa_key, ec_key):
        assert (await validator.validate(sign(key, default_claims(idp.issuer)))).subject
    await asyncio.sleep(0)  # let the background refresh run
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        await validator.validate(sign(rsa_key_2, default_claims(idp.issuer)))
    assert cache.ready
    assert "keeping 2 cached keys" in caplog.text
    for key in (rsa_key, ec_key):
        assert (await validator.validate(sign(key, default_claims(idp.issuer)))).subject


async def test_stale_keys_are_refreshed_in_the_background(
    idp: FakeIdp, cache: JwksCache, validator: TokenValidator, clock: FakeClock, rsa_key: RSAKey
) -> None:
    clock.advance(3601)
    token = sign(rsa_key, default_claims(idp.issuer))
    assert (await validator.validate(token)).subject == "agent-1"
    for _ in range(100):
        if idp.jwks_requests == 2:
            break
        await asyncio.sleep(0.01)
    assert idp.jwks_requests == 2
    await validator.validate(token)
    assert idp.jwks_requests == 2  # fresh again


async def test_failed_first_fetch_does_not_crash_and_logins_wait_for_keys(
    idp: FakeIdp, oidc_config: OidcConfig, clock: FakeClock, rsa_key: RSAKey
) -> None:
    idp.status = 503
    cache = JwksCache(oidc_config, clock=clock)
    await cache.start()  # logs, does not raise
    try:
        assert not cache.ready
        validator = TokenValidator(oidc_config, cache)
        token = sign(rsa_key, default_claims(idp.issuer))
        with pytest.raises(AuthenticationFailed, match="signing keys unavailable"):
            await validator.validate(token)
        idp.status = 200
        with pytest.raises(AuthenticationFailed, match="signing keys unavailable"):
            await validator.validate(token)  # still inside the refetch interval
        clock.advance(31)
        assert (await validator.validate(token)).subject == "agent-1"
    finally:
        await cache.aclose()


async def test_unreachable_idp_at_start_is_not_fatal(clock: FakeClock, rsa_key: RSAKey) -> None:
    config = OidcConfig(
        issuer="http://127.0.0.1:9/realms/none", audience=AUDIENCE, http_timeout_seconds=1
    )
    cache = JwksCache(config, clock=clock)
    await cache.start()
    try:
        validator = TokenValidator(config, cache)
        with pytest.raises(AuthenticationFailed, match="signing keys unavailable"):
            await validator.validate(sign(rsa_key, default_claims(config.issuer)))
    finally:
        await cache.aclose()


async def test_http_errors_and_junk_keep_the_cached_keys(
    idp: FakeIdp, cache: JwksCache, validator: TokenValidator, clock: FakeClock, rsa_key: RSAKey
) -> None:
    token = sign(rsa_key, default_claims(idp.issuer))
    broken_documents: list[dict[str, Any]] = [{"keys": []}, {"keys": "nope"}, {"no": "keys"}]
    for broken in broken_documents:
        idp.jwks = broken
        clock.advance(31)
        assert not await cache.refresh()
        assert (await validator.validate(token)).subject == "agent-1"
    idp.status = 500
    assert not await cache.refresh()
    assert (await validator.validate(token)).subject == "agent-1"


async def test_concurrent_waiters_share_one_fetch(
    idp: FakeIdp, oidc_config: OidcConfig, clock: FakeClock, rsa_key: RSAKey
) -> None:
    cache = JwksCache(oidc_config, clock=clock)  # not started: everybody needs the first fetch
    try:
        validator = TokenValidator(oidc_config, cache)
        token = sign(rsa_key, default_claims(idp.issuer))
        results = await asyncio.gather(*(validator.validate(token) for _ in range(20)))
        assert {r.subject for r in results} == {"agent-1"}
        assert idp.jwks_requests == 1
        assert idp.discovery_requests == 1
    finally:
        await cache.aclose()
