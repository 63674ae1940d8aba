"""Why a decision was refused, typed so the API can answer 403/404/409 without string matching."""

from __future__ import annotations

from sqlgate.errors import SqlgateError


class ApprovalError(SqlgateError):
    """A request about an approval that cannot be honoured; `status_code` is its HTTP answer."""

    status_code = 400


class NotAnApprover(ApprovalError):
    """The caller is not in any of the `approvals.approvers` groups."""

    status_code = 403


class SelfDecisionRefused(ApprovalError):
    """Nobody decides their own request, whatever their groups (four-eyes principle)."""

    status_code = 403


class ApprovalNotFound(ApprovalError):
    """No request has this id."""

    status_code = 404


class AlreadyDecided(ApprovalError):
    """The request is no longer pending: decided by someone else, expired or cancelled."""

    status_code = 409

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status
