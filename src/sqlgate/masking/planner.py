"""Deciding, once per result description, which output columns get masked and how.

Provenance comes from the server: each RowDescription field carries the table OID and
attribute number of the column it reads, which the catalog resolves however the query
aliased it. A field without a table OID is a derived value (expression, aggregate, whole-row
value, ...): it is masked whenever the statement could let a masked column flow into it.
Views are resolved through their definitions, recursively. When the gateway cannot tell,
it masks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from pglast import parser as pg_parser

from sqlgate.config import MaskRule
from sqlgate.core import ColumnDescription
from sqlgate.masking.rules import MaskSet
from sqlgate.masking.strategies import Masker, MaskSettings, build_masker, redact_rule
from sqlgate.sql import SqlParseError, StatementAnalysis

log = logging.getLogger(__name__)

TABLE_KINDS = frozenset("rpf")  # table, partitioned table, foreign table
VIEW_KINDS = frozenset("vm")  # view, materialized view
_INDIRECT = frozenset({"fetch", "execute"})  # results whose query text is not this statement
TEXT_LIKE = frozenset({25, 1043, 1042, 19, 18, 705, 114, 3802})


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str
    columns: dict[int, str]  # attnum -> column name
    view_sql: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class Catalog(Protocol):
    """What the planner needs to know about a target's schema (cached by the implementation)."""

    async def relations(self, oids: Iterable[int]) -> dict[int, Relation]: ...

    async def relations_by_name(self, names: Iterable[str]) -> dict[str, Relation]: ...

    async def user_functions(self, names: Iterable[str]) -> frozenset[str]: ...

    def invalidate(self) -> None:
        """Forget what was cached (after DDL)."""
        ...


Analyzer = Callable[[str], tuple[StatementAnalysis, ...] | SqlParseError]


@dataclass(slots=True)
class RowPlan:
    """How to rewrite each row of one result; built once per RowDescription."""

    maskers: tuple[tuple[int, Masker], ...]
    detect: tuple[int, ...] = ()
    detector: Callable[[bytes], bytes | None] | None = None
    masked_cells: int = field(default=0)

    def apply(self, values: list[bytes | None]) -> None:
        """Rewrite the values in place."""
        count = 0
        for index, masker in self.maskers:
            value = values[index]
            if value is not None:
                values[index] = masker(value)
                count += 1
        detector = self.detector
        if detector is not None:
            for index in self.detect:
                value = values[index]
                if value is not None:
                    found = detector(value)
                    if found is not None:
                        values[index] = found
                        count += 1
        self.masked_cells += count


def _strings(fields: list[Any]) -> list[str]:
    out = []
    for f in fields:
        if "String" in f:
            out.append(f["String"].get("sval", ""))
        elif "A_Star" in f:
            out.append("*")
    return out


def _from_aliases(node: Any, out: dict[str, str], search_path: Sequence[str]) -> None:
    if not isinstance(node, dict):
        return
    if "RangeVar" in node:
        rv = node["RangeVar"]
        schema = rv.get("schemaname") or (search_path[0] if search_path else "public")
        qualified = f"{schema}.{rv['relname']}"
        out[rv.get("alias", {}).get("aliasname") or rv["relname"]] = qualified
    elif "JoinExpr" in node:
        _from_aliases(node["JoinExpr"].get("larg"), out, search_path)
        _from_aliases(node["JoinExpr"].get("rarg"), out, search_path)


