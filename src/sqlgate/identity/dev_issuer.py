"""A built-in token issuer for trying sqlgate without an IdP. Development only.

It keeps one ES256 (P-256) private key in a JWK file readable only by its owner, mints tokens
with it, and publishes the public half as an ordinary OIDC issuer (discovery document and
JWKS) on the admin listener under `/dev-issuer`, so any OIDC-aware tool can verify them. The
gateway itself verifies dev tokens from the in-memory key (`dev_issuer_validator`), without an
HTTP round trip to itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sqlgate.config import OidcConfig
from sqlgate.errors import ConfigError
from sqlgate.identity.jwks import StaticKeys
from sqlgate.identity.oidc import TokenValidator

__all__ = [
    "DEV_AUDIENCE",
    "DEV_ISSUER_PATH",
    "DevIssuer",
    "dev_issuer_routes",
    "dev_issuer_url",
    "dev_issuer_validator",
]

logger = logging.getLogger(__name__)

DEV_ISSUER_PATH = "/dev-issuer"
DEV_AUDIENCE = "sqlgate"
_ALG = "ES256"
_RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "groups"})


def dev_issuer_url(host: str, port: int) -> str:
    """The issuer URL for an admin listener at host:port (IPv6 hosts get brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}{DEV_ISSUER_PATH}"


class DevIssuer:
    """Mints ES256 tokens for `issuer` with a key that survives restarts."""

    def __init__(self, key: ECKey, issuer: str) -> None:
        if not key.is_private or key.curve_name != "P-256":
            raise ValueError("the dev issuer needs a P-256 private key")
        key.ensure_kid()
        self._key = key
        self.issuer = issuer.rstrip("/")
        self.kid: str = key.kid or ""
        self._public = ECKey.import_key(self._public_jwk())
        self._header = {"alg": _ALG, "kid": self.kid, "typ": "JWT"}

    @classmethod
    def load_or_create(cls, key_file: Path, issuer: str) -> DevIssuer:
        """Load the key from `key_file`, creating it (mode 0600, directory 0700) if missing."""
        key_file = Path(key_file)
        if not key_file.exists():
            _create_key_file(key_file)
        return cls(_load_key(key_file), issuer)

    def mint(
        self,
        sub: str,
        groups: list[str],
        email: str | None = None,
        ttl_seconds: int = 3600,
        audience: str = DEV_AUDIENCE,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed token for `sub`; `extra` adds claims but may not replace the ones set here."""
        if extra:
            clash = _RESERVED_CLAIMS.intersection(extra)
            if clash:
                raise ValueError(f"extra may not set registered claims: {', '.join(sorted(clash))}")
        now = int(time.time())
        claims: dict[str, Any] = dict(extra or {})
        claims.update(
            iss=self.issuer,
            sub=sub,
            aud=audience,
            iat=now,
            nbf=now,
            exp=now + ttl_seconds,
            jti=secrets.token_urlsafe(16),
            groups=list(groups),
        )
        if email is not None:
            claims["email"] = email
        return jwt.encode(self._header, claims, self._key, algorithms=[_ALG])

    def public_keys(self) -> KeySet:
        """The verification key set (public half only)."""
        return KeySet([self._public])

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: public keys only."""
        return {"keys": [self._public_jwk()]}

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider configuration document for this issuer."""
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks.json",
            "id_token_signing_alg_values_supported": [_ALG],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "email", "groups"],
        }

    def _public_jwk(self) -> dict[str, Any]:
        data = dict(self._key.as_dict(private=False))
        data.update(kid=self.kid, use="sig", alg=_ALG)
        return data


def _create_key_file(key_file: Path) -> None:
    key = ECKey.generate_key("P-256", parameters={"use": "sig", "alg": _ALG}, auto_kid=True)
    data = json.dumps(key.as_dict(private=True), indent=2).encode() + b"\n"
    try:
        key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = key_file.with_name(f".{key_file.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            # link() fails if another worker won the race; then its key is the one to use.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, key_file)
                logger.warning(
                    "created a new dev issuer key in %s: dev tokens are for trying sqlgate, "
                    "configure identity.oidc for real use",
                    key_file,
                )
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the dev issuer key file {key_file}: {exc.strerror}; "
            "set identity.dev_issuer_key_file to a writable path"
        ) from None


def _load_key(key_file: Path) -> ECKey:
    try:
        mode = key_file.stat().st_mode
        text = key_file.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the dev issuer key file {key_file}: {exc.strerror}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("dev issuer key file %s is accessible by others: chmod 600 it", key_file)
    try:
        key = ECKey.import_key(json.loads(text))
    except (ValueError, TypeError, JoseError):
        key = None
    if key is None or not key.is_private or key.curve_name != "P-256":
        raise ConfigError(
            f"{key_file} is not a P-256 private key in JWK form; "
            "delete it to have sqlgate create a new one"
        )
    return key


def dev_issuer_routes(issuer: DevIssuer) -> list[Route]:
    """Starlette routes publishing the issuer under /dev-issuer on the admin listener."""

    async def openid_configuration(request: Request) -> Response:
        return JSONResponse(issuer.discovery(), headers={"Cache-Control": "max-age=300"})

    async def jwks(request: Request) -> Response:
        return JSONResponse(issuer.jwks(), headers={"Cache-Control": "max-age=300"})

    return [
        Route(
            f"{DEV_ISSUER_PATH}/.well-known/openid-configuration",
            openid_configuration,
            methods=["GET"],
        ),
        Route(f"{DEV_ISSUER_PATH}/jwks.json", jwks, methods=["GET"]),
    ]


def dev_issuer_validator(
    issuer: DevIssuer,
    *,
    audience: str | list[str] = DEV_AUDIENCE,
    leeway_seconds: int = 30,
    groups_claim: str = "groups",
    clock: Callable[[], float] = time.time,
) -> TokenValidator:
    """A validator for dev tokens that checks them against the in-memory public key."""
    config = OidcConfig(
        issuer=issuer.issuer,
        audience=audience,
        algorithms=[_ALG],
        leeway_seconds=leeway_seconds,
        groups_claim=groups_claim,
    )
    return TokenValidator(config, StaticKeys(issuer.public_keys()), clock=clock)
