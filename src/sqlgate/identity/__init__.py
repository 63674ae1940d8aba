"""OIDC identity: token validation, JWKS caching, login throttling and the dev issuer."""

from sqlgate.identity.authenticator import Authenticator, TokenAuthenticator
from sqlgate.identity.dev_issuer import (
    DEV_AUDIENCE,
    DEV_ISSUER_PATH,
    DevIssuer,
    dev_issuer_routes,
    dev_issuer_url,
    dev_issuer_validator,
)
from sqlgate.identity.jwks import JwksCache, KeyIndex, KeySource, StaticKeys
from sqlgate.identity.oidc import (
    MAX_TOKEN_BYTES,
    MultiIssuerValidator,
    TokenValidator,
    TokenVerifier,
)
from sqlgate.identity.ratelimit import FailedLoginLimiter

__all__ = [
    "DEV_AUDIENCE",
    "DEV_ISSUER_PATH",
    "MAX_TOKEN_BYTES",
    "Authenticator",
    "DevIssuer",
    "FailedLoginLimiter",
    "JwksCache",
    "KeyIndex",
    "KeySource",
    "MultiIssuerValidator",
    "StaticKeys",
    "TokenAuthenticator",
    "TokenValidator",
    "TokenVerifier",
    "dev_issuer_routes",
    "dev_issuer_url",
    "dev_issuer_validator",
]
