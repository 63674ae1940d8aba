"""The hash chain: which columns are hashed, how, and the running head of one writer's chain.

A record's hash is `sha256(canonical JSON of every audit_log column except id and hash)`,
and that JSON includes `prev_hash`, the hash of the previous record of the same chain. The
JSON is canonical so that anyone can recompute it: keys sorted, no whitespace, UTF-8, and
values exactly as stored (JSON-typed columns such as `groups_json` are hashed as their stored
text). Each process writes its own chain (`chain_id`, random per process) with a gapless
`chain_seq`, so replicas sharing one store never contend for a chain head.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

GENESIS_HASH: Final = "0" * 64


class AuditKind(StrEnum):
    STATEMENT = "statement"
    OUTCOME = "outcome"  # the end of a statement: its own chained record, never an UPDATE
    SESSION_START = "session_start"
    SESSION_END = "session_end"
    LOGIN_FAILED = "login_failed"


# Column -> the Python type both drivers return for it. Values are coerced to these types
# before hashing so that what is hashed is what a later SELECT gives back.
COLUMN_TYPES: Final[dict[str, type]] = {
    "chain_id": str,
    "chain_seq": int,
    "kind": str,
    "at": float,
    "session_id": str,
    "statement_seq": int,
    "subject": str,
    "email": str,
    "groups_json": str,
    "issuer": str,
    "client_addr": str,
    "target": str,
    "application_name": str,
    "sql": str,
    "params": str,
    "category": str,
    "operations": str,
    "decision": str,
    "policy": str,
    "rule": int,
    "reason": str,
    "approval_id": str,
    "row_count": int,
    "duration_ms": float,
    "command_tag": str,
    "sqlstate": str,
    "error_message": str,
    "prev_hash": str,
}
HASHED_COLUMNS: Final = tuple(COLUMN_TYPES)
STORED_COLUMNS: Final = (*HASHED_COLUMNS, "hash")


def new_chain_id() -> str:
    """A random id for this process's chain."""
    return secrets.token_hex(8)


def writer_label() -> str:
    """Where a chain was written from, for operators reading `audit_chains`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def clean_text(value: str) -> str:
    """Text both stores accept byte for byte: PostgreSQL refuses NUL, UTF-8 refuses lone
    surrogates. Applied before hashing, so the hash matches the stored text on both."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def coerce(column: str, value: Any) -> Any:
    """The stored form of `value` for `column`."""
    if value is None:
        return None
    kind = COLUMN_TYPES[column]
    if kind is str:
        return clean_text(str(value))
    if kind is float:
        number = float(value)
        return number if math.isfinite(number) else None
    return int(value)


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def json_text(value: Any) -> str:
    """JSON-typed columns (groups, operations, params) in their canonical stored form."""
    return canonical_json(value).decode("utf-8")


def record_hash(values: Mapping[str, Any]) -> str:
    """The hash of one record: every hashed column, `prev_hash` included."""
    return hashlib.sha256(canonical_json({c: values.get(c) for c in HASHED_COLUMNS})).hexdigest()


@dataclass(slots=True)
class ChainHead:
    """The tip of one writer's chain, advanced as records are sealed."""

    chain_id: str
    seq: int = 0
    hash: str = GENESIS_HASH

    def seal(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Give `fields` the next seq, link it to the head, hash it; returns the full record."""
        record: dict[str, Any] = dict.fromkeys(HASHED_COLUMNS)
        for column, value in fields.items():
            if value is not None and column in COLUMN_TYPES:
                record[column] = coerce(column, value)
        record["chain_id"] = self.chain_id
        record["chain_seq"] = self.seq + 1
        record["prev_hash"] = self.hash
        record["hash"] = hashlib.sha256(canonical_json(record)).hexdigest()
        # Advance only once the record is complete: a bad field must not leave a gap.
        self.seq += 1
        self.hash = record["hash"]
        return record
