"""TokenAuthenticator: the limiter comes first, then the token, and failures are counted."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey

from sqlgate.config import OidcConfig
from sqlgate.core import Identity
from sqlgate.errors import AuthenticationFailed
from sqlgate.identity import (
    Authenticator,
    FailedLoginLimiter,
    StaticKeys,
    TokenAuthenticator,
    TokenValidator,
)

from ._support import AUDIENCE, FakeClock, default_claims, sign

ISSUER = "https://idp.example.com/realms/test"
ADDR = "192.0.2.10"


class CountingValidator:
    """The real validator, counting how often the authenticator reaches it."""

    def __init__(self, inner: TokenValidator) -> None:
        self.inner = inner
        self.calls = 0

    async def validate(self, token: str) -> Identity:
        self.calls += 1
        return await self.inner.validate(token)


class BrokenValidator:
    async def validate(self, token: str) -> Identity:
        raise RuntimeError("bug")


@pytest.fixture
def validator(ec_key: ECKey) -> CountingValidator:
    public = ECKey.import_key(ec_key.as_dict(private=False))
    config = OidcConfig(issuer=ISSUER, audience=AUDIENCE)
    return CountingValidator(TokenValidator(config, StaticKeys([public])))


@pytest.fixture
def limiter() -> FailedLoginLimiter:
    return FailedLoginLimiter(3, clock=FakeClock())


async def test_good_token_logs_in(
    validator: CountingValidator, limiter: FailedLoginLimiter, ec_key: ECKey
) -> None:
    auth: Authenticator = TokenAuthenticator(validator, limiter)
    identity = await auth.authenticate(sign(ec_key, default_claims(ISSUER)) + "\n", ADDR)
    assert identity.subject == "agent-1"


async def test_empty_password_is_refused(
    validator: CountingValidator, limiter: FailedLoginLimiter
) -> None:
    auth = TokenAuthenticator(validator, limiter)
    for password in ("", "  \n"):
        with pytest.raises(AuthenticationFailed, match="empty password"):
            await auth.authenticate(password, ADDR)
    assert validator.calls == 0


async def test_repeated_failures_block_the_source_before_validation(
    validator: CountingValidator, limiter: FailedLoginLimiter, ec_key: ECKey
) -> None:
    auth = TokenAuthenticator(validator, limiter)
    expired = sign(ec_key, default_claims(ISSUER, exp=1))
    for _ in range(3):
        with pytest.raises(AuthenticationFailed, match="expired"):
            await auth.authenticate(expired, ADDR)
    assert validator.calls == 3
    good = sign(ec_key, default_claims(ISSUER))
    with pytest.raises(AuthenticationFailed, match="rate limited"):
        await auth.authenticate(good, ADDR)
    assert validator.calls == 3  # refused without touching the token
    assert (await auth.authenticate(good, "192.0.2.11")).subject == "agent-1"


async def test_success_resets_the_failure_count(
    validator: CountingValidator, limiter: FailedLoginLimiter, ec_key: ECKey
) -> None:
    auth = TokenAuthenticator(validator, limiter)
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("garbage", ADDR)
    await auth.authenticate(sign(ec_key, default_claims(ISSUER)), ADDR)
    for _ in range(2):
        with pytest.raises(AuthenticationFailed, match="malformed token"):
            await auth.authenticate("garbage", ADDR)
    assert not limiter.is_blocked(ADDR)


async def test_unexpected_error_refuses_the_login(limiter: FailedLoginLimiter) -> None:
    auth = TokenAuthenticator(BrokenValidator(), limiter)
    with pytest.raises(AuthenticationFailed, match="internal error"):
        await auth.authenticate("a.b.c", ADDR)
