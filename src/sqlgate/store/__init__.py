"""The state store: SQLite (embedded default) or PostgreSQL (shared by replicas)."""

from sqlgate.store.approvals import Approval, ApprovalRepository, ApprovalStatus, Grant
from sqlgate.store.base import Row, Store, StoreError, StoreNotInitialized, Tx
from sqlgate.store.factory import make_store, open_store, redact_url
from sqlgate.store.migrations import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from sqlgate.store.settings import StoreSettings

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Approval",
    "ApprovalRepository",
    "ApprovalStatus",
    "Grant",
    "Row",
    "Store",
    "StoreError",
    "StoreNotInitialized",
    "StoreSettings",
    "Tx",
    "make_store",
    "migrate",
    "open_store",
    "redact_url",
    "schema_version",
]
