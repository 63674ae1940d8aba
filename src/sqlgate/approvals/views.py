"""The JSON form of an approval request, shared by the HTTP API and the notifiers."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from sqlgate.config import Config
from sqlgate.core import Identity
from sqlgate.store.approvals import Approval


def iso(at: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds, the format of the audit export."""
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds")


def person(identity: Identity) -> dict[str, Any]:
    """Who decided, as stored with the decision and shown by the API."""
    return {"sub": identity.subject, "email": identity.email, "groups": sorted(identity.groups)}


def approval_json(approval: Approval) -> dict[str, Any]:
    """The API object: `reason` is the decision's reason, `rule_reason` the policy's."""
    return {
        "id": approval.id,
        "status": approval.status.value,
        "sql": approval.sql,
        "target": approval.target,
        "policy": approval.policy,
        "rule": approval.rule,
        "rule_reason": approval.reason,
        "requested_by": {
            "sub": approval.requester_sub,
            "email": approval.requester_email,
            "groups": list(approval.requester_groups),
        },
        "session_id": approval.session_id,
        "created_at": iso(approval.created_at),
        "expires_at": iso(approval.expires_at),
        "decided_by": approval.decided_by,
        "decided_at": iso(approval.decided_at),
        "reason": approval.decision_reason,
    }


def describe_duration(seconds: float) -> str:
    """`900` -> `15 min`: for messages a person reads in an error line."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def admin_url(config: Config, *, local: bool) -> str | None:
    """The admin listener as a URL: `approvals.public_url` when set (for links people click),
    else `listen.admin`, with a wildcard host replaced by loopback (`local`, for the CLI on
    the same machine) or this host's name (for links)."""
    explicit = getattr(config.approvals, "public_url", None)
    if explicit and not local:
        return str(explicit).rstrip("/")
    address = config.listen.address("admin")
    if address is None:
        return str(explicit).rstrip("/") if explicit else None
    host, port = address
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if local else socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
