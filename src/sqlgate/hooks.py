"""The hook protocol between a protocol session and the components that judge it.

The proxy knows only this protocol; the policy engine (and later approvals, masking and
recording) implement it without importing anything from the proxy or the protocols.
"""

from __future__ import annotations

from typing import Protocol

from sqlgate.core import Decision, Identity, Statement
from sqlgate.masking import ResultPlanner


class SessionHooks(Protocol):
    """One per client session: judges each statement the client sends."""

    identity: Identity
    planner: ResultPlanner | None  # None: results pass through unread
    session_id: str | None  # the recording's id, for approvals and audit
    shapes_ok: bool  # decisions may be cached by statement shape (standard strings on)

    def judge(self, statement: Statement) -> Decision:
        """Decide synchronously; must be cheap on repeat (cached)."""
        ...

    async def resolve_review(self, statement: Statement, decision: Decision) -> Decision:
        """Turn a `review` decision into allow or block (waits for a human in hold mode)."""
        ...

    def widen_search_path(self, schemas: list[str]) -> None:
        """Schemas the server may resolve unqualified names in (startup search_path, $user)."""
        ...

    def statement_forwarded(self, statement: Statement, decision: Decision) -> None:
        """The statement went to the server (used to track PREPARE/DEALLOCATE and search_path)."""
        ...


class SessionFactory(Protocol):
    def open_session(self, identity: Identity, target: str) -> SessionHooks | None:
        """Hooks for a new session, or None when no policy grants the identity this target."""
        ...
