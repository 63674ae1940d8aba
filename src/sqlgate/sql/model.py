"""What an analyzed statement looks like, whatever the dialect.

The policy engine matches on these types only, so the PostgreSQL analyzer (pglast) and the
MySQL one (sqlglot) must speak the same vocabulary: the categories and operation names below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlgate.errors import SqlgateError


class Category(enum.StrEnum):
    """The coarse kind of a statement; a policy usually allows or blocks whole categories."""

    READ = "read"
    WRITE = "write"
    DDL = "ddl"
    DCL = "dcl"
    TCL = "tcl"
    SESSION = "session"
    COPY_OUT = "copy_out"
    COPY_IN = "copy_in"
    PROCEDURAL = "procedural"
    ADMIN = "admin"
    UNKNOWN = "unknown"


CATEGORIES: frozenset[str] = frozenset(c.value for c in Category)

# Every operation name an analyzer may emit; policy lint rejects rules that name others.
OPERATIONS: frozenset[str] = frozenset(
    {
        # read / write
        "select",
        "select_for_update",
        "insert",
        "update",
        "delete",
        "merge",
        "update_without_where",
        "delete_without_where",
        "lock",
        "refresh_materialized_view",
        # ddl
        "create_table",
        "alter_table",
        "drop_table",
        "drop_schema",
        "drop_database",
        "drop_view",
        "drop_index",
        "drop_function",
        "drop_other",
        "truncate",
        "create_index",
        "create_view",
        "create_function",
        "create_schema",
        "create_database",
        "create_extension",
        "create_other",
        "alter_other",
        "comment",
        "security_label",
        # dcl
        "grant",
        "revoke",
        "create_role",
        "alter_role",
        "drop_role",
        "set_role",
        # session
        "set",
        "reset",
        "show",
        "discard",
        "listen",
        "unlisten",
        "notify",
        "prepare",
        "execute",
        "deallocate",
        "declare_cursor",
        "fetch",
        "close_cursor",
        "explain",
        # tcl
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "prepare_transaction",
        "commit_prepared",
        "rollback_prepared",
        # copy
        "copy_to_program",
        "copy_from_program",
        "copy_to_file",
        "copy_from_file",
        "copy_to_stdout",
        "copy_from_stdin",
        # procedural
        "do_block",
        "call",
        # admin
        "vacuum",
        "analyze",
        "cluster",
        "reindex",
        "checkpoint",
        "load",
        "alter_system",
        # fail-closed
        "unknown",
    }
)


@dataclass(frozen=True, slots=True)
class StatementAnalysis:
    """What one statement does, as far as the parse tree tells.

    `tables` are "schema.table" names; `functions` are bare lower-case names of every function
    called anywhere in the statement, `qualified_functions` keep the schema when one was written.
    `operations` include those of nested data-modifying CTEs.

    A statement that runs a prepared statement carries `execute_name`: plain `EXECUTE p` (and
    `EXPLAIN ANALYZE EXECUTE p`) comes back as `Category.UNKNOWN`, so that a caller which does
    not know `p` fails closed; a caller that stored p's analysis at PREPARE time substitutes it
    (keeping this statement's own operations, such as "explain" or "create_table").

    `search_path` is set by statements that change it, for the session to track: the new list
    for `SET search_path TO ...`, and an empty tuple for the statements that put it back to
    the server default (`SET ... TO DEFAULT`, `RESET search_path`, `RESET ALL`,
    `DISCARD ALL`), which only the session knows.
    """

    text: str
    category: Category
    operations: frozenset[str]
    tables: frozenset[str]
    columns: frozenset[str]
    functions: frozenset[str]
    qualified_functions: frozenset[str]
    prepare_name: str | None = None
    execute_name: str | None = None
    deallocate_name: str | None = None
    search_path: tuple[str, ...] | None = None


class SqlParseError(SqlgateError):
    """The statement text could not be parsed or analyzed; the gateway must refuse it.

    `position` is the 0-based character offset of the error in the input when it is known.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        if position is not None:
            message = f"{message} (at character {position})"
        super().__init__(message)
        self.position = position
