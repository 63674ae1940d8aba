"""OIDC token (JWT) validation: the password a client sends becomes an Identity, or is refused.

Order matters for safety: everything decided from the unverified header (size, shape,
algorithm, key) happens before any key is touched, and every claim is judged only after the
signature holds, so a forged token learns nothing beyond "algorithm not allowed", "unknown
key" or "bad signature".

Decisions worth knowing:

- Only `OidcConfig.algorithms` are accepted, and never `none` or HMAC, whatever the config
  says; keys are matched to the algorithm by type and curve (see `jwks.KeyIndex`).
- `crit` and `b64` headers are refused: a JWT has no use for JWS extensions. A `typ` header,
  when present, must say JWT (`JWT`, `at+jwt`, optionally `application/`-prefixed), so other
  JWTs the IdP signs (logout tokens, security events) cannot be replayed as logins.
- JSON with duplicate member names or non-finite numbers (`NaN`, `Infinity`, `1e999`) is
  malformed: an `exp` of Infinity would otherwise never expire.
- Groups: `groups_claim` is first looked up as a claim name verbatim (namespaced claims such as
  `https://example.com/roles` contain dots), then as a dotted path (`realm_access.roles`).
  A string value is ONE group (names may contain spaces or commas); a list contributes its
  string items; anything else means no groups.
- Email: the `email` claim only, and not when `email_verified` is explicitly false. No
  fallback to `preferred_username`: that is often user-chosen and is not an address, and
  policies and approvers match on email.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key

from sqlgate.config import OidcConfig
from sqlgate.core import Identity
from sqlgate.errors import AuthenticationFailed
from sqlgate.identity.jwks import ASYMMETRIC_ALGORITHMS, KeySource

__all__ = ["MAX_TOKEN_BYTES", "MultiIssuerValidator", "TokenValidator", "TokenVerifier"]

#: Real tokens are 1-4 KiB; anything this large is an attack or a mistake.
MAX_TOKEN_BYTES = 16 * 1024
_MAX_HEADER_SEGMENT = 2048
_ALLOWED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_REFUSED_HEADERS = ("crit", "b64")


class TokenVerifier(Protocol):
    """Anything that turns a token into an Identity or raises AuthenticationFailed."""

    async def validate(self, token: str) -> Identity: ...


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


_DECODER = json.JSONDecoder(object_pairs_hook=_strict_object, parse_constant=_no_constants)


def _loads_object(data: bytes) -> dict[str, Any]:
    """Strict JSON object: UTF-8, no duplicate names, no NaN/Infinity."""
    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise AuthenticationFailed("malformed token") from None
    if not isinstance(value, dict):
        raise AuthenticationFailed("malformed token")
    return value


def _b64decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("malformed token") from None


def _split(token: str, max_bytes: int = MAX_TOKEN_BYTES) -> list[str]:
    if not token:
        raise AuthenticationFailed("empty token")
    if len(token) > max_bytes:
        raise AuthenticationFailed("token too large")
    if not token.isascii():
        raise AuthenticationFailed("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0]:
        raise AuthenticationFailed("malformed token")
    return parts


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationFailed(f"invalid claim: {name}")
    try:
        number = float(value)
    except OverflowError:
        raise AuthenticationFailed(f"invalid claim: {name}") from None
    if not math.isfinite(number):
        raise AuthenticationFailed(f"invalid claim: {name}")
    return number


def _lookup_path(claims: dict[str, Any], path: str, parts: tuple[str, ...]) -> object:
    if path in claims:
        return claims[path]
    node: object = claims
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _as_groups(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset((value,)) if value else frozenset()
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()


class TokenValidator:
    """Validates tokens of one issuer against keys from a KeySource (JwksCache, StaticKeys)."""

    def __init__(
        self,
        config: OidcConfig,
        keys: KeySource,
        *,
        clock: Callable[[], float] = time.time,
        max_token_bytes: int = MAX_TOKEN_BYTES,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._max_token_bytes = max_token_bytes
        self.issuer = config.issuer
        self._leeway = float(config.leeway_seconds)
        audience = config.audience
        self._audience = frozenset((audience,) if isinstance(audience, str) else audience)
        self._groups_path = config.groups_claim
        self._groups_parts = tuple(config.groups_claim.split("."))
        # Belt and braces: the config model already refuses these, but a validator built by
        # hand (tests, dev issuer) must not be talked into them either.
        self._algorithms = frozenset(a for a in config.algorithms if a in ASYMMETRIC_ALGORITHMS)
        self._registries: dict[str, jws.JWSRegistry] = {}
        for alg in self._algorithms:
            registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
            # Room for x5t/x5c headers and 8192-bit RSA signatures; the total is capped anyway.
            registry.max_header_length = _MAX_HEADER_SEGMENT
            registry.max_signature_length = 2048
            self._registries[alg] = registry

    async def validate(self, token: str) -> Identity:
        """The Identity this token proves, or AuthenticationFailed(reason)."""
        header_segment, payload_segment, signature_segment = _split(token, self._max_token_bytes)
        if len(header_segment) > _MAX_HEADER_SEGMENT:
            raise AuthenticationFailed("malformed token")
        header = _loads_object(_b64decode(header_segment))

        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthenticationFailed("algorithm not allowed")
        for name in _REFUSED_HEADERS:
            if name in header:
                raise AuthenticationFailed(f"unsupported header: {name}")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ALLOWED_TYP):
            raise AuthenticationFailed("wrong token type")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationFailed("malformed token")
        if not payload_segment or not signature_segment:
            raise AuthenticationFailed("malformed token")

        candidates = await self._keys.keys_for(kid, alg)
        payload = self._verify(token, candidates, self._registries[alg])
        return self._identity(_loads_object(payload))

    def _verify(self, token: str, candidates: Sequence[Key], registry: jws.JWSRegistry) -> bytes:
        for key in candidates:
            try:
                obj = jws.deserialize_compact(token, key, registry=registry)
            except BadSignatureError:
                continue
            except (JoseError, ValueError, TypeError):
                raise AuthenticationFailed("malformed token") from None
            if obj.payload is None:
                raise AuthenticationFailed("malformed token")
            return obj.payload
        raise AuthenticationFailed("bad signature")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        iss = claims.get("iss")
        if iss is None:
            raise AuthenticationFailed("missing claim: iss")
        if iss != self.issuer:
            raise AuthenticationFailed("wrong issuer")

        aud = claims.get("aud")
        if aud is None:
            raise AuthenticationFailed("missing claim: aud")
        token_audiences = (aud,) if isinstance(aud, str) else aud if isinstance(aud, list) else ()
        if not any(isinstance(a, str) and a in self._audience for a in token_audiences):
            raise AuthenticationFailed("wrong audience")

        now = self._clock()
        exp = _numeric_date(claims, "exp")
        if exp is None:
            raise AuthenticationFailed("missing claim: exp")
        if now >= exp + self._leeway:
            raise AuthenticationFailed("expired")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and now + self._leeway < nbf:
            raise AuthenticationFailed("not yet valid")
        iat = _numeric_date(claims, "iat")
        if iat is not None and iat > now + self._leeway:
            raise AuthenticationFailed("issued in the future")

        sub = claims.get("sub")
        if sub is None:
            raise AuthenticationFailed("missing claim: sub")
        if not isinstance(sub, str) or not sub:
            raise AuthenticationFailed("invalid claim: sub")

        email = claims.get("email")
        if not isinstance(email, str) or not email or claims.get("email_verified") is False:
            email = None
        groups = _as_groups(_lookup_path(claims, self._groups_path, self._groups_parts))
        return Identity(
            subject=sub,
            email=email,
            groups=groups,
            issuer=iss,
            expires_at=exp,
            claims=claims,
        )


class MultiIssuerValidator:
    """Routes a token to the validator of its (unverified) `iss`; that validator then proves it.

    For running an IdP and the built-in dev issuer side by side. Reading `iss` before the
    signature is safe because it only picks which keys must verify the token.
    """

    def __init__(self, validators: Sequence[TokenValidator]) -> None:
        self._by_issuer = {v.issuer: v for v in validators}
        if len(self._by_issuer) != len(validators):
            raise ValueError("two validators for the same issuer")

    async def validate(self, token: str) -> Identity:
        if len(self._by_issuer) == 1:
            return await next(iter(self._by_issuer.values())).validate(token)
        payload_segment = _split(token)[1]
        iss = _loads_object(_b64decode(payload_segment)).get("iss")
        validator = self._by_issuer.get(iss) if isinstance(iss, str) else None
        if validator is None:
            raise AuthenticationFailed("wrong issuer" if iss is not None else "missing claim: iss")
        return await validator.validate(token)
