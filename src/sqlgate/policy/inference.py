"""Inference protection: masked columns may be read (masked), not probed.

An identity that may filter, sort, group or aggregate on a masked column can extract its
values one comparison at a time (`WHERE email LIKE 'a%'`, `ORDER BY ssn`, `max(email)`).
For policies with masks, every use of a masked column outside the select list is refused,
except plain equality lookups in `equality` mode, which only confirm a value the client
already has. PostgreSQL's statistics and activity views, which hold column values, are
refused outright for identities with masks.
"""

from __future__ import annotations

import fnmatch
import re
from collections import OrderedDict

from sqlgate.masking.rules import MaskSet
from sqlgate.sql import SqlParseError, StatementAnalysis
from sqlgate.sql.usage import ColumnUse, UseContext, column_uses

# Relations and functions that expose stored values or other sessions' statement text.
# The one list of side doors: docs/masking.md documents it.
SIDE_DOOR_RELATIONS = (
    "pg_catalog.pg_stats",
    "pg_catalog.pg_stats_ext",
    "pg_catalog.pg_stats_ext_exprs",
    "pg_catalog.pg_statistic",
    "pg_catalog.pg_statistic_ext",
    "pg_catalog.pg_statistic_ext_data",
    "pg_catalog.pg_stat_activity",
    "*.pg_stat_statements",
    "*.pg_stat_statements_info",
)
SIDE_DOOR_FUNCTIONS = (
    "pg_notify",  # its payload reaches listeners outside any result set, unmasked
    "pg_stat_get_activity",
    "pg_stat_statements",
    "pg_get_backend_memory_contexts",
)
_SIDE_RELATIONS = tuple(re.compile(fnmatch.translate(p)) for p in SIDE_DOOR_RELATIONS)

_COPIES = frozenset({"insert", "update", "merge", "create_table", "create_view"})
_ALWAYS_ALLOWED = frozenset({UseContext.OUTPUT, UseContext.EXPRESSION})
_LOOKUP_CONTEXTS = frozenset({UseContext.PREDICATE, UseContext.JOIN})
_CACHE_LIMIT = 10_000


def _schema_table(qualified: str) -> tuple[str, str]:
    schema, _, table = qualified.partition(".")
    return schema.strip('"'), table.strip('"')


class InferenceGuard:
    """Refuses statements that use masked columns where their values could be inferred."""

    def __init__(self, masks: MaskSet, mode: str) -> None:
        self.masks = masks
        self.mode = mode  # strict | equality | off
        self._cache: OrderedDict[tuple[str, tuple[str, ...]], str | None] = OrderedDict()

    def check(
        self, sql: str, search_path: tuple[str, ...], analyses: tuple[StatementAnalysis, ...]
    ) -> str | None:
        """None when the statement may run, else the reason it may not."""
        key = (sql, search_path)
        if key in self._cache:
            return self._cache[key]
        reason = self._side_door(analyses) or self._probe(sql, search_path, analyses)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.popitem(last=False)
        self._cache[key] = reason
        return reason

    def _side_door(self, analyses: tuple[StatementAnalysis, ...]) -> str | None:
        for analysis in analyses:
            for table in analysis.tables:
                name = table.lower().replace('"', "")
                if any(p.fullmatch(name) for p in _SIDE_RELATIONS):
                    return (
                        f"{name.split('.', 1)[-1]} can reveal masked values and is not "
                        "readable for identities with masks"
                    )
            for function in analysis.functions:
                if function in SIDE_DOOR_FUNCTIONS:
                    return (
                        f"{function}() can reveal masked values and is not callable for "
                        "identities with masks"
                    )
        return None

    def _probe(
        self, sql: str, search_path: tuple[str, ...], analyses: tuple[StatementAnalysis, ...]
    ) -> str | None:
        if not self.masks:
            return None
        writes = any(not _COPIES.isdisjoint(a.operations) for a in analyses)
        if self.mode == "off" and not writes:
            return None
        try:
            uses = column_uses(sql, search_path)
        except SqlParseError:
            return "the statement could not be checked for uses of masked columns"
        if writes:
            # INSERT ... SELECT email, CREATE TABLE AS, UPDATE SET x = ssn: the value would
            # land in a column no mask names and could then be read raw. Whatever the mode.
            for use in uses:
                column = self._masked_column(use)
                if column is not None:
                    return (
                        f"masked column {column} would be copied into a table; "
                        "statements that write may not read masked columns"
                    )
        if self.mode == "off":
            return None
        for use in uses:
            if use.context in _ALWAYS_ALLOWED:
                continue
            if self.mode == "equality" and use.equality_lookup and use.context in _LOOKUP_CONTEXTS:
                continue
            column = self._masked_column(use)
            if column is not None:
                where = use.context.value.replace("_", " ")
                return (
                    f"masked column {column} is used in {where} position; inference mode "
                    f"{self.mode!r} allows masked columns only in the select list"
                    + (" and in equality lookups" if self.mode == "equality" else "")
                )
        return None

    def _masked_column(self, use: ColumnUse) -> str | None:
        for table in use.tables:
            schema, name = _schema_table(table)
            if use.column == "*":
                if self.masks.could_match_table(schema, name):
                    return f"{schema}.{name}.*"
            elif self.masks.rule_for(schema, name, use.column) is not None:
                return f"{schema}.{name}.{use.column}"
        return None
