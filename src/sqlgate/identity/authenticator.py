"""What the proxy calls at login: the client's password (its token) in, an Identity out.

The proxy knows only the `Authenticator` protocol, so tests and future login methods can
stand in for the token check without touching protocol code.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlgate.core import Identity
from sqlgate.errors import AuthenticationFailed
from sqlgate.identity.oidc import TokenVerifier
from sqlgate.identity.ratelimit import FailedLoginLimiter

__all__ = ["Authenticator", "TokenAuthenticator"]

logger = logging.getLogger(__name__)


class Authenticator(Protocol):
    """Proves who a client is from the password it sent."""

    async def authenticate(self, password: str, client_addr: str) -> Identity:
        """The client's Identity, or AuthenticationFailed(reason) for the log and audit."""
        ...


class TokenAuthenticator:
    """Treats the password as an OIDC token; throttles sources that keep failing."""

    def __init__(self, validator: TokenVerifier, limiter: FailedLoginLimiter) -> None:
        self._validator = validator
        self._limiter = limiter

    async def authenticate(self, password: str, client_addr: str) -> Identity:
        # A throttled source is refused before any parsing or signature work: that work is
        # exactly what the limiter exists to cap. Refusals do not extend the block.
        if self._limiter.is_blocked(client_addr):
            raise AuthenticationFailed("rate limited")
        # Tokens contain no whitespace; a trailing newline from a token file is a common slip.
        token = password.strip()
        try:
            if not token:
                raise AuthenticationFailed("empty password")
            identity = await self._validator.validate(token)
        except AuthenticationFailed as exc:
            self._limiter.record_failure(client_addr)
            logger.debug("login from %s refused: %s", client_addr, exc.reason)
            raise
        except Exception:
            # A bug must refuse the login, loudly, rather than take the connection handler down.
            logger.exception(
                "token validation failed unexpectedly for a login from %s", client_addr
            )
            raise AuthenticationFailed("internal error") from None
        self._limiter.record_success(client_addr)
        return identity
