"""Fixtures: a real OIDC issuer on loopback, keys, and a validator wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from joserfc.jwk import ECKey, RSAKey

from sqlgate.config import OidcConfig
from sqlgate.identity import JwksCache, TokenValidator

from ._support import AUDIENCE, FakeClock, FakeIdp


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture(scope="session")
def rsa_key_2() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})


@pytest.fixture(scope="session")
def impostor_key() -> RSAKey:
    """A different RSA key that claims the kid of `rsa_key`."""
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(rsa_key: RSAKey, ec_key: ECKey) -> Iterator[FakeIdp]:
    server = FakeIdp()
    server.publish(rsa_key, ec_key)
    yield server
    server.stop()


@pytest.fixture
def oidc_config(idp: FakeIdp) -> OidcConfig:
    return OidcConfig(
        issuer=idp.issuer,
        audience=AUDIENCE,
        jwks_min_refresh_seconds=30,
        jwks_max_age_seconds=3600,
        http_timeout_seconds=2,
    )


@pytest.fixture
async def cache(oidc_config: OidcConfig, clock: FakeClock) -> AsyncIterator[JwksCache]:
    jwks = JwksCache(oidc_config, clock=clock)
    await jwks.start()
    yield jwks
    await jwks.aclose()


@pytest.fixture
def validator(oidc_config: OidcConfig, cache: JwksCache) -> TokenValidator:
    return TokenValidator(oidc_config, cache)
