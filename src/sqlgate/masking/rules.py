"""Which mask rule applies to a column, from the policy's `masks` patterns."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from sqlgate.config import MaskRule


@dataclass(frozen=True, slots=True)
class _Pattern:
    schema: re.Pattern[str]
    table: re.Pattern[str]
    column: re.Pattern[str]


def _compile(pattern: str) -> _Pattern:
    parts = pattern.lower().split(".")
    if len(parts) == 1:
        parts = ["*", "*", *parts]
    elif len(parts) == 2:
        parts = ["*", *parts]
    schema, table, column = (re.compile(fnmatch.translate(p)) for p in parts[-3:])
    return _Pattern(schema, table, column)


class MaskSet:
    """The ordered mask rules of one policy; the first rule naming a column wins.

    Column patterns: `schema.table.column`, `table.column` (any schema) or `*.column`
    (any table), each part a glob, compared case-insensitively.
    """

    def __init__(self, rules: list[MaskRule]) -> None:
        self._rules = [(rule, [_compile(c) for c in rule.columns]) for rule in rules]
        self._cache: dict[tuple[str, str, str], MaskRule | None] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def rule_for(self, schema: str, table: str, column: str) -> MaskRule | None:
        key = (schema.lower(), table.lower(), column.lower())
        if key in self._cache:
            return self._cache[key]
        found = None
        for rule, patterns in self._rules:
            if any(p.schema.fullmatch(key[0]) and p.table.fullmatch(key[1])
                   and p.column.fullmatch(key[2]) for p in patterns):
                found = rule
                break
        self._cache[key] = found
        return found

    def could_match_table(self, schema: str, table: str) -> bool:
        """Whether some pattern may name a column of this table (for COPY refusals)."""
        s, t = schema.lower(), table.lower()
        return any(p.schema.fullmatch(s) and p.table.fullmatch(t)
                   for _rule, patterns in self._rules for p in patterns)
