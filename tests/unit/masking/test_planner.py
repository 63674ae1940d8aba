"""Planning which output columns to mask, against an in-memory catalog."""

from __future__ import annotations

from collections.abc import Iterable

from sqlgate.config import MaskRule, MaskStrategy
from sqlgate.core import ColumnDescription
from sqlgate.masking.planner import Relation, ResultPlanner
from sqlgate.masking.rules import MaskSet
from sqlgate.masking.strategies import MaskSettings
from sqlgate.sql import SqlParseError, StatementAnalysis, analyze

USERS = Relation(100, "public", "users", "r", {1: "id", 2: "email", 3: "name"})
ORDERS = Relation(200, "public", "orders", "r", {1: "id", 2: "user_id"})
VIEW = Relation(300, "public", "contacts", "v", {1: "id", 2: "mail"},
                "SELECT u.id, u.email AS mail FROM users u")
VIEW2 = Relation(400, "public", "calc", "v", {1: "n"}, "SELECT length(email) AS n FROM users")


class MemoryCatalog:
    """A catalog held in a dict: the planner's logic without a server."""

    def __init__(self, relations: list[Relation], user_functions: frozenset[str] = frozenset()) -> None:
        self.by_oid = {r.oid: r for r in relations}
        self.by_name = {r.qualified: r for r in relations}
        self.functions = user_functions
        self.invalidations = 0

    async def relations(self, oids: Iterable[int]) -> dict[int, Relation]:
        return {o: self.by_oid[o] for o in oids if o in self.by_oid}

    async def relations_by_name(self, names: Iterable[str]) -> dict[str, Relation]:
        return {n: self.by_name[n] for n in names if n in self.by_name}

    async def user_functions(self, names: Iterable[str]) -> frozenset[str]:
        return frozenset(n for n in names if n in self.functions)

    def invalidate(self) -> None:
        self.invalidations += 1


def planner(functions: frozenset[str] = frozenset()) -> ResultPlanner:
    masks = MaskSet([MaskRule(columns=["public.users.email"], strategy=MaskStrategy.REDACT)])
    return ResultPlanner(masks, MaskSettings("****", b"k"),
                         MemoryCatalog([USERS, ORDERS, VIEW, VIEW2], functions),
                         analyze_or_error)


def analyze_or_error(sql: str) -> tuple[StatementAnalysis, ...] | SqlParseError:
    try:
        return analyze(sql)
    except SqlParseError as exc:
        return exc


def col(name: str, oid: int = 0, attnum: int = 0, type_oid: int = 25) -> ColumnDescription:
    return ColumnDescription(name, type_oid, oid, attnum)


def masked(plan: object) -> list[int]:
    return [i for i, _ in plan.maskers] if plan is not None else []  # type: ignore[attr-defined]


async def test_table_column_masked_by_provenance_not_name() -> None:
    plan = await planner().plan("SELECT id, email AS e FROM users",
                                [col("id", 100, 1, 23), col("e", 100, 2)])
    assert masked(plan) == [1]


async def test_no_plan_when_nothing_is_masked() -> None:
    assert await planner().plan("SELECT id FROM orders", [col("id", 200, 1, 23)]) is None


async def test_derived_value_from_masked_column_is_masked() -> None:
    plan = await planner().plan("SELECT upper(email) FROM users", [col("upper")])
    assert masked(plan) == [0]


async def test_derived_value_without_masked_source_is_not_masked() -> None:
    assert await planner().plan("SELECT count(*), max(id) FROM users",
                                [col("count", type_oid=20), col("max", type_oid=23)]) is None


async def test_whole_row_reference_taints() -> None:
    plan = await planner().plan("SELECT row_to_json(u) FROM users u", [col("row_to_json", type_oid=114)])
    assert masked(plan) == [0]


async def test_user_function_taints_even_without_tables() -> None:
    plan = await planner(frozenset({"email_of"})).plan("SELECT email_of(1)", [col("email_of")])
    assert masked(plan) == [0]
    assert await planner().plan("SELECT lower('X')", [col("lower")]) is None


async def test_view_column_follows_its_definition() -> None:
    plan = await planner().plan("SELECT * FROM contacts",
                                [col("id", 300, 1, 23), col("mail", 300, 2)])
    assert masked(plan) == [1]


async def test_computed_view_column_over_masked_source_is_masked() -> None:
    plan = await planner().plan("SELECT * FROM calc", [col("n", 400, 1, 23)])
    assert masked(plan) == [0]


async def test_unknown_relation_fails_closed() -> None:
    plan = await planner().plan("SELECT * FROM mystery", [col("x", 999, 1)])
    assert masked(plan) == [0]


async def test_unparsable_statement_taints_derived_columns() -> None:
    plan = await planner().plan("this is not sql", [col("x")])
    assert masked(plan) == [0]


async def test_row_plan_rewrites_values_and_counts() -> None:
    plan = await planner().plan("SELECT id, email FROM users",
                                [col("id", 100, 1, 23), col("email", 100, 2)])
    assert plan is not None
    row: list[bytes | None] = [b"1", b"alice@example.com"]
    plan.apply(row)
    assert row == [b"1", b"****"]
    null_row: list[bytes | None] = [b"2", None]
    plan.apply(null_row)
    assert null_row == [b"2", None]
    assert plan.masked_cells == 1
