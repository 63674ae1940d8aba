"""Just-in-time approvals for statements the policy sends to review (hold or defer mode)."""

from sqlgate.approvals.errors import (
    AlreadyDecided,
    ApprovalError,
    ApprovalNotFound,
    NotAnApprover,
    SelfDecisionRefused,
)
from sqlgate.approvals.normalize import normalize_sql
from sqlgate.approvals.notify import SIGNATURE_HEADER, ApprovalEvent, Notifier, sign
from sqlgate.approvals.service import ApprovalService, ReviewOutcome

__all__ = [
    "SIGNATURE_HEADER",
    "AlreadyDecided",
    "ApprovalError",
    "ApprovalEvent",
    "ApprovalNotFound",
    "ApprovalService",
    "NotAnApprover",
    "Notifier",
    "ReviewOutcome",
    "SelfDecisionRefused",
    "normalize_sql",
    "sign",
]
