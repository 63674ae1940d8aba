"""Read-only admin API over the recordings and the audit trail (audit readers only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sqlgate.api.auth import require_identity
from sqlgate.audit import audit_readers, export
from sqlgate.config import Config
from sqlgate.identity import TokenVerifier
from sqlgate.recording.sessions import get_session, iter_events, list_sessions
from sqlgate.store.base import Store

MAX_PAGE = 1000


def _time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise HTTPException(400, f"{name}: give an ISO 8601 time or epoch seconds") from None


def _int(value: str | None, default: int, name: str) -> int:
    try:
        number = default if value is None else int(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number") from None
    if number < 0:
        raise HTTPException(400, f"{name} must not be negative")
    return number


def record_routes(
    store: Store, verifier: TokenVerifier, config: Callable[[], Config]
) -> list[BaseRoute]:
    """GET /api/sessions, /api/sessions/{id}, /api/audit; `config` gives the live config."""

    async def authorize(request: Request) -> None:
        await require_identity(request, verifier, audit_readers(config()))

    async def sessions(request: Request) -> JSONResponse:
        await authorize(request)
        q = request.query_params
        found = await list_sessions(
            store,
            identity=q.get("identity"),
            target=q.get("target"),
            since=_time(q.get("since"), "since"),
            until=_time(q.get("until"), "until"),
            limit=min(_int(q.get("limit"), 100, "limit"), MAX_PAGE),
        )
        status = q.get("status")
        items = [dataclasses.asdict(s) for s in found]
        if status == "open":
            items = [s for s in items if s["ended_at"] is None]
        elif status == "closed":
            items = [s for s in items if s["ended_at"] is not None]
        return JSONResponse({"sessions": items})

    async def session(request: Request) -> JSONResponse:
        await authorize(request)
        summary = await get_session(store, request.path_params["session_id"])
        if summary is None:
            raise HTTPException(404, "no such session")
        events = [dataclasses.asdict(e) async for e in iter_events(store, summary.session_id)]
        return JSONResponse({"session": dataclasses.asdict(summary), "events": events})

    async def audit(request: Request) -> JSONResponse:
        await authorize(request)
        q = request.query_params
        limit = min(_int(q.get("limit"), 100, "limit"), MAX_PAGE)
        offset = _int(q.get("offset"), 0, "offset")
        wanted = {k: q.get(k) for k in ("decision", "category", "target") if q.get(k)}
        identity = q.get("identity")
        records: list[dict[str, object]] = []
        skipped = 0
        async for record in export(store, _time(q.get("since"), "since"),
                                   _time(q.get("until"), "until")):
            if any(str(record.get(k)) != v for k, v in wanted.items()):
                continue
            if identity and identity not in (record.get("subject"), record.get("email")):
                continue
            if skipped < offset:
                skipped += 1
                continue
            records.append(record)
            if len(records) >= limit:
                break
        return JSONResponse({"records": records, "offset": offset, "limit": limit})

    return [
        Route("/api/sessions", sessions, methods=["GET"]),
        Route("/api/sessions/{session_id}", session, methods=["GET"]),
        Route("/api/audit", audit, methods=["GET"]),
    ]
