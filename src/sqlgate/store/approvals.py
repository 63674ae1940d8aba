"""Typed storage for review requests and the grants an approval hands out.

Every state change is one conditional UPDATE (`WHERE status = 'pending'`), so two approvers
on two replicas cannot both decide the same request: the loser is told it changed nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlgate.store.base import Row, Store


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    status: ApprovalStatus
    requester_sub: str
    requester_email: str | None
    requester_groups: tuple[str, ...]
    session_id: str | None
    target: str
    sql: str
    normalized_sql: str
    policy: str | None
    rule: int | None
    reason: str
    decided_by: dict[str, Any] | None
    decision_reason: str | None
    created_at: float
    decided_at: float | None
    expires_at: float
    grant_used_at: float | None


@dataclass(frozen=True, slots=True)
class Grant:
    """Permission to run one normalized statement again, until `expires_at` or first use."""

    id: str
    approval_id: str
    subject: str
    target: str
    normalized_sql: str
    created_at: float
    expires_at: float
    used_at: float | None


_APPROVAL_COLUMNS = (
    "id, status, requester_sub, requester_email, requester_groups, session_id, target, sql, "
    "normalized_sql, policy, rule, reason, decided_by, decision_reason, created_at, "
    "decided_at, expires_at, grant_used_at"
)
_GRANT_COLUMNS = "id, approval_id, subject, target, normalized_sql, created_at, expires_at, used_at"


def _approval(row: Row) -> Approval:
    decided_by = row["decided_by"]
    return Approval(
        id=row["id"],
        status=ApprovalStatus(row["status"]),
        requester_sub=row["requester_sub"],
        requester_email=row["requester_email"],
        requester_groups=tuple(json.loads(row["requester_groups"])),
        session_id=row["session_id"],
        target=row["target"],
        sql=row["sql"],
        normalized_sql=row["normalized_sql"],
        policy=row["policy"],
        rule=row["rule"],
        reason=row["reason"],
        decided_by=None if decided_by is None else json.loads(decided_by),
        decision_reason=row["decision_reason"],
        created_at=row["created_at"],
        decided_at=row["decided_at"],
        expires_at=row["expires_at"],
        grant_used_at=row["grant_used_at"],
    )


def _grant(row: Row) -> Grant:
    return Grant(
        id=row["id"],
        approval_id=row["approval_id"],
        subject=row["subject"],
        target=row["target"],
        normalized_sql=row["normalized_sql"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
    )


class ApprovalRepository:
    """Approvals and grants in the shared store; safe to use from several replicas at once."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(
        self,
        *,
        requester_sub: str,
        requester_email: str | None,
        requester_groups: Sequence[str],
        target: str,
        sql: str,
        normalized_sql: str,
        policy: str | None,
        rule: int | None,
        reason: str,
        created_at: float,
        expires_at: float,
        session_id: str | None = None,
        approval_id: str | None = None,
    ) -> Approval:
        """A new pending request; the id is a fresh uuid4 hex unless given."""
        new_id = approval_id or uuid.uuid4().hex
        await self._store.execute(
            f"INSERT INTO approvals ({_APPROVAL_COLUMNS}) "
            "VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL, ?, NULL)",
            (
                new_id,
                requester_sub,
                requester_email,
                json.dumps(sorted(requester_groups)),
                session_id,
                target,
                sql,
                normalized_sql,
                policy,
                rule,
                reason,
                created_at,
                expires_at,
            ),
        )
        approval = await self.get(new_id)
        assert approval is not None
        return approval

    async def get(self, approval_id: str) -> Approval | None:
        row = await self._store.fetchone(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)
        )
        return None if row is None else _approval(row)

    async def list_by_status(
        self, status: ApprovalStatus | None = None, *, limit: int = 100
    ) -> list[Approval]:
        """Newest first; all statuses when `status` is None."""
        where, params = ("WHERE status = ?", (status.value,)) if status else ("", ())
        rows = await self._store.fetchall(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals {where} "
            "ORDER BY created_at DESC, id LIMIT ?",
            (*params, limit),
        )
        return [_approval(r) for r in rows]

    async def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        decided_by: Mapping[str, Any],
        reason: str | None,
        at: float,
    ) -> bool:
        """Approve or deny a pending, unexpired request. False: someone else decided first,
        it expired, was cancelled, or does not exist."""
        if status not in (ApprovalStatus.APPROVED, ApprovalStatus.DENIED):
            raise ValueError(f"decide() takes approved or denied, not {status.value}")
        changed = await self._store.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, decision_reason = ?, "
            "decided_at = ? WHERE id = ? AND status = 'pending' AND expires_at > ?",
            (status.value, json.dumps(dict(decided_by)), reason, at, approval_id, at),
        )
        return changed == 1

    async def cancel(self, approval_id: str, *, at: float, reason: str | None = None) -> bool:
        """The requester gave up (disconnected, cancelled the query): pending -> cancelled."""
        changed = await self._store.execute(
            "UPDATE approvals SET status = 'cancelled', decided_at = ?, decision_reason = ? "
            "WHERE id = ? AND status = 'pending'",
            (at, reason, approval_id),
        )
        return changed == 1

    async def expire_due(self, now: float) -> list[str]:
        """Mark every pending request past its deadline expired; returns their ids."""
        rows = await self._store_update_returning(
            "UPDATE approvals SET status = 'expired', decided_at = ? "
            "WHERE status = 'pending' AND expires_at <= ? RETURNING id",
            (now, now),
        )
        return sorted(r["id"] for r in rows)

    async def mark_grant_used(self, approval_id: str, *, at: float) -> bool:
        """Spend an approved request's one-shot permission (defer mode); False if spent."""
        changed = await self._store.execute(
            "UPDATE approvals SET grant_used_at = ? "
            "WHERE id = ? AND status = 'approved' AND grant_used_at IS NULL",
            (at, approval_id),
        )
        return changed == 1

    async def create_grant(
        self,
        approval_id: str,
        *,
        subject: str,
        target: str,
        normalized_sql: str,
        created_at: float,
        expires_at: float,
    ) -> Grant:
        grant = Grant(
            uuid.uuid4().hex, approval_id, subject, target, normalized_sql, created_at,
            expires_at, None,
        )  # fmt: skip
        await self._store.execute(
            f"INSERT INTO approval_grants ({_GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                grant.id, approval_id, subject, target, normalized_sql, created_at,
                expires_at,
            ),
        )  # fmt: skip
        return grant

    async def consume_grant(
        self, *, subject: str, target: str, normalized_sql: str, at: float
    ) -> Grant | None:
        """Use the oldest unused, unexpired grant matching this statement, atomically: two
        replicas racing for one grant cannot both get it."""
        rows = await self._store_update_returning(
            f"UPDATE approval_grants SET used_at = ? WHERE id = ("
            "SELECT id FROM approval_grants WHERE subject = ? AND target = ? "
            "AND normalized_sql = ? AND used_at IS NULL AND expires_at > ? "
            "ORDER BY created_at, id LIMIT 1"
            f") AND used_at IS NULL RETURNING {_GRANT_COLUMNS}",
            (at, subject, target, normalized_sql, at),
        )
        return _grant(rows[0]) if rows else None

    async def _store_update_returning(self, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._store.transaction() as tx:
            return await tx.fetchall(sql, params)
