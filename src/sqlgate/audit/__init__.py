"""The audit trail: one hash-chained record per statement, verifiable and exportable."""

from sqlgate.audit.chain import GENESIS_HASH, AuditKind, canonical_json, record_hash
from sqlgate.audit.export import export, iso_time
from sqlgate.audit.retention import purge_audit
from sqlgate.audit.settings import AuditSettings, audit_readers
from sqlgate.audit.verify import ChainReport, VerifyProblem, VerifyResult, verify

__all__ = [
    "GENESIS_HASH",
    "AuditKind",
    "AuditSettings",
    "ChainReport",
    "VerifyProblem",
    "VerifyResult",
    "audit_readers",
    "canonical_json",
    "export",
    "iso_time",
    "purge_audit",
    "record_hash",
    "verify",
]