class ResultPlanner:
    """Plans the masking of results for one policy on one target."""

    def __init__(
        self,
        masks: MaskSet,
        settings: MaskSettings,
        catalog: Catalog,
        analyzer: Analyzer,
        detector: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.masks = masks
        self.settings = settings
        self.catalog = catalog
        self.analyzer = analyzer
        self.detector = detector
        self._view_rules: dict[tuple[int, int], MaskRule | None] = {}
        self._plans: dict[tuple[object, ...], RowPlan | None] = {}
        self._generation: object = None

    @property
    def active(self) -> bool:
        return bool(self.masks) or self.detector is not None

    async def plan(self, sql: str, columns: Sequence[ColumnDescription]) -> RowPlan | None:
        # A result whose every column comes from a table is planned by its description alone
        # (the statement text cannot matter): cache it, until the catalog changes.
        generation = getattr(self.catalog, "generation", 0)
        if generation != self._generation:  # DDL or the timer refreshed the catalog
            self._generation = generation
            self._plans.clear()
            self._view_rules.clear()
        key = None
        if all(c.table_oid for c in columns):
            key = (
                generation,
                tuple((c.table_oid, c.column_number, c.type_oid, c.format_code) for c in columns),
            )
            if key in self._plans:
                cached = self._plans[key]
                return (
                    None
                    if cached is None
                    else RowPlan(cached.maskers, cached.detect, cached.detector)
                )
        plan = await self._plan(sql, columns)
        if key is not None:
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = plan
        return None if plan is None else RowPlan(plan.maskers, plan.detect, plan.detector)

    async def _plan(self, sql: str, columns: Sequence[ColumnDescription]) -> RowPlan | None:
        rules: list[MaskRule | None] = [None] * len(columns)
        oids = {c.table_oid for c in columns if c.table_oid}
        relations = await self.catalog.relations(oids) if oids else {}
        derived_taint: bool | None = None
        for index, column in enumerate(columns):
            if column.table_oid:
                relation = relations.get(column.table_oid)
                rules[index] = await self._rule_for_column(relation, column.column_number, 0)
            else:
                if derived_taint is None:
                    derived_taint = await self.statement_taint(sql)
                if derived_taint:
                    rules[index] = redact_rule()
        maskers = tuple(
            (i, build_masker(rule, columns[i].type_oid, columns[i].format_code == 1, self.settings))
            for i, rule in enumerate(rules)
            if rule is not None
        )
        detect: tuple[int, ...] = ()
        if self.detector is not None:
            detect = tuple(
                i
                for i, c in enumerate(columns)
                if rules[i] is None
                and c.type_oid in TEXT_LIKE
                and not (c.type_oid == 3802 and c.format_code == 1)
            )
        if not maskers and not detect:
            return None
        return RowPlan(maskers, detect, self.detector if detect else None)

    async def _rule_for_column(
        self, relation: Relation | None, attnum: int, depth: int
    ) -> MaskRule | None:
        if relation is None or depth > 16:
            return redact_rule()  # unknown provenance: fail closed
        if relation.kind in TABLE_KINDS:
            name = relation.columns.get(attnum)
            if name is None:
                return redact_rule()
            return self.masks.rule_for(relation.schema, relation.name, name)
        if relation.kind in VIEW_KINDS:
            key = (relation.oid, attnum)
            if key not in self._view_rules:
                self._view_rules[key] = await self._view_column_rule(relation, attnum, depth)
            return self._view_rules[key]
        # System columns of other relation kinds (sequences, composite types...): no PII.
        return None

    async def _view_column_rule(self, view: Relation, attnum: int, depth: int) -> MaskRule | None:
        """Follow a view column to what it exposes; a derived one is masked if tainted."""
        sql = view.view_sql
        if not sql:
            return redact_rule()
        try:
            tree = orjson.loads(pg_parser.parse_sql_json(sql))
            select = tree["stmts"][0]["stmt"]["SelectStmt"]
        except Exception:
            return redact_rule()
        targets = select.get("targetList")
        if not targets or attnum < 1 or attnum > len(targets):
            # UNION and friends: no single target list to follow.
            return redact_rule() if await self.statement_taint(sql) else None
        value = targets[attnum - 1]["ResTarget"].get("val", {})
        if "ColumnRef" in value:
            names = _strings(value["ColumnRef"]["fields"])
            aliases: dict[str, str] = {}
            for item in select.get("fromClause", []):
                _from_aliases(item, aliases, ("public",))
            candidates = (
                [aliases[names[0]]]
                if len(names) == 2 and names[0] in aliases
                else (list(aliases.values()) if len(names) == 1 else [])
            )
            column = names[-1]
            found = await self.catalog.relations_by_name(candidates)
            owners = [r for r in found.values() if column in r.columns.values()]
            if len(owners) == 1:
                owner = owners[0]
                attno = next(k for k, v in owner.columns.items() if v == column)
                return await self._rule_for_column(owner, attno, depth + 1)
        return redact_rule() if await self.statement_taint(sql, depth + 1) else None

    async def statement_taint(self, sql: str, depth: int = 0) -> bool:
        """Could a masked column (or a whole row holding one) flow into a derived value?"""
        analyses = self.analyzer(sql)
        if isinstance(analyses, SqlParseError):
            return True
        if any(
            a.execute_name is not None or not _INDIRECT.isdisjoint(a.operations) for a in analyses
        ):
            return True  # FETCH from a cursor, EXECUTE of a prepared query: text elsewhere
        tables = {t for a in analyses for t in a.tables}
        functions = {f for a in analyses for f in a.functions}
        if functions and await self.catalog.user_functions(functions):
            return True  # a function of the database's own could read masked data
        relations = await self.catalog.relations_by_name(tables) if tables else {}
        masked_names: set[str] = set()
        all_names: set[str] = set()
        for relation in relations.values():
            for attnum, name in relation.columns.items():
                all_names.add(name)
                if await self._rule_for_column(relation, attnum, depth + 1) is not None:
                    masked_names.add(name)
        if not masked_names:
            return False
        for analysis in analyses:
            for ref in analysis.columns:
                last = ref.rsplit(".", 1)[-1].strip('"')
                if last == "*" or last in masked_names or last not in all_names:
                    return True
        return False
