"""Bearer-token authorization for the admin API: the same OIDC tokens as database logins."""

from __future__ import annotations

from collections.abc import Collection

from starlette.exceptions import HTTPException
from starlette.requests import Request

from sqlgate.core import Identity
from sqlgate.errors import AuthenticationFailed
from sqlgate.identity import TokenVerifier


async def require_identity(
    request: Request, verifier: TokenVerifier, groups: Collection[str]
) -> Identity:
    """The caller's identity; 401 without a valid token, 403 outside `groups`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "send an OIDC token as `Authorization: Bearer <token>`")
    try:
        identity = await verifier.validate(token.strip())
    except AuthenticationFailed:
        raise HTTPException(401, "invalid token") from None
    if not identity.groups & frozenset(groups):
        raise HTTPException(403, "your groups do not allow this operation")
    return identity
