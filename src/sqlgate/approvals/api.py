"""The approvals HTTP API, mounted on the admin listener.

Every route needs an approver's OIDC token (`Authorization: Bearer ...`): reading a request
shows statement text that can be as sensitive as the data it touches. Errors are JSON
(`{"error": "..."}`) with 400, 401, 403, 404 or 409.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sqlgate.api.auth import require_identity
from sqlgate.core import Identity
from sqlgate.identity import TokenVerifier
from sqlgate.store.approvals import ApprovalStatus

from .errors import ApprovalError
from .views import approval_json

if TYPE_CHECKING:
    from .service import ApprovalService

MAX_REASON_CHARS = 2000
MAX_LIST_LIMIT = 1000
_STATUSES = ", ".join(["all", *(s.value for s in ApprovalStatus)])


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def approval_routes(service: ApprovalService, verifier: TokenVerifier) -> list[BaseRoute]:
    """GET /api/approvals, GET /api/approvals/{id}, POST .../approve and .../deny."""

    async def approver(request: Request) -> Identity | JSONResponse:
        try:
            return await require_identity(request, verifier, service.approver_groups)
        except HTTPException as exc:
            if exc.status_code == 403:
                return _error(403, "only approvers may read or decide approval requests")
            return _error(exc.status_code, exc.detail)

    async def list_requests(request: Request) -> JSONResponse:
        who = await approver(request)
        if isinstance(who, JSONResponse):
            return who
        raw_status = request.query_params.get("status", "all")
        status = None
        if raw_status != "all":
            try:
                status = ApprovalStatus(raw_status)
            except ValueError:
                return _error(400, f"status must be one of {_STATUSES}, not {raw_status!r}")
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return _error(400, "limit must be a whole number")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            return _error(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        found = await service.list_requests(status, limit)
        return JSONResponse({"approvals": [approval_json(a) for a in found]})

    async def show(request: Request) -> JSONResponse:
        who = await approver(request)
        if isinstance(who, JSONResponse):
            return who
        approval_id = request.path_params["approval_id"]
        approval = await service.get(approval_id)
        if approval is None:
            return _error(404, f"no approval request {approval_id}")
        return JSONResponse(approval_json(approval))

    async def decide(request: Request, approve: bool) -> JSONResponse:
        who = await approver(request)
        if isinstance(who, JSONResponse):
            return who
        reason = await _reason(request)
        if isinstance(reason, JSONResponse):
            return reason
        try:
            approval = await service.decide(
                who, request.path_params["approval_id"], approve, reason
            )
        except ApprovalError as exc:
            return _error(exc.status_code, str(exc))
        return JSONResponse(approval_json(approval))

    async def approve(request: Request) -> JSONResponse:
        return await decide(request, True)

    async def deny(request: Request) -> JSONResponse:
        return await decide(request, False)

    return [
        Route("/api/approvals", list_requests, methods=["GET"]),
        Route("/api/approvals/{approval_id}", show, methods=["GET"]),
        Route("/api/approvals/{approval_id}/approve", approve, methods=["POST"]),
        Route("/api/approvals/{approval_id}/deny", deny, methods=["POST"]),
    ]


async def _reason(request: Request) -> str | JSONResponse | None:
    """The optional `{"reason": "..."}` body; an empty body means no reason."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        document: Any = json.loads(body)
    except ValueError:
        return _error(400, 'the body must be JSON like {"reason": "..."}')
    if not isinstance(document, dict):
        return _error(400, 'the body must be a JSON object like {"reason": "..."}')
    reason = document.get("reason")
    if reason is not None and not isinstance(reason, str):
        return _error(400, "reason must be a string")
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        return _error(400, f"reason is longer than {MAX_REASON_CHARS} characters")
    return reason
