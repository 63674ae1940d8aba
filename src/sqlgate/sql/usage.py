"""Where a PostgreSQL statement USES each column: the input to inference protection.

Masking results hides values, but a client that may filter, sort, group or branch on a masked
column still learns it one comparison at a time (`WHERE email LIKE 'a%'`, `ORDER BY ssn`,
`1/(CASE WHEN email LIKE 'a%' THEN 0 ELSE 1 END)`). `column_uses` reports every reference to a
column together with the clause it sits in, so that the caller can decide, with its masks and
the catalog, which uses to allow.

The tree comes from `pglast.parser.parse_sql_json` and is walked as plain dicts, like
`sqlgate.sql.postgres`. Name resolution follows PostgreSQL's scoping closely enough to map a
reference to its candidate tables, never to pick one (that needs the catalog):

- a qualifier resolves through the FROM clause of its own query level, then the enclosing
  levels (correlated subqueries); an unqualified name lists every table of every visible level;
- CTEs and subqueries in FROM are not tables: a reference to one of their columns is mapped
  through to the column(s) it is computed from, so `WITH c AS (SELECT email AS e FROM users)
  SELECT 1 FROM c WHERE e LIKE 'a%'` reports column "email" of public.users as a predicate
  (with the qualifier as written). A column computed by an expression maps to every column
  the expression reads, and is never an equality lookup;
- the select lists of CTEs and FROM subqueries are OUTPUT: whatever the outer query does with
  those columns is reported again, mapped through, in the outer context;
- `*` and whole-row references (`SELECT u FROM users u`, `row_to_json(u)`) report column "*"
  for a table, or the output columns of a CTE/subquery. A bare name that matches a FROM alias is
  reported both as a column and as a whole row (PostgreSQL prefers the column, only the
  catalog knows whether there is one). A whole row is never OUTPUT: its value is a composite;
- a function, XMLTABLE or JSON_TABLE in FROM is computed from the columns its arguments read:
  its columns map to those (never plain), and when it declares no column names, so does any
  unqualified name (fail closed: the name may be one of its output columns);
- ORDER BY / DISTINCT ON / GROUP BY positions (`ORDER BY 1`) and output names (`ORDER BY e`
  for `email AS e`) map to the columns that output is computed from; a position behind a `*`
  maps to everything the `*` expands to. GROUP BY name reports the input column and the
  output alias both (PostgreSQL prefers the input column).

Choices worth knowing: join conditions (ON, USING, NATURAL, MERGE ... ON) are JOIN; a window's
ORDER BY and an aggregate's ORDER BY are ORDER (PARTITION BY and frame offsets are WINDOW);
`WITHIN GROUP (ORDER BY x)` feeds x to the aggregate (AGGREGATE); window functions count as
aggregates. Plain `SELECT DISTINCT` and `UNION` (without ALL) compare whole output rows, so
their output columns are reported again as DISTINCT_ON; INTERSECT and EXCEPT compare rows
across branches, so theirs are reported again as JOIN. A select list whose rows do not go back
to the client as a query result (INSERT ... SELECT, UPDATE SET, CREATE TABLE AS, SELECT INTO,
CREATE VIEW, COPY (query) TO) is EXPRESSION, not OUTPUT. Clauses of statements that are not
queries or DML (CHECK, index predicates, policies, rules, defaults) are PREDICATE.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pglast import parser as _pg

from sqlgate.sql.model import SqlParseError
from sqlgate.sql.postgres import _ident, _loads, _resolver, parse_tree

__all__ = ["ColumnUse", "UseContext", "column_uses"]

Node = dict[str, Any]


class UseContext(enum.StrEnum):
    """The clause a column reference sits in."""

    OUTPUT = "output"  # the column itself, as an output column of the select list / RETURNING
    EXPRESSION = "expression"  # inside a computed output (upper(email), email || 'x')
    PREDICATE = "predicate"  # WHERE, HAVING, FILTER, LIMIT/OFFSET, subqueries used by those
    JOIN = "join"  # ON / USING / NATURAL join conditions, MERGE ... ON
    ORDER = "order"  # ORDER BY, also in windows and aggregates
    GROUP = "group"  # GROUP BY, GROUPING SETS, ROLLUP, CUBE
    WINDOW = "window"  # PARTITION BY, frame offsets
    DISTINCT_ON = "distinct_on"  # DISTINCT ON, plain DISTINCT, UNION without ALL
    AGGREGATE = "aggregate"  # argument of an aggregate or window function
    CASE_CONDITION = "case_condition"  # WHEN condition of a CASE, wherever the CASE is


@dataclass(frozen=True, slots=True)
class ColumnUse:
    """One use of a column (or "*": all columns / a whole row) by a statement.

    `column` is lower-case unless it was quoted; `qualifier` is the table alias or name as
    written ("u" in u.email, "public.users" in public.users.email), None when unqualified.
    `equality_lookup` is True only when the column itself, unwrapped, is compared with `=` to
    constants or parameters only: `col = 'x'`, `$1 = col`, `col IN ('a', $2)`,
    `col = ANY($1)`, `CASE col WHEN 'a' ...`, an ON CONFLICT arbiter column of an INSERT of
    constant VALUES. `tables` are the candidate tables ("schema.table") the column may belong
    to: the caller decides with the catalog which of them has it.
    """

    column: str
    qualifier: str | None
    context: UseContext
    equality_lookup: bool
    tables: tuple[str, ...]


OUTPUT = UseContext.OUTPUT
EXPRESSION = UseContext.EXPRESSION
PREDICATE = UseContext.PREDICATE
JOIN = UseContext.JOIN
ORDER = UseContext.ORDER
GROUP = UseContext.GROUP
WINDOW = UseContext.WINDOW
DISTINCT_ON = UseContext.DISTINCT_ON
AGGREGATE = UseContext.AGGREGATE
CASE_CONDITION = UseContext.CASE_CONDITION

# Aggregates of PostgreSQL (ordinary, ordered-set and hypothetical-set). Any call with
# DISTINCT, *, ORDER BY, FILTER, WITHIN GROUP or OVER is an aggregate or window call too.
_AGGREGATES = frozenset(
    [
        "any_value",
        "array_agg",
        "avg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "bool_and",
        "bool_or",
        "corr",
        "count",
        "covar_pop",
        "covar_samp",
        "cume_dist",
        "dense_rank",
        "every",
        "json_agg",
        "json_agg_strict",
        "json_object_agg",
        "json_object_agg_strict",
        "json_object_agg_unique",
        "json_object_agg_unique_strict",
        "jsonb_agg",
        "jsonb_agg_strict",
        "jsonb_object_agg",
        "jsonb_object_agg_strict",
        "jsonb_object_agg_unique",
        "jsonb_object_agg_unique_strict",
        "max",
        "min",
        "mode",
        "percent_rank",
        "percentile_cont",
        "percentile_disc",
        "range_agg",
        "range_intersect_agg",
        "rank",
        "regr_avgx",
        "regr_avgy",
        "regr_count",
        "regr_intercept",
        "regr_r2",
        "regr_slope",
        "regr_sxx",
        "regr_sxy",
        "regr_syy",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "string_agg",
        "sum",
        "var_pop",
        "var_samp",
        "variance",
        "xmlagg",
    ]
)
_AGG_KEYS = frozenset({"agg_star", "agg_distinct", "agg_order", "agg_filter", "over"})
_LOOKUP_KINDS = frozenset({"AEXPR_OP", "AEXPR_IN", "AEXPR_OP_ANY"})

# Nodes without column references below them.
_LEAVES = frozenset(
    {
        "String",
        "A_Const",
        "ParamRef",
        "A_Star",
        "Integer",
        "Float",
        "Boolean",
        "BitString",
        "TypeName",
        "RangeVar",
        "SQLValueFunction",
        "SetToDefault",
        "CurrentOfExpr",
    }
)
# Fields that only hold names, types or aliases.
_SKIP_KEYS = frozenset(
    {
        "typeName",
        "funcname",
        "name",
        "names",
        "colnames",
        "aliascolnames",
        "alias",
        "collname",
        "opclass",
        "lockingClause",
        "format",
        "returning",
        "typeNames",
    }
)

Ref = tuple[str, tuple[str, ...], bool]  # (column, candidate tables, plain: the column itself)
_Item = tuple[str | None, str | None, "_Source"]  # (name to qualify with, schema, source)

_TABLE, _DERIVED, _BAG, _GROUP = range(4)


class _Entry:
    """One output column of a query: its name, what it is computed from, or a `*`."""

    __slots__ = ("alias", "name", "refs", "stars")

    def __init__(
        self,
        name: str | None,
        refs: list[Ref],
        stars: list[_Source] | None = None,
        alias: bool = False,
    ) -> None:
        self.name = name
        self.refs = refs
        self.stars = stars  # the sources a `*` / `x.*` expands, in place of refs
        self.alias = alias  # the name was written with AS


class _Source:
    """What a FROM item provides: a table, a CTE/subquery, a function, or a named join."""

    __slots__ = ("all_tables", "children", "entries", "kind", "names", "plain", "refs")

    def __init__(
        self,
        kind: int,
        all_tables: tuple[str, ...],
        *,
        plain: bool = True,
        names: frozenset[str] | None = None,
        entries: list[_Entry] | None = None,
        refs: list[Ref] | None = None,
        children: list[_Source] | None = None,
    ) -> None:
        self.kind = kind
        self.all_tables = all_tables
        self.plain = plain
        self.names = names  # TABLE: renamed columns (alias colnames); BAG: known output names
        self.entries = entries or []
        self.refs = refs or []
        self.children = children or []

    def resolve(self, name: str, qualified: bool) -> list[Ref]:
        kind = self.kind
        if kind == _TABLE:
            if self.names is not None and name in self.names:
                return [("*", self.all_tables, False)]  # `users u(a)`: a is some column
            return [(name, self.all_tables, self.plain)]
        if kind == _DERIVED:
            hits: list[Ref] = []
            loose: list[Ref] = []
            for entry in self.entries:
                if entry.stars is not None:
                    for star in entry.stars:
                        loose.extend(star.resolve(name, False))
                elif entry.name == name:
                    hits.extend(entry.refs)
                elif entry.name is None:
                    loose.extend((c, t, False) for c, t, _ in entry.refs)
            return hits or loose
        if kind == _BAG:
            if qualified or self.names is None or name in self.names:
                return self.refs
            return []
        refs: list[Ref] = []
        for child in self.children:
            refs.extend(child.resolve(name, qualified))
        return refs

    def knows(self, name: str) -> bool:
        """Whether `name` can be a column of this source (constants included)."""
        kind = self.kind
        if kind == _DERIVED:
            return any(
                e.name == name
                or e.name is None
                or (e.stars is not None and any(s.knows(name) for s in e.stars))
                for e in self.entries
            )
        if kind == _BAG:
            return self.names is None or name in self.names
        if kind == _GROUP:
            return any(c.knows(name) for c in self.children)
        return True

    def star_refs(self) -> list[Ref]:
        kind = self.kind
        if kind == _TABLE:
            return [("*", self.all_tables, self.plain)]
        if kind == _BAG:
            return self.refs
        refs: list[Ref] = []
        if kind == _DERIVED:
            for entry in self.entries:
                if entry.stars is None:
                    refs.extend(entry.refs)
                else:
                    for star in entry.stars:
                        refs.extend(star.star_refs())
        else:
            for child in self.children:
                refs.extend(child.star_refs())
        return refs


_EMPTY_SOURCE = _Source(_DERIVED, ())


class _Level:
    """One query level: its FROM items, its CTEs, and the levels it can see."""

    __slots__ = ("cte_parent", "ctes", "items", "parent")

    def __init__(self, parent: _Level | None, cte_parent: _Level | None) -> None:
        self.parent = parent  # whose FROM items (correlated) references may use
        self.cte_parent = cte_parent  # whose CTEs are visible
        self.items: list[_Item] = []
        self.ctes: dict[str, _Source] | None = None

    def find_cte(self, name: str) -> _Source | None:
        level: _Level | None = self
        while level is not None:
            ctes = level.ctes
            if ctes is not None and name in ctes:
                return ctes[name]
            level = level.cte_parent
        return None

    def find(self, qualifier: list[str]) -> _Source | None:
        """The source a qualifier (alias, table, or schema.table) names, innermost first."""
        last = qualifier[-1]
        schema = qualifier[-2] if len(qualifier) > 1 else None
        level: _Level | None = self
        while level is not None:
            for name, item_schema, source in level.items:
                if name != last:
                    continue
                if schema is None or item_schema == schema:
                    return source
                if (
                    item_schema is None
                    and source.kind == _TABLE
                    and f"{_ident(schema)}.{_ident(last)}" in source.all_tables
                ):
                    return source
            level = level.parent
        return None

    def visible_tables(self) -> tuple[str, ...]:
        tables: dict[str, None] = {}
        level: _Level | None = self
        while level is not None:
            for _, _, source in level.items:
                tables.update(dict.fromkeys(source.all_tables))
            level = level.parent
        return tuple(tables)


def _sub(ctx: UseContext) -> UseContext:
    """The context of whatever sits inside an expression found in `ctx`."""
    return EXPRESSION if ctx is OUTPUT else ctx


def _is_const(node: Any) -> bool:
    """A constant or parameter, possibly cast, collated, or an ARRAY[...] of those."""
    if node.__class__ is not dict:
        return False
    if "A_Const" in node or "ParamRef" in node:
        return True
    for key in ("TypeCast", "CollateClause"):
        wrapped = node.get(key)
        if wrapped is not None:
            return _is_const(wrapped.get("arg"))
    array = node.get("A_ArrayExpr")
    if array is not None:
        return all(_is_const(e) for e in array.get("elements", ()))
    return False


def _column_fields(node: Any) -> list[Node] | None:
    """The fields of a plain column reference (not `x.*`), else None."""
    if node.__class__ is not dict:
        return None
    ref = node.get("ColumnRef")
    if ref is None:
        return None
    fields: list[Node] = ref.get("fields", [])
    if not fields or "A_Star" in fields[-1]:
        return None
    return fields


def _strings(nodes: Iterable[Any]) -> list[str]:
    return [n["String"].get("sval", "") for n in nodes if n.__class__ is dict and "String" in n]


def _alias(body: Node) -> tuple[str | None, list[str]]:
    alias = body.get("alias")
    if not alias:
        return None, []
    return alias.get("aliasname"), _strings(alias.get("colnames", ()))


def _colname(val: Any) -> str | None:
    """The name PostgreSQL gives an unaliased output column (FigureColname), when it is one
    that can matter here."""
    if val.__class__ is not dict or len(val) != 1:
        return None
    ((kind, body),) = val.items()
    if kind == "ColumnRef":
        fields = body.get("fields", ())
        return _strings(fields[-1:])[0] if fields and "String" in fields[-1] else None
    if kind == "A_Indirection":
        names = _strings(body.get("indirection", ()))
        return names[-1] if names else _colname(body.get("arg"))
    if kind == "FuncCall":
        names = _strings(body.get("funcname", ()))
        return names[-1] if names else None
    if kind == "TypeCast":
        inner = _colname(body.get("arg"))
        if inner is not None:
            return inner
        names = _strings(body.get("typeName", {}).get("names", ()))
        return names[-1] if names else None
    simple = {
        "CaseExpr": "case",
        "CoalesceExpr": "coalesce",
        "A_ArrayExpr": "array",
        "RowExpr": "row",
        "GroupingFunc": "grouping",
    }
    if kind in simple:
        return simple[kind]
    if kind == "MinMaxExpr":
        return "greatest" if body.get("op") == "IS_GREATEST" else "least"
    if kind == "SubLink":
        link = body.get("subLinkType")
        if link == "EXISTS_SUBLINK":
            return "exists"
        if link == "ARRAY_SUBLINK":
            return "array"
        if link == "EXPR_SUBLINK":
            select = body.get("subselect", {}).get("SelectStmt", {})
            targets = select.get("targetList", ())
            if targets:
                target = targets[0].get("ResTarget", {})
                return target.get("name") or _colname(target.get("val"))
    return None


def _renamed(source: _Source, colnames: list[str]) -> _Source:
    """A CTE or FROM item seen through `alias(a, b, ...)`: its first columns renamed."""
    if not colnames:
        return source
    if source.kind == _TABLE:
        return _Source(_TABLE, source.all_tables, plain=source.plain, names=frozenset(colnames))
    if source.kind != _DERIVED:
        return _Source(_BAG, source.all_tables, refs=source.star_refs(), names=frozenset(colnames))
    entries: list[_Entry] = []
    it = iter(colnames)
    for index, entry in enumerate(source.entries):
        if entry.stars is not None:
            # Positions after a `*` are unknown: the remaining names may be any column of it.
            rest = _Source(_DERIVED, source.all_tables, entries=source.entries[index:])
            loose = [(c, t, False) for c, t, _ in rest.star_refs()]
            entries.extend(_Entry(name, loose, None, True) for name in it)
            entries.extend(source.entries[index:])
            break
        name = next(it, None)
        entries.append(entry if name is None else _Entry(name, entry.refs, None, True))
    return _Source(_DERIVED, source.all_tables, entries=entries)


def _position_refs(entries: list[_Entry], position: int) -> list[Ref]:
    """What output column `position` (1-based, as in ORDER BY 1) is computed from."""
    if position < 1:
        return []
    head = entries[:position]
    if any(e.stars is not None for e in head):
        # Behind a `*` the positions are unknown: every column it could be.
        return _Source(_DERIVED, (), entries=entries).star_refs()
    return entries[position - 1].refs if position <= len(entries) else []


def _const_values(select: Any) -> bool:
    """Whether an INSERT's source is VALUES of constants and parameters only."""
    body = select.get("SelectStmt") if select.__class__ is dict else None
    if not body or "valuesLists" not in body:
        return False
    for row in body["valuesLists"]:
        for item in row.get("List", {}).get("items", ()):
            if not (_is_const(item) or "SetToDefault" in item):
                return False
    return True


