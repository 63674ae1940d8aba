"""Just-in-time approvals: turn a `review` decision into allow or block with a human's help.

`hold` keeps the statement (and the client) waiting for the decision; `defer` refuses at once
with a request id and lets the same identity re-run the same statement once after approval.
The store is the only source of truth: every replica reads decisions from it, and wake-ups
(in-process, PostgreSQL NOTIFY, or a one-second poll) only say "look again".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from starlette.routing import BaseRoute

from sqlgate.config import Config
from sqlgate.core import Decision, Identity, Statement, Verdict
from sqlgate.errors import SqlgateError
from sqlgate.identity import TokenVerifier
from sqlgate.store.approvals import Approval, ApprovalRepository, ApprovalStatus
from sqlgate.store.base import Store, describe_error

from .errors import AlreadyDecided, ApprovalNotFound, NotAnApprover, SelfDecisionRefused
from .normalize import normalize_sql
from .notify import ApprovalEvent, Notifier
from .views import describe_duration, person
from .wakeup import CHANNEL, PgListener, Waiters

logger = logging.getLogger(__name__)

T = TypeVar("T")

# With a live LISTEN connection waiters still re-read now and then, in case a NOTIFY was lost
# on a connection that died silently; without one they poll at `poll_interval`.
_SAFETY_POLL_SECONDS = 15.0
_CLOSE_GRACE_SECONDS = 5.0

_EVENTS = {
    ApprovalStatus.APPROVED: ApprovalEvent.APPROVED,
    ApprovalStatus.DENIED: ApprovalEvent.DENIED,
    ApprovalStatus.EXPIRED: ApprovalEvent.EXPIRED,
    ApprovalStatus.CANCELLED: ApprovalEvent.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """The resolved decision, and the request it came from (for the audit's `approval_id`)."""

    decision: Decision
    approval_id: str | None


def _pg_conninfo(config: Config, store: Store) -> str | None:
    """Where to LISTEN: the store's own connection string when it exposes one, else the
    configured PostgreSQL store URL."""
    exposed = getattr(store, "conninfo", None)
    if isinstance(exposed, str):
        return exposed
    url = config.store.url
    return url if url.startswith(("postgresql://", "postgres://")) else None


class ApprovalService:
    """Creates, waits for, decides and expires review requests; one per gateway process."""

    def __init__(
        self,
        config: Config,
        store: Store,
        verifier: TokenVerifier | None = None,
        *,
        notifier: Notifier | None = None,
        poll_interval: float = 1.0,
        expiry_interval: float = 5.0,
    ) -> None:
        self.config = config
        self.settings = config.approvals
        self.approver_groups = frozenset(self.settings.approvers)
        self.repo = ApprovalRepository(store)
        self.notifier = notifier if notifier is not None else Notifier.from_config(config)
        self._store = store
        self._verifier = verifier
        self._poll_interval = poll_interval
        self._expiry_interval = expiry_interval
        self._waiters = Waiters()
        self._listener: PgListener | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._holding = 0
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """LISTEN for decisions of other replicas (PostgreSQL store), start expiring overdue
        requests, start delivering notifications."""
        if self._store.dialect == "postgres":
            conninfo = _pg_conninfo(self.config, self._store)
            if conninfo is None:
                logger.warning(
                    "approvals: the PostgreSQL store does not say how to LISTEN; decisions "
                    "made on other replicas are seen by polling every %gs", self._poll_interval
                )  # fmt: skip
            else:
                self._listener = PgListener(conninfo, self._waiters.wake, self._waiters.wake_all)
                await self._listener.start()
        await self.notifier.start()
        self._expiry_task = asyncio.create_task(
            self._expire_loop(), name="sqlgate-approvals-expiry"
        )

    async def close(self) -> None:
        """Stop background work. Statements still held are released as blocked and their
        requests cancelled (their connections end with the gateway); deferred requests stay
        pending in the store for the next start."""
        self._closed = True
        self._waiters.wake_all()
        try:
            async with asyncio.timeout(_CLOSE_GRACE_SECONDS):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("approvals: %d held statement(s) did not finish closing", self._holding)
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            await asyncio.gather(self._expiry_task, return_exceptions=True)
            self._expiry_task = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.notifier.close()

    @property
    def listening(self) -> bool:
        """True while decisions of other replicas arrive by NOTIFY rather than by polling."""
        return self._listener is not None and self._listener.listening

    def routes(self) -> list[BaseRoute]:
        """The HTTP API, for the admin app: /api/approvals..."""
        if self._verifier is None:
            raise SqlgateError("the approvals API needs a token verifier to authenticate approvers")
        from .api import approval_routes

        return approval_routes(self, self._verifier)

    # -- the statement path ---------------------------------------------------------------

    async def review(
        self, identity: Identity, statement: Statement, decision: Decision, session_id: str | None
    ) -> Decision:
        """ALLOW or BLOCK for a statement the policy sent to review (see `resolve`)."""
        return (await self.resolve(identity, statement, decision, session_id)).decision

    async def resolve(
        self, identity: Identity, statement: Statement, decision: Decision, session_id: str | None
    ) -> ReviewOutcome:
        """`review`, and the id of the request involved. Any store failure blocks."""
        normalized = normalize_sql(statement.sql, statement.dialect)
        try:
            if self.settings.mode == "defer":
                return await self._defer(identity, statement, decision, normalized, session_id)
            return await self._hold(identity, statement, decision, normalized, session_id)
        except Exception as exc:
            logger.error("approvals: cannot review a statement: %s", describe_error(exc))
            reason = f"{decision.reason}; it needs approval, but the approvals store is unavailable"
            return ReviewOutcome(replace(decision, verdict=Verdict.BLOCK, reason=reason), None)

    async def _create(
        self,
        identity: Identity,
        statement: Statement,
        decision: Decision,
        normalized: str,
        session_id: str | None,
    ) -> Approval:
        now = time.time()
        approval = await self.repo.create(
            requester_sub=identity.subject,
            requester_email=identity.email,
            requester_groups=sorted(identity.groups),
            target=statement.target,
            sql=statement.sql,
            normalized_sql=normalized,
            policy=decision.policy,
            rule=decision.rule,
            reason=decision.reason,
            created_at=now,
            expires_at=now + self.settings.timeout_seconds,
            session_id=session_id,
        )
        logger.info(
            "approvals: request %s by %s on %s (%s mode)",
            approval.id, identity.subject, statement.target, self.settings.mode,
        )  # fmt: skip
        self.notifier.publish(ApprovalEvent.REQUESTED, approval)
        return approval

    async def _hold(
        self,
        identity: Identity,
        statement: Statement,
        decision: Decision,
        normalized: str,
        session_id: str | None,
    ) -> ReviewOutcome:
        if self._closed:
            reason = f"{decision.reason}; it needs approval, but the gateway is shutting down"
            return ReviewOutcome(replace(decision, verdict=Verdict.BLOCK, reason=reason), None)
        self._holding += 1
        self._idle.clear()
        try:
            creating = self._spawn(
                self._create(identity, statement, decision, normalized, session_id)
            )
            try:
                approval = await asyncio.shield(creating)
            except asyncio.CancelledError:
                # The INSERT may still land after we stop waiting: cancel whatever it makes.
                await asyncio.shield(
                    self._spawn(self._cancel_when_created(creating, "client disconnected"))
                )
                raise
            try:
                final = await self._wait(approval)
            except asyncio.CancelledError:
                await asyncio.shield(self._spawn(self._cancel(approval.id, "client disconnected")))
                raise
            except Exception:  # the statement is refused: nobody should approve it now
                await self._cancel(approval.id, "the gateway lost the store while waiting")
                raise
            if final.status is ApprovalStatus.PENDING:  # the gateway is closing
                await self._cancel(approval.id, "the gateway shut down")
                final = await self.repo.get(approval.id) or final
            return ReviewOutcome(self._outcome(decision, final), approval.id)
        finally:
            self._holding -= 1
            if not self._holding:
                self._idle.set()

    async def _wait(self, approval: Approval) -> Approval:
        """Until the request leaves `pending` (or its deadline, or close()); re-reads the store
        on every wake-up and at least every poll interval."""
        with self._waiters.watch(approval.id) as woken:
            current = approval
            while True:
                woken.clear()
                try:
                    current = await self.repo.get(approval.id) or current
                except Exception as exc:  # keep waiting: the store may come back
                    logger.warning("approvals: cannot re-read %s: %s", approval.id,
                                   describe_error(exc))  # fmt: skip
                if current.status is not ApprovalStatus.PENDING or self._closed:
                    return current
                now = time.time()
                if now >= approval.expires_at:
                    await self.expire_due(now)
                    return await self.repo.get(approval.id) or current
                pause = self._poll_interval
                if self.listening:
                    pause = max(pause, _SAFETY_POLL_SECONDS)
                try:
                    async with asyncio.timeout(min(pause, approval.expires_at - now)):
                        await woken.wait()
                except TimeoutError:
                    pass

    def _outcome(self, decision: Decision, approval: Approval) -> Decision:
        decider = approval.decided_by or {}
        who = decider.get("email") or decider.get("sub") or "an approver"
        because = approval.decision_reason or "no reason given"
        if approval.status is ApprovalStatus.APPROVED:
            return replace(decision, verdict=Verdict.ALLOW, reason=f"approved by {who}: {because}")
        request = f"{decision.reason}; request {approval.id}"
        if approval.status is ApprovalStatus.DENIED:
            reason = f"{request} was denied by {who}: {because}"
        elif approval.status is ApprovalStatus.EXPIRED:
            reason = (
                f"{request} timed out: no decision within "
                f"{describe_duration(self.settings.timeout_seconds)}"
            )
        elif approval.status is ApprovalStatus.PENDING:
            reason = f"{request} is still pending, but the gateway is shutting down"
        else:
            reason = f"{request} was cancelled: {because}"
        return replace(decision, verdict=Verdict.BLOCK, reason=reason)

    async def _defer(
        self,
        identity: Identity,
        statement: Statement,
        decision: Decision,
        normalized: str,
        session_id: str | None,
    ) -> ReviewOutcome:
        now = time.time()
        grant = await self.repo.consume_grant(
            subject=identity.subject, target=statement.target, normalized_sql=normalized, at=now
        )
        if grant is not None:
            approval = await self.repo.get(grant.approval_id)
            by = ""
            if approval is not None and approval.decided_by:
                by = f" by {approval.decided_by.get('email') or approval.decided_by.get('sub')}"
            reason = f"approved earlier{by}: request {grant.approval_id}"
            return ReviewOutcome(replace(decision, verdict=Verdict.ALLOW, reason=reason),
                                 grant.approval_id)  # fmt: skip
        pending = await self._find_pending(identity.subject, statement.target, normalized, now)
        if pending is None:
            approval = await self._create(identity, statement, decision, normalized, session_id)
            state = "is pending"
        else:
            approval, state = pending, "is still pending"
        ttl = describe_duration(self.settings.grant_ttl_seconds)
        reason = (
            f"{decision.reason}: request {approval.id} {state}; ask an approver to run "
            f"`sqlgate approvals approve {approval.id}`, then re-run the same statement within "
            f"{ttl} of the approval"
        )
        return ReviewOutcome(replace(decision, verdict=Verdict.BLOCK, reason=reason), approval.id)

    async def _find_pending(
        self, subject: str, target: str, normalized: str, now: float
    ) -> Approval | None:
        """An agent that re-runs a deferred statement before the decision gets its existing
        request back instead of filling the approvers' queue with copies."""
        row = await self._store.fetchone(
            "SELECT id FROM approvals WHERE status = 'pending' AND requester_sub = ? "
            "AND target = ? AND normalized_sql = ? AND expires_at > ? "
            "ORDER BY created_at DESC LIMIT 1",
            (subject, target, normalized, now),
        )
        return None if row is None else await self.repo.get(row["id"])

    # -- decisions ------------------------------------------------------------------------

    async def get(self, approval_id: str) -> Approval | None:
        return await self.repo.get(approval_id)

    async def list_requests(
        self, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[Approval]:
        """Newest first; every status when `status` is None."""
        return await self.repo.list_by_status(status, limit=limit)

    def is_approver(self, identity: Identity) -> bool:
        return bool(identity.groups & self.approver_groups)

    async def decide(
        self, approver: Identity, approval_id: str, approve: bool, reason: str | None
    ) -> Approval:
        """Approve or deny a pending request, atomically across replicas.

        Raises NotAnApprover / SelfDecisionRefused (403), ApprovalNotFound (404) and
        AlreadyDecided (409, also for expired and cancelled requests).
        """
        if not self.is_approver(approver):
            raise NotAnApprover(
                "only members of the approvers groups "
                f"({', '.join(sorted(self.approver_groups)) or 'none configured'}) may decide"
            )
        approval = await self.repo.get(approval_id)
        if approval is None:
            raise ApprovalNotFound(f"no approval request {approval_id}")
        if approval.requester_sub == approver.subject:
            raise SelfDecisionRefused(
                f"request {approval_id} is your own: another approver must decide it"
            )
        if approval.status is not ApprovalStatus.PENDING:
            raise self._conflict(approval)
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED
        now = time.time()
        reason = (reason or "").strip() or None
        decided = await self.repo.decide(
            approval_id, status, decided_by=person(approver), reason=reason, at=now
        )
        if not decided:
            if approval.expires_at <= now:
                await self.expire_due(now)
            current = await self.repo.get(approval_id) or approval
            raise self._conflict(current)
        if approve and self.settings.mode == "defer":
            await self.repo.create_grant(
                approval_id,
                subject=approval.requester_sub,
                target=approval.target,
                normalized_sql=approval.normalized_sql,
                created_at=now,
                expires_at=now + self.settings.grant_ttl_seconds,
            )
        final = await self.repo.get(approval_id)
        assert final is not None
        logger.info("approvals: request %s %s by %s", approval_id, status.value, approver.subject)
        await self._announce(final)
        return final

    @staticmethod
    def _conflict(approval: Approval) -> AlreadyDecided:
        status = approval.status.value
        who = ""
        if approval.decided_by:
            who = f" by {approval.decided_by.get('email') or approval.decided_by.get('sub')}"
        if approval.status is ApprovalStatus.PENDING:  # past its deadline, not yet marked
            status, who = ApprovalStatus.EXPIRED.value, ""
        return AlreadyDecided(f"request {approval.id} is already {status}{who}", status)

    async def _announce(self, approval: Approval) -> None:
        """Wake local waiters, tell other replicas (NOTIFY), queue the notifications."""
        self._waiters.wake(approval.id)
        if self._store.dialect == "postgres":
            try:
                await self._store.execute("SELECT pg_notify(?, ?)", (CHANNEL, approval.id))
            except Exception as exc:  # other replicas still see it on their next poll
                logger.warning("approvals: NOTIFY failed: %s", describe_error(exc))
        event = _EVENTS.get(approval.status)
        if event is not None:
            self.notifier.publish(event, approval)

    async def _cancel(self, approval_id: str, reason: str) -> None:
        try:
            if await self.repo.cancel(approval_id, at=time.time(), reason=reason):
                logger.info("approvals: request %s cancelled: %s", approval_id, reason)
                approval = await self.repo.get(approval_id)
                if approval is not None:
                    await self._announce(approval)
        except Exception as exc:
            logger.warning("approvals: cannot cancel %s: %s", approval_id, describe_error(exc))

    async def _cancel_when_created(self, creating: asyncio.Task[Approval], reason: str) -> None:
        try:
            approval = await creating
        except Exception:
            return
        await self._cancel(approval.id, reason)

    # -- expiry ---------------------------------------------------------------------------

    async def expire_due(self, now: float | None = None) -> list[str]:
        """Mark overdue pending requests expired and announce them; returns their ids. Safe on
        several replicas at once: each request is expired (and announced) by one of them."""
        ids = await self.repo.expire_due(time.time() if now is None else now)
        for approval_id in ids:
            approval = await self.repo.get(approval_id)
            if approval is not None:
                await self._announce(approval)
        return ids

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self._expiry_interval)
            try:
                await self.expire_due()
            except Exception as exc:
                logger.warning("approvals: expiry sweep failed: %s", describe_error(exc))

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task that outlives a cancelled caller and that close() waits for."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
