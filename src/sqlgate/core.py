"""Protocol-neutral types shared by the PostgreSQL and MySQL front ends, policy and audit.

Nothing here knows about sockets or a wire format: a Statement is the same object whether it
came from a PostgreSQL Query message or a MySQL COM_QUERY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is connected, as proven by their OIDC token."""

    subject: str
    email: str | None
    groups: frozenset[str]
    issuer: str
    expires_at: float | None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def display(self) -> str:
        return self.email or self.subject


class Dialect(StrEnum):
    POSTGRES = "postgres"
    MYSQL = "mysql"


class StatementSource(StrEnum):
    """How the statement reached the gateway, which decides how a refusal is delivered."""

    SIMPLE = "simple"  # PostgreSQL Query / MySQL COM_QUERY
    PREPARE = "prepare"  # PostgreSQL Parse / MySQL COM_STMT_PREPARE
    FUNCTION_CALL = "function_call"  # PostgreSQL fast-path FunctionCall


@dataclass(frozen=True, slots=True)
class Statement:
    """One request as the client sent it: possibly several SQL statements in one string."""

    sql: str
    dialect: Dialect
    source: StatementSource
    target: str
    prepared_name: str | None = None


class Verdict(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy says about a Statement, and why: audit and errors name the rule."""

    verdict: Verdict
    policy: str | None
    rule: int | None  # 1-based index of the rule in its policy; None for the policy default
    reason: str
    sqlstate: str = "42501"
    category: str | None = None
    operations: frozenset[str] = frozenset()
    approval_id: str | None = None  # the review request behind this decision, if any

    @property
    def rule_label(self) -> str:
        return "default" if self.rule is None else f"rule {self.rule}"


@dataclass(frozen=True, slots=True)
class ColumnDescription:
    """One output column of a result, with its provenance when the server reports it."""

    name: str
    type_oid: int
    table_oid: int = 0
    column_number: int = 0
    format_code: int = 0