def _returning(body: Node) -> list[Any]:
    targets = body.get("returningList")
    if targets is None:
        targets = (body.get("returningClause") or {}).get("exprs", ())
    return list(targets)


class _Walker:
    """Walks statements and records the uses it finds in `uses`."""

    __slots__ = ("_collect", "_hooks", "_resolve", "_seen", "_tables", "uses")

    def __init__(self, resolve: Callable[[str], tuple[str, ...]]) -> None:
        self.uses: list[ColumnUse] = []
        self._hooks: dict[int, tuple[dict[str, _Source], str, list[str]]] = {}
        self._seen: set[tuple[str, str | None, UseContext, bool, tuple[str, ...]]] = set()
        self._resolve = resolve
        self._tables: dict[tuple[str | None, str], tuple[str, ...]] = {}
        # While an output column is walked: the refs it is computed from.
        self._collect: list[Ref] | None = None

    # -- recording -----------------------------------------------------------------------------

    def _emit(self, refs: list[Ref], qualifier: str | None, ctx: UseContext, lookup: bool) -> None:
        if not refs:
            return
        if self._collect is not None:
            self._collect.extend(refs)
        if len(refs) == 1:
            column, tables, plain = refs[0]
            key = (
                column,
                qualifier,
                ctx if plain or ctx is not OUTPUT else EXPRESSION,
                lookup and plain,
                tables,
            )
            if key not in self._seen:
                self._seen.add(key)
                self.uses.append(ColumnUse(*key))
            return
        merged: dict[str, tuple[dict[str, None], list[bool]]] = {}
        for column, tables, plain in refs:
            seen = merged.get(column)
            if seen is None:
                merged[column] = (dict.fromkeys(tables), [plain])
            else:
                seen[0].update(dict.fromkeys(tables))
                seen[1][0] = seen[1][0] and plain
        collect, self._collect = self._collect, None
        for column, (tables_seen, (plain,)) in merged.items():
            self._emit([(column, tuple(tables_seen), plain)], qualifier, ctx, lookup)
        self._collect = collect

    def _collected(self, val: Any, level: _Level, ctx: UseContext) -> list[Ref]:
        """Walk one output expression and return what it is computed from."""
        outer = self._collect
        refs: list[Ref] = []
        self._collect = refs
        try:
            self._expr(val, level, ctx)
        finally:
            self._collect = outer
        if outer is not None:
            outer.extend(refs)
        if _column_fields(val) is None:
            return [(c, t, False) for c, t, _ in refs]
        return refs

    def _table_names(self, schema: str | None, name: str) -> tuple[str, ...]:
        key = (schema, name)
        names = self._tables.get(key)
        if names is None:
            ident = _ident(name)
            if schema is not None:
                names = (f"{_ident(schema)}.{ident}",)
            else:
                names = tuple(f"{_ident(s)}.{ident}" for s in self._resolve(name))
            self._tables[key] = names
        return names

    # -- statements ----------------------------------------------------------------------------

    def top(self, stmt: Node) -> None:
        """A top-level statement."""
        if len(stmt) != 1:
            self._expr(stmt, _Level(None, None), PREDICATE)
            return
        ((kind, body),) = stmt.items()
        if kind == "SelectStmt":
            self._select(body, None, None, EXPRESSION if "intoClause" in body else OUTPUT)
        elif kind in _DML:
            _DML[kind](self, body, None, None, OUTPUT)
        elif kind in ("ExplainStmt", "PrepareStmt", "DeclareCursorStmt"):
            query = body.get("query")
            if query:
                self.top(query)
        elif kind in ("CreateTableAsStmt", "ViewStmt"):
            query = body.get("query")
            if query:
                self._statement(query, None, None, EXPRESSION)
        elif kind == "CopyStmt":
            self._copy(body)
        else:
            level = _Level(None, None)
            for key in ("relation", "table", "view"):
                rel = body.get(key)
                if rel.__class__ is dict and "relname" in rel:
                    level.items.append(self._range_var(rel, level, ctes=False))
            self._expr(body, level, PREDICATE)

    def _copy(self, body: Node) -> None:
        query = body.get("query")
        if query:
            self._statement(query, None, None, EXPRESSION)
            return
        rel = body.get("relation")
        if rel and not body.get("is_from"):
            tables = self._table_names(rel.get("schemaname"), rel.get("relname", ""))
            names = _strings(body.get("attlist", ())) or ["*"]
            for name in names:
                self._emit([(name, tables, True)], None, EXPRESSION, False)

    def _statement(
        self, node: Any, parent: _Level | None, ctes: _Level | None, out: UseContext
    ) -> _Source:
        """A nested query or DML statement (wrapped node); returns what it outputs."""
        if node.__class__ is dict and len(node) == 1:
            ((kind, body),) = node.items()
            if kind == "SelectStmt":
                return self._select(body, parent, ctes, out)
            handler = _DML.get(kind)
            if handler is not None:
                return handler(self, body, parent, ctes, out)
        self._expr(node, _Level(parent, ctes), _sub(out))
        return _EMPTY_SOURCE

    def _select(
        self, body: Node, parent: _Level | None, ctes: _Level | None, out: UseContext
    ) -> _Source:
        level = _Level(parent, ctes)
        with_clause = body.get("withClause")
        if with_clause:
            self._with(with_clause, level)
        op = body.get("op")
        if op is not None and op != "SETOP_NONE":
            return self._set_op(body, level, op, out)
        values = body.get("valuesLists")
        if values is not None:
            entries = self._values(values, level, out)
        else:
            for item in body.get("fromClause", ()):
                self._from_item(item, level)
            entries = self._targets(body.get("targetList", ()), level, out)
        where = body.get("whereClause")
        if where is not None:
            self._expr(where, level, PREDICATE)
        distinct = body.get("distinctClause")
        if distinct:
            if distinct[0]:
                for node in distinct:
                    self._sort_key(node, level, entries, DISTINCT_ON)
            else:  # plain DISTINCT: a DISTINCT ON every output column
                for entry in entries:
                    self._emit(_position_refs([entry], 1), None, DISTINCT_ON, False)
        for node in body.get("groupClause", ()):
            self._group_key(node, level, entries)
        having = body.get("havingClause")
        if having is not None:
            self._expr(having, level, PREDICATE)
        for window in body.get("windowClause", ()):
            self._window(window.get("WindowDef", window), level)
        self._tail(body, level, entries)
        tables: dict[str, None] = {}
        for _, _, source in level.items:
            tables.update(dict.fromkeys(source.all_tables))
        return _Source(_DERIVED, tuple(tables), entries=entries)

    def _tail(self, body: Node, level: _Level, entries: list[_Entry]) -> None:
        for sort in body.get("sortClause", ()):
            node = sort.get("SortBy", {}).get("node")
            if node is not None:
                self._sort_key(node, level, entries, ORDER)
        for key in ("limitOffset", "limitCount"):
            limit = body.get(key)
            if limit is not None:
                self._expr(limit, level, PREDICATE)

    def _set_op(self, body: Node, level: _Level, op: str, out: UseContext) -> _Source:
        left = self._select(body.get("larg", {}), level, level, out)
        if self._hooks:
            hook = self._hooks.pop(id(body), None)
            if hook is not None:
                ctes, name, colnames = hook
                ctes[name] = _renamed(left, colnames)
        right = self._select(body.get("rarg", {}), level, level, out)
        if op != "SETOP_UNION":
            compare: UseContext | None = JOIN  # INTERSECT / EXCEPT compare rows across branches
        else:
            compare = None if body.get("all") else DISTINCT_ON
        if compare is not None:
            self._emit(left.star_refs(), None, compare, False)
            self._emit(right.star_refs(), None, compare, False)
        tables = tuple(dict.fromkeys(left.all_tables + right.all_tables))
        lefts, rights = left.entries, right.entries
        if any(e.stars is not None for e in lefts) or any(e.stars is not None for e in rights):
            entries = [_Entry(None, [], [left, right])]
        else:
            entries = [
                _Entry(e.name, e.refs + (rights[i].refs if i < len(rights) else []), None, e.alias)
                for i, e in enumerate(lefts)
            ]
        self._tail(body, level, entries)
        return _Source(_DERIVED, tables, entries=entries)

    def _targets(self, targets: Iterable[Any], level: _Level, out: UseContext) -> list[_Entry]:
        entries: list[_Entry] = []
        for target in targets:
            res = target.get("ResTarget")
            if res is None:
                continue
            val = res.get("val")
            if val is None:
                continue
            ref = val.get("ColumnRef")
            if ref is not None:
                fields = ref.get("fields", ())
                if fields and "A_Star" in fields[-1]:
                    qualifier = _strings(fields)
                    stars = self._star_sources(qualifier, level)
                    if stars is None:
                        refs: list[Ref] = [("*", level.visible_tables(), False)]
                        entries.append(_Entry(None, refs))
                    else:
                        refs = [r for s in stars for r in s.star_refs()]
                        entries.append(_Entry(None, [], stars))
                    self._emit(refs, ".".join(qualifier) or None, out, False)
                    continue
                if fields:  # a plain column: the common case, without _collected's checks
                    outer = self._collect
                    refs = []
                    self._collect = refs
                    self._column(fields, level, out, False)
                    self._collect = outer
                    if outer is not None:
                        outer.extend(refs)
                    name = res.get("name")
                    if name is None and "String" in fields[-1]:
                        entries.append(_Entry(fields[-1]["String"].get("sval"), refs))
                    else:
                        entries.append(_Entry(name, refs, None, name is not None))
                    continue
            name = res.get("name")
            refs = self._collected(val, level, out)
            entries.append(_Entry(name or _colname(val), refs, None, name is not None))
        return entries

    def _values(self, rows: Iterable[Any], level: _Level, out: UseContext) -> list[_Entry]:
        columns: list[list[Ref]] = []
        for row in rows:
            for index, item in enumerate(row.get("List", {}).get("items", ())):
                if index == len(columns):
                    columns.append([])
                columns[index].extend(self._collected(item, level, out))
        return [_Entry(f"column{i + 1}", refs) for i, refs in enumerate(columns)]

    def _sort_key(self, node: Any, level: _Level, entries: list[_Entry], ctx: UseContext) -> None:
        """ORDER BY / DISTINCT ON item: an output position, an output name, or an expression."""
        if node.__class__ is not dict:
            return
        const = node.get("A_Const")
        if const is not None:
            if "ival" in const:
                position = const["ival"].get("ival", 0)
                self._emit(_position_refs(entries, position), None, ctx, False)
            return
        fields = _column_fields(node)
        if fields is not None and len(fields) == 1 and "String" in fields[0]:
            name = fields[0]["String"].get("sval", "")
            matched = [e for e in entries if e.stars is None and e.name == name]
            if matched:
                self._emit([r for e in matched for r in e.refs], None, ctx, False)
                return
        self._expr(node, level, ctx)

    def _group_key(self, node: Any, level: _Level, entries: list[_Entry]) -> None:
        if node.__class__ is not dict:
            return
        grouping = node.get("GroupingSet")
        if grouping is not None:
            for item in grouping.get("content", ()):
                self._group_key(item, level, entries)
            return
        const = node.get("A_Const")
        if const is not None:
            if "ival" in const:
                position = const["ival"].get("ival", 0)
                self._emit(_position_refs(entries, position), None, GROUP, False)
            return
        self._expr(node, level, GROUP)
        fields = _column_fields(node)
        if fields is not None and len(fields) == 1 and "String" in fields[0]:
            # GROUP BY prefers an input column, then an output alias: report both.
            name = fields[0]["String"].get("sval", "")
            for entry in entries:
                if entry.alias and entry.name == name:
                    self._emit(entry.refs, None, GROUP, False)

    def _window(self, window: Node, level: _Level) -> None:
        for node in window.get("partitionClause", ()):
            self._expr(node, level, WINDOW)
        for sort in window.get("orderClause", ()):
            self._expr(sort.get("SortBy", {}).get("node"), level, ORDER)
        for key in ("startOffset", "endOffset"):
            offset = window.get(key)
            if offset is not None:
                self._expr(offset, level, WINDOW)

    def _with(self, clause: Node, level: _Level) -> None:
        ctes = [c["CommonTableExpr"] for c in clause.get("ctes", ()) if "CommonTableExpr" in c]
        level.ctes = {}
        if clause.get("recursive"):
            # Every CTE may read every other and itself: until walked, a CTE stands for
            # "some column of the tables its query reads".
            names = {c.get("ctename", "") for c in ctes}
            for cte in ctes:
                tables = self._scan_tables(cte.get("ctequery"), names, level)
                colnames = _strings(cte.get("aliascolnames", ()))
                level.ctes[cte.get("ctename", "")] = _Source(
                    _TABLE, tables, plain=False, names=frozenset(colnames) if colnames else None
                )
            for cte in ctes:
                # WITH RECURSIVE c AS (base UNION [ALL] step): step sees c as base's output.
                body = (cte.get("ctequery") or {}).get("SelectStmt")
                if body is not None and body.get("op") == "SETOP_UNION":
                    colnames = _strings(cte.get("aliascolnames", ()))
                    self._hooks[id(body)] = (level.ctes, cte.get("ctename", ""), colnames)
        for cte in ctes:
            query = cte.get("ctequery")
            source = _EMPTY_SOURCE
            if query:
                source = self._statement(query, level.parent, level, OUTPUT)
            source = _renamed(source, _strings(cte.get("aliascolnames", ())))
            search = cte.get("search_clause")
            if search:
                for name in _strings(search.get("search_col_list", ())):
                    self._emit(source.resolve(name, True), None, ORDER, False)
            cycle = cte.get("cycle_clause")
            if cycle:
                for name in _strings(cycle.get("cycle_col_list", ())):
                    self._emit(source.resolve(name, True), None, DISTINCT_ON, False)
            level.ctes[cte.get("ctename", "")] = source

    def _scan_tables(self, query: Any, skip: set[str], level: _Level) -> tuple[str, ...]:
        tables: dict[str, None] = {}
        stack = [query]
        while stack:
            node = stack.pop()
            if node.__class__ is dict:
                if "relname" in node:
                    schema, name = node.get("schemaname"), node["relname"]
                    if schema is None and name in skip:
                        continue
                    cte = level.find_cte(name) if schema is None else None
                    found = cte.all_tables if cte is not None else self._table_names(schema, name)
                    tables.update(dict.fromkeys(found))
                    continue
                stack.extend(node.values())
            elif node.__class__ is list:
                stack.extend(node)
        return tuple(tables)

    # -- DML -----------------------------------------------------------------------------------

    def _dml_level(self, body: Node, parent: _Level | None, ctes: _Level | None) -> _Level:
        level = _Level(parent, ctes)
        with_clause = body.get("withClause")
        if with_clause:
            self._with(with_clause, level)
        return level

    def _returned(self, body: Node, level: _Level, out: UseContext) -> _Source:
        entries = self._targets(_returning(body), level, out)
        tables: dict[str, None] = {}
        for _, _, source in level.items:
            tables.update(dict.fromkeys(source.all_tables))
        return _Source(_DERIVED, tuple(tables), entries=entries)

    def _assignments(self, targets: Iterable[Any], level: _Level) -> None:
        """SET col = value, col[i] = value: written values are derived from what they read."""
        for target in targets:
            res = target.get("ResTarget", {})
            self._expr(res.get("val"), level, EXPRESSION)
            indirection = res.get("indirection")
            if indirection:
                self._expr(indirection, level, EXPRESSION)

    def _insert(
        self, body: Node, parent: _Level | None, ctes: _Level | None, out: UseContext
    ) -> _Source:
        level = self._dml_level(body, parent, ctes)
        select = body.get("selectStmt")
        if select:  # the rows go into a table: derived, not a result
            self._statement(select, parent, level, EXPRESSION)
        rel = body.get("relation")
        if not rel:
            return _EMPTY_SOURCE
        item = self._range_var(rel, level, ctes=False)
        level.items.append(item)
        target = item[2]
        conflict = body.get("onConflictClause")
        if conflict:
            level.items.append(("excluded", None, target))
            lookup = _const_values(select)
            infer = conflict.get("infer") or {}
            if infer.get("conname"):
                self._emit([("*", target.all_tables, True)], None, PREDICATE, lookup)
            for elem in infer.get("indexElems", ()):
                index = elem.get("IndexElem", {})
                if "name" in index:
                    self._emit([(index["name"], target.all_tables, True)], None, PREDICATE, lookup)
                elif "expr" in index:
                    self._expr(index["expr"], level, PREDICATE)
            if infer.get("whereClause") is not None:
                self._expr(infer["whereClause"], level, PREDICATE)
            self._assignments(conflict.get("targetList", ()), level)
            if conflict.get("whereClause") is not None:
                self._expr(conflict["whereClause"], level, PREDICATE)
        return self._returned(body, level, out)

    def _update(
        self, body: Node, parent: _Level | None, ctes: _Level | None, out: UseContext
    ) -> _Source:
        level = self._dml_level(body, parent, ctes)
        rel = body.get("relation")
        if rel:
            level.items.append(self._range_var(rel, level, ctes=False))
        for item in body.get("fromClause", ()):
            self._from_item(item, level)
        self._assignments(body.get("targetList", ()), level)
        where = body.get("whereClause")
        if where is not None:
            self._expr(where, level, PREDICATE)
        return self._returned(body, level, out)

    def _delete(
        self, body: Node, parent: _Level | None, ctes: _Level | None, out: UseContext
    ) -> _Source:
        level = self._dml_level(body, parent, ctes)
        rel = body.get("relation")
        if rel:
            level.items.append(self._range_var(rel, level, ctes=False))
        for item in body.get("usingClause", ()):
            self._from_item(item, level)
        where = body.get("whereClause")
        if where is not None:
            self._expr(where, level, PREDICATE)
        return self._returned(body, level, out)

    def _merge(
        self, body: Node, parent: _Level | None, ctes: _Level | None, out: UseContext
    ) -> _Source:
        level = self._dml_level(body, parent, ctes)
        rel = body.get("relation")
        if rel:
            level.items.append(self._range_var(rel, level, ctes=False))
        source = body.get("sourceRelation")
        if source:
            self._from_item(source, level)
        condition = body.get("joinCondition")
        if condition is not None:
            self._expr(condition, level, JOIN)
        for clause in body.get("mergeWhenClauses", ()):
            when = clause.get("MergeWhenClause", {})
            if when.get("condition") is not None:
                self._expr(when["condition"], level, PREDICATE)
            self._assignments(when.get("targetList", ()), level)
            for value in when.get("values", ()):
                self._expr(value, level, EXPRESSION)
        return self._returned(body, level, out)

    # -- FROM ----------------------------------------------------------------------------------

    def _range_var(self, rv: Node, level: _Level, *, ctes: bool = True) -> _Item:
        name = rv.get("relname", "")
        schema = rv.get("schemaname")
        alias, colnames = _alias(rv)
        if ctes and schema is None:
            cte = level.find_cte(name)
            if cte is not None:
                return (alias or name, None, _renamed(cte, colnames))
        source = _Source(_TABLE, self._table_names(schema, name))
        if colnames:
            source = _renamed(source, colnames)
        return (alias, None, source) if alias else (name, schema, source)

    def _bag(self, node: Any, level: _Level, names: list[str]) -> _Source:
        """A FROM function / XMLTABLE / JSON_TABLE: its columns are computed from its args."""
        refs = [(c, t, False) for c, t, _ in self._collected(node, level, EXPRESSION)]
        tables = tuple(dict.fromkeys(t for _, ts, _ in refs for t in ts))
        return _Source(_BAG, tables, refs=refs, names=frozenset(names) if names else None)

    def _from_item(self, node: Any, level: _Level) -> None:
        if node.__class__ is not dict or len(node) != 1:
            return
        ((kind, body),) = node.items()
        items = level.items
        if kind == "RangeVar":
            items.append(self._range_var(body, level))
        elif kind == "JoinExpr":
            self._join(body, level)
        elif kind == "RangeSubselect":
            parent = level if body.get("lateral") else level.parent
            source = self._statement(body.get("subquery"), parent, level, OUTPUT)
            alias, colnames = _alias(body)
            items.append((alias, None, _renamed(source, colnames)))
        elif kind == "RangeFunction":
            alias, colnames = _alias(body)
            calls = []
            for function in body.get("functions", ()):
                parts = function.get("List", {}).get("items", ())
                if parts:
                    calls.append(parts[0])
                for extra in parts[1:]:
                    colnames.extend(
                        c.get("ColumnDef", {}).get("colname", "")
                        for c in extra.get("List", {}).get("items", ())
                        if c.__class__ is dict
                    )
            colnames.extend(
                c.get("ColumnDef", {}).get("colname", "") for c in body.get("coldeflist", ())
            )
            source = self._bag(calls, level, colnames)
            if alias is None and calls:
                alias = _colname(calls[0])
            items.append((alias, None, source))
        elif kind == "RangeTableSample":
            self._from_item(body.get("relation"), level)
            for key in ("args", "repeatable"):
                if body.get(key) is not None:
                    self._expr(body[key], level, PREDICATE)
        else:  # RangeTableFunc (XMLTABLE), JsonTable, and anything newer
            alias, _ = _alias(body)
            rest = {k: v for k, v in body.items() if k != "alias"}
            items.append((alias, None, self._bag(rest, level, [])))

    def _join(self, body: Node, level: _Level) -> None:
        items = level.items
        start = len(items)
        self._from_item(body.get("larg"), level)
        self._from_item(body.get("rarg"), level)
        sides = items[start:]
        if body.get("isNatural"):  # compares every column the two sides have in common
            refs = [r for _, _, s in sides for r in s.star_refs()]
            self._emit(refs, None, JOIN, False)
        for name in _strings(body.get("usingClause", ())):
            refs = [r for _, _, s in sides for r in s.resolve(name, False)]
            if not refs:
                refs = [(name, tuple(t for _, _, s in sides for t in s.all_tables), False)]
            self._emit(refs, None, JOIN, False)
        quals = body.get("quals")
        if quals is not None:
            self._expr(quals, level, JOIN)
        group = [s for _, _, s in sides]
        tables = tuple(dict.fromkeys(t for s in group for t in s.all_tables))
        for key in ("join_using_alias", "alias"):
            alias = body.get(key)
            if alias and alias.get("aliasname"):
                joined = _Source(_GROUP, tables, children=group)
                items.append(
                    (
                        alias["aliasname"],
                        None,
                        _renamed(joined, _strings(alias.get("colnames", ()))),
                    )
                )

    # -- expressions ---------------------------------------------------------------------------

    def _expr(self, node: Any, level: _Level, ctx: UseContext) -> None:
        if node.__class__ is not dict:
            if node.__class__ is list:
                for item in node:
                    self._expr(item, level, ctx)
            return
        if len(node) == 1:
            for key, body in node.items():
                if key == "ColumnRef":
                    self._column(body.get("fields", ()), level, ctx, False)
                    return
                if key in _LEAVES:
                    return
                handler = _HANDLERS.get(key)
                if handler is not None:
                    handler(self, body, level, ctx)
                    return
        sub = EXPRESSION if ctx is OUTPUT else ctx
        expr = self._expr
        for key, value in node.items():
            vcls = value.__class__
            if vcls is dict:
                if key not in _SKIP_KEYS:
                    expr(value, level, sub)
            elif vcls is list and key not in _SKIP_KEYS:
                for item in value:
                    expr(item, level, sub)

    def _star_sources(self, qualifier: list[str], level: _Level) -> list[_Source] | None:
        if not qualifier:
            return [source for _, _, source in level.items]
        source = level.find(qualifier)
        return None if source is None else [source]

    def _column(
        self,
        fields: list[Node],
        level: _Level,
        ctx: UseContext,
        lookup: bool,
        whole_row: bool = True,
    ) -> None:
        count = len(fields)
        if count == 1:  # the common cases first: an unqualified column
            string = fields[0].get("String")
            if string is not None:
                self._bare(string.get("sval", ""), level, ctx, lookup, whole_row)
                return
        elif count == 2:  # and alias.column
            first, second = fields[0].get("String"), fields[1].get("String")
            if first is not None and second is not None:
                alias = first.get("sval", "")
                scan: _Level | None = level
                while scan is not None:
                    for item_name, _, item in scan.items:
                        if item_name == alias:
                            name = second.get("sval", "")
                            found = item.resolve(name, True)
                            if not found and not item.knows(name):
                                found = [(name, item.all_tables, False)]
                            self._emit(found, alias, ctx, lookup)
                            return
                    scan = scan.parent
        parts: list[str] = []
        star = False
        for field in fields:
            string = field.get("String")
            if string is not None:
                parts.append(string.get("sval", ""))
            elif "A_Star" in field:
                star = True
        if star:
            sources = self._star_sources(parts, level)
            if sources is None:
                refs: list[Ref] = [("*", level.visible_tables(), False)]
            else:
                refs = [r for s in sources for r in s.star_refs()]
            self._emit(refs, ".".join(parts) or None, ctx, False)
            return
        if not parts:
            return
        if len(parts) == 1:
            self._bare(parts[0], level, ctx, lookup, whole_row)
            return
        column, qualifier = parts[-1], parts[:-1]
        source = level.find(qualifier)
        if source is not None:
            refs = source.resolve(column, True)
            if not refs and not source.knows(column):
                refs = [(column, source.all_tables, False)]
            self._emit(refs, ".".join(qualifier), ctx, lookup)
            return
        # Not a FROM item: a field of a composite column (addr.city, u.addr.city), or a name
        # this walker does not track (NEW/OLD in rules): report both readings.
        sub = _sub(ctx)
        if len(parts) >= 3:
            source = level.find(parts[:1])
            if source is not None:
                refs = source.resolve(parts[1], True) or [(parts[1], source.all_tables, False)]
                self._emit(refs, parts[0], sub, False)
                return
        self._bare(parts[0], level, sub, False, False)
        self._emit([(column, level.visible_tables(), False)], ".".join(qualifier), ctx, False)

    def _bare(
        self, name: str, level: _Level, ctx: UseContext, lookup: bool, whole_row: bool
    ) -> None:
        """An unqualified name: a column of any visible FROM item, or a whole row."""
        refs: list[Ref] = []
        row: _Source | None = None
        scan: _Level | None = level
        while scan is not None:
            for item_name, _, source in scan.items:
                if source.kind == _TABLE and source.names is None:
                    refs.append((name, source.all_tables, source.plain))
                else:
                    refs.extend(source.resolve(name, False))
                if item_name == name and row is None:
                    row = source
            scan = scan.parent
        if row is not None and whole_row:
            rows = [(c, t, False) for c, t, _ in row.star_refs()]
            self._emit(rows, name, EXPRESSION if ctx is OUTPUT else ctx, False)
            if not refs:
                return
        if not refs:
            if self._known(name, level):
                return  # a constant column of a subquery, CTE or VALUES
            refs = [(name, level.visible_tables(), False)]
        self._emit(refs, None, ctx, lookup)

    @staticmethod
    def _known(name: str, level: _Level) -> bool:
        scan: _Level | None = level
        while scan is not None:
            if any(source.knows(name) for _, _, source in scan.items):
                return True
            scan = scan.parent
        return False

    def _h_column(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._column(body.get("fields", []), level, ctx, False)

    def _h_expr(self, body: Node, level: _Level, ctx: UseContext) -> None:
        sub = EXPRESSION if ctx is OUTPUT else ctx
        lexpr = body.get("lexpr")
        rexpr = body.get("rexpr")
        kind = body.get("kind")
        if kind in _LOOKUP_KINDS:
            names = body.get("name") or ()
            if names and names[-1].get("String", {}).get("sval") == "=":
                fields = _column_fields(lexpr)
                if kind == "AEXPR_OP":
                    if fields is not None and _is_const(rexpr):
                        self._column(fields, level, sub, True)
                        return
                    fields = _column_fields(rexpr)
                    if fields is not None and _is_const(lexpr):
                        self._column(fields, level, sub, True)
                        return
                elif fields is not None:
                    if kind == "AEXPR_IN":
                        values = rexpr.get("List", {}).get("items") if rexpr else None
                        ok = values is not None and all(_is_const(v) for v in values)
                    else:  # = ANY (array constant or parameter)
                        ok = _is_const(rexpr)
                    if ok:
                        self._column(fields, level, sub, True)
                        return
        for side in (lexpr, rexpr):
            if side.__class__ is dict:  # the usual sides inline: a column, a constant
                ref = side.get("ColumnRef")
                if ref is not None:
                    self._column(ref.get("fields", ()), level, sub, False)
                elif "A_Const" not in side:
                    self._expr(side, level, sub)
            elif side is not None:
                self._expr(side, level, sub)

    def _h_func(self, body: Node, level: _Level, ctx: UseContext) -> None:
        names = body.get("funcname") or ()
        name = names[-1].get("String", {}).get("sval", "") if names else ""
        within = body.get("agg_within_group", False)
        aggregate = name in _AGGREGATES or within or not _AGG_KEYS.isdisjoint(body)
        if aggregate and (ctx is OUTPUT or ctx is EXPRESSION):
            arg_ctx = AGGREGATE
        else:
            arg_ctx = EXPRESSION if ctx is OUTPUT else ctx
        args = body.get("args")
        if args:
            self._expr(args, level, arg_ctx)
        if not aggregate:
            return
        for sort in body.get("agg_order", ()):
            self._expr(sort.get("SortBy", {}).get("node"), level, arg_ctx if within else ORDER)
        if body.get("agg_filter") is not None:
            self._expr(body["agg_filter"], level, PREDICATE)
        if body.get("over") is not None:
            self._window(body["over"], level)

    def _h_json_agg(self, body: Node, level: _Level, ctx: UseContext) -> None:
        arg_ctx = AGGREGATE if ctx is OUTPUT or ctx is EXPRESSION else ctx
        self._expr(body.get("arg"), level, arg_ctx)
        constructor = body.get("constructor") or {}
        for sort in constructor.get("agg_order", ()):
            self._expr(sort.get("SortBy", {}).get("node"), level, ORDER)
        if constructor.get("agg_filter") is not None:
            self._expr(constructor["agg_filter"], level, PREDICATE)
        if constructor.get("over") is not None:
            self._window(constructor["over"], level)

    def _h_sublink(self, body: Node, level: _Level, ctx: UseContext) -> None:
        sub = EXPRESSION if ctx is OUTPUT else ctx
        test = body.get("testexpr")
        if test is not None:
            self._expr(test, level, sub)
        select = body.get("subselect")
        if select is not None:
            self._statement(select, level, level, sub)

    def _h_case(self, body: Node, level: _Level, ctx: UseContext) -> None:
        sub = EXPRESSION if ctx is OUTPUT else ctx
        whens = [w.get("CaseWhen", {}) for w in body.get("args", ())]
        arg = body.get("arg")
        if arg is not None:  # CASE arg WHEN v ...: arg = v for each v
            fields = _column_fields(arg)
            if fields is not None and all(_is_const(w.get("expr")) for w in whens):
                self._column(fields, level, CASE_CONDITION, True)
            else:
                self._expr(arg, level, CASE_CONDITION)
        for when in whens:
            self._expr(when.get("expr"), level, CASE_CONDITION)
            self._expr(when.get("result"), level, sub)
        default = body.get("defresult")
        if default is not None:
            self._expr(default, level, sub)

    def _h_indirection(self, body: Node, level: _Level, ctx: UseContext) -> None:
        sub = EXPRESSION if ctx is OUTPUT else ctx
        arg = body.get("arg")
        indirection = body.get("indirection") or []
        fields = _column_fields(arg)
        first = indirection[0] if indirection else {}
        if fields is not None and ("String" in first or "A_Star" in first):
            rest = indirection[1:]
            parts = _strings(fields)
            if len(parts) == 1 and level.find(parts) is not None:
                # (u).email is u.email, (u).* is u.*; (u) may still be a column named u.
                self._column([*fields, first], level, sub if rest else ctx, False)
                self._bare(parts[0], level, sub, False, False)
            else:  # (addr).city, (u.addr).city: a field of a composite column
                self._column(fields, level, sub, False, False)
            if rest:
                self._expr(rest, level, sub)
            return
        self._expr(arg, level, sub)
        self._expr(indirection, level, sub)

    def _h_bool(self, body: Node, level: _Level, ctx: UseContext) -> None:
        sub = EXPRESSION if ctx is OUTPUT else ctx
        for arg in body.get("args", ()):
            self._expr(arg, level, sub)

    def _h_sort(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._expr(body.get("node"), level, ORDER)

    def _h_window(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._window(body, level)

    def _h_select(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._select(body, level, level, _sub(ctx))

    def _h_dml(self, kind: str, body: Node, level: _Level, ctx: UseContext) -> None:
        _DML[kind](self, body, level, level, _sub(ctx))

    def _h_insert(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._h_dml("InsertStmt", body, level, ctx)

    def _h_update(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._h_dml("UpdateStmt", body, level, ctx)

    def _h_delete(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._h_dml("DeleteStmt", body, level, ctx)

    def _h_merge(self, body: Node, level: _Level, ctx: UseContext) -> None:
        self._h_dml("MergeStmt", body, level, ctx)


_Dml = Callable[[_Walker, Node, "_Level | None", "_Level | None", UseContext], _Source]
_DML: dict[str, _Dml] = {
    "InsertStmt": _Walker._insert,
    "UpdateStmt": _Walker._update,
    "DeleteStmt": _Walker._delete,
    "MergeStmt": _Walker._merge,
}

_Handler = Callable[[_Walker, Node, _Level, UseContext], None]
_HANDLERS: dict[str, _Handler] = {
    "ColumnRef": _Walker._h_column,
    "A_Expr": _Walker._h_expr,
    "BoolExpr": _Walker._h_bool,
    "FuncCall": _Walker._h_func,
    "JsonArrayAgg": _Walker._h_json_agg,
    "JsonObjectAgg": _Walker._h_json_agg,
    "SubLink": _Walker._h_sublink,
    "CaseExpr": _Walker._h_case,
    "A_Indirection": _Walker._h_indirection,
    "SortBy": _Walker._h_sort,
    "WindowDef": _Walker._h_window,
    "SelectStmt": _Walker._h_select,
    "InsertStmt": _Walker._h_insert,
    "UpdateStmt": _Walker._h_update,
    "DeleteStmt": _Walker._h_delete,
    "MergeStmt": _Walker._h_merge,
}


def column_uses(sql: str, search_path: tuple[str, ...] = ("public",)) -> tuple[ColumnUse, ...]:
    """Every use of a column by the statements of `sql`, in order, without duplicates.

    Unqualified table names get a candidate in each schema of `search_path` (and pg_catalog for
    names starting with "pg_"), like `sqlgate.sql.analyze`. Raises SqlParseError for text that
    does not parse, and for any internal failure too (fail closed).
    """
    try:
        return _column_uses(sql, search_path)
    except SqlParseError:
        raise
    except Exception as exc:
        raise SqlParseError(f"cannot analyze column uses: {type(exc).__name__}: {exc}") from exc


def _column_uses(sql: str, search_path: tuple[str, ...]) -> tuple[ColumnUse, ...]:
    tree = parse_tree(sql)
    walker = _Walker(_resolver(tuple(search_path)))
    for raw in tree.get("stmts") or ():
        stmt = raw.get("stmt")
        if stmt:
            walker.top(stmt)
    return tuple(walker.uses)


if __name__ == "__main__":  # python -m sqlgate.sql.usage: time a ~1 KB statement
    import time
    import timeit

    _SAMPLE = (
        "WITH recent AS (SELECT o.user_id, o.total, o.created_at FROM orders o "
        "WHERE o.created_at > now() - interval '30 days' AND o.status IN ('paid', 'shipped')), "
        "ranked AS (SELECT r.user_id, sum(r.total) AS spent, count(*) AS n, "
        "row_number() OVER (PARTITION BY r.user_id ORDER BY max(r.created_at) DESC) AS rn "
        "FROM recent r GROUP BY r.user_id) "
        "SELECT u.id, u.name, u.email, upper(u.country) AS country, k.spent, k.n, "
        "CASE WHEN k.spent > 1000 THEN 'gold' WHEN k.spent > 100 THEN 'silver' ELSE 'none' END "
        "AS tier, (SELECT count(*) FROM tickets t WHERE t.user_id = u.id AND t.open) AS tickets "
        "FROM users u JOIN ranked k ON k.user_id = u.id AND k.rn = 1 "
        "LEFT JOIN LATERAL (SELECT a.city, a.zip FROM addresses a WHERE a.user_id = u.id "
        "ORDER BY a.updated_at DESC LIMIT 1) addr ON true "
        "WHERE u.deleted_at IS NULL AND u.id = $1 AND u.status = ANY($2) "
        "AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id "
        "AND s.last_seen > now() - interval '7 days') "
        "AND u.country NOT IN (SELECT code FROM embargoed) "
        "ORDER BY k.spent DESC, u.id LIMIT 50 OFFSET 0"
    )

    def _best(run: Callable[[], object], number: int = 500) -> float:
        """Best per-call CPU time in microseconds (CPU time: steadier on a busy machine)."""
        times = timeit.repeat(run, number=number, repeat=15, timer=time.process_time)
        return min(times) / number * 1e6

    _parse = _best(lambda: _loads(_pg.parse_sql_json(_SAMPLE)))
    _total = _best(lambda: column_uses(_SAMPLE))
    print(f"{len(_SAMPLE)} bytes: parse {_parse:.1f} us, column_uses {_total:.1f} us (with parse)")
