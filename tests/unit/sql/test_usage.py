"""Table-driven: where each statement uses which column (sqlgate.sql.usage.column_uses).

Each case lists ColumnUse values built with `u(...)`: the column, its context, the qualifier
as written (`q`), whether it is an equality lookup (`eq`) and the candidate tables (`t`,
space-separated, "public.users" unless told). An exact case must produce exactly those uses
(in any order); a `subset` case at least those. `absent` uses must not be produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.sql import SqlParseError
from sqlgate.sql.usage import ColumnUse, UseContext, column_uses

OUT, EXPR, PRED, JOIN = (
    UseContext.OUTPUT,
    UseContext.EXPRESSION,
    UseContext.PREDICATE,
    UseContext.JOIN,
)
ORDER, GROUP, WINDOW, DON, AGG, CASE = (
    UseContext.ORDER,
    UseContext.GROUP,
    UseContext.WINDOW,
    UseContext.DISTINCT_ON,
    UseContext.AGGREGATE,
    UseContext.CASE_CONDITION,
)
USERS, ORDERS, ADMINS = "public.users", "public.orders", "public.admins"


def u(
    column: str,
    context: UseContext,
    *,
    q: str | None = None,
    eq: bool = False,
    t: str = USERS,
) -> ColumnUse:
    return ColumnUse(column, q, context, eq, tuple(t.split()))


@dataclass(frozen=True)
class Case:
    sql: str
    uses: tuple[ColumnUse, ...]
    subset: bool = False
    absent: tuple[ColumnUse, ...] = ()
    search_path: tuple[str, ...] = ("public",)


def c(sql: str, *uses: ColumnUse, subset: bool = False, absent: tuple[ColumnUse, ...] = ()) -> Case:
    return Case(sql, uses, subset, absent)


CASES: list[Case] = [
    # --- allowed shapes: the plain select list, equality lookups, IN lists, parameters ---------
    c("SELECT email FROM users", u("email", OUT)),
    c("SELECT u.email, u.ssn FROM users u", u("email", OUT, q="u"), u("ssn", OUT, q="u")),
    c("SELECT users.email FROM users", u("email", OUT, q="users")),
    c("SELECT email FROM users WHERE email = 'x'", u("email", OUT), u("email", PRED, eq=True)),
    c("SELECT id FROM users WHERE email = $1", u("id", OUT), u("email", PRED, eq=True)),
    c("SELECT id FROM users WHERE 'x' = email", u("id", OUT), u("email", PRED, eq=True)),
    c("SELECT id FROM users WHERE email IN ('a', 'b')", u("id", OUT), u("email", PRED, eq=True)),
    c("SELECT id FROM users WHERE email IN ($1, $2)", u("id", OUT), u("email", PRED, eq=True)),
    c("SELECT id FROM users WHERE email = ANY($1)", u("id", OUT), u("email", PRED, eq=True)),
    c(
        "SELECT id FROM users WHERE email = ANY(ARRAY['a', 'b'])",
        u("id", OUT),
        u("email", PRED, eq=True),
    ),
    c("SELECT id FROM users WHERE email = '1'::text", u("id", OUT), u("email", PRED, eq=True)),
    c("SELECT id FROM users WHERE email = $1::text", u("id", OUT), u("email", PRED, eq=True)),
    c(
        "SELECT u.id FROM users u WHERE u.email = 'x' AND u.id = 3",
        u("id", OUT, q="u"),
        u("email", PRED, q="u", eq=True),
        u("id", PRED, q="u", eq=True),
    ),
    c(
        "SELECT count(*) FROM users u JOIN orders o ON o.uid = u.id AND u.email = 'x'",
        u("uid", JOIN, q="o", t=ORDERS),
        u("id", JOIN, q="u"),
        u("email", JOIN, q="u", eq=True),
    ),
    c(
        "SELECT CASE email WHEN 'a' THEN 1 WHEN 'b' THEN 2 END FROM users",
        u("email", CASE, eq=True),
    ),
    # --- not lookups ----------------------------------------------------------------------------
    c(
        "SELECT id FROM users WHERE email = other_col",
        u("id", OUT),
        u("email", PRED),
        u("other_col", PRED),
    ),
    c("SELECT id FROM users WHERE lower(email) = 'x'", u("id", OUT), u("email", PRED)),
    c("SELECT id FROM users WHERE email IS NULL", u("id", OUT), u("email", PRED)),
    c("SELECT id FROM users WHERE email <> 'x'", u("id", OUT), u("email", PRED)),
    c("SELECT id FROM users WHERE email NOT IN ('a')", u("id", OUT), u("email", PRED)),
    c("SELECT id FROM users WHERE email IS NOT DISTINCT FROM 'x'", u("id", OUT), u("email", PRED)),
    c(
        "SELECT id FROM users WHERE email = 'x' OR email LIKE 'a%'",
        u("id", OUT),
        u("email", PRED, eq=True),
        u("email", PRED),
    ),
    c(
        "SELECT id FROM users WHERE email IN (SELECT email FROM admins)",
        u("id", OUT),
        u("email", PRED),
        # the subquery's unqualified email may come from admins or (correlated) users
        u("email", PRED, t=f"{ADMINS} {USERS}"),
    ),
    # --- inference probes: wrapped columns in WHERE stay predicates ------------------------------
    c("SELECT id FROM users WHERE substr(ssn, 1, 1) = '1'", u("id", OUT), u("ssn", PRED)),
    c("SELECT id FROM users WHERE length(ssn) = 11", u("id", OUT), u("ssn", PRED)),
    c("SELECT 1 FROM users WHERE position('@' in email) > 5", u("email", PRED)),
    c("SELECT 1 FROM users WHERE email ~ '^a'", u("email", PRED)),
    c("SELECT 1 FROM users WHERE email LIKE 'a%'", u("email", PRED)),
    c("SELECT 1 FROM users WHERE email ILIKE 'a%' OR email SIMILAR TO 'b%'", u("email", PRED)),
    c("SELECT 1 FROM users WHERE ssn BETWEEN '1' AND '5'", u("ssn", PRED)),
    c("SELECT 1 FROM users WHERE (email, 1) = ('x', 1)", u("email", PRED)),
    c("SELECT email FROM users ORDER BY ssn", u("email", OUT), u("ssn", ORDER)),
    c("SELECT email FROM users ORDER BY lower(ssn) DESC", u("email", OUT), u("ssn", ORDER)),
    c(
        "SELECT email, count(*) FROM users GROUP BY email",
        u("email", OUT),
        u("email", GROUP),
    ),
    c(
        "SELECT count(*) FROM users GROUP BY GROUPING SETS ((email), ROLLUP (ssn), CUBE (id))",
        u("email", GROUP),
        u("ssn", GROUP),
        u("id", GROUP),
    ),
    c("SELECT DISTINCT ON (email) id FROM users", u("id", OUT), u("email", DON)),
    c("SELECT DISTINCT email FROM users", u("email", OUT), u("email", DON)),
    c(
        "SELECT id, row_number() OVER (PARTITION BY email ORDER BY ssn) FROM users",
        u("id", OUT),
        u("email", WINDOW),
        u("ssn", ORDER),
    ),
    c(
        "SELECT id, sum(x) OVER w FROM users WINDOW w AS (PARTITION BY email ORDER BY ssn)",
        u("id", OUT),
        u("x", AGG),
        u("email", WINDOW),
        u("ssn", ORDER),
    ),
    c(
        "SELECT u.id FROM users u JOIN orders x ON u.email = x.email",
        u("id", OUT, q="u"),
        u("email", JOIN, q="u"),
        u("email", JOIN, q="x", t=ORDERS),
    ),
    c(
        "SELECT id FROM users JOIN orders USING (email)",
        u("id", OUT, t=f"{USERS} {ORDERS}"),
        u("email", JOIN, t=f"{USERS} {ORDERS}"),
    ),
    c(
        "SELECT 1 FROM users NATURAL JOIN orders",
        u("*", JOIN, t=f"{USERS} {ORDERS}"),
    ),
    c(
        "SELECT u.id FROM users u WHERE EXISTS "
        "(SELECT 1 FROM users u2 WHERE u2.email LIKE 'a%' AND u2.id = u.id)",
        u("id", OUT, q="u"),
        u("email", PRED, q="u2"),
        u("id", PRED, q="u2"),
        u("id", PRED, q="u"),
    ),
    c(
        "SELECT id FROM users WHERE EXISTS (SELECT 1 FROM orders WHERE note = email)",
        u("id", OUT),
        u("note", PRED, t=f"{ORDERS} {USERS}"),
        u("email", PRED, t=f"{ORDERS} {USERS}"),
    ),
    c(
        "WITH c AS (SELECT email FROM users) SELECT 1 FROM c WHERE email LIKE 'a%'",
        u("email", OUT),
        u("email", PRED),
    ),
    c(
        "WITH c AS (SELECT email AS e FROM users) SELECT 1 FROM c WHERE e LIKE 'a%'",
        u("email", OUT),
        u("email", PRED),
    ),
    c(
        "WITH c(e) AS (SELECT email FROM users) SELECT e FROM c WHERE e = 'x'",
        u("email", OUT),
        u("email", PRED, eq=True),
    ),
    c(
        # a computed CTE column: never an equality lookup on the base column
        "WITH c AS (SELECT lower(email) AS e FROM users) SELECT 1 FROM c WHERE e = 'x'",
        u("email", EXPR),
        u("email", PRED),
    ),
    c(
        "SELECT 1 FROM (SELECT email FROM users) s WHERE s.email LIKE 'a%'",
        u("email", OUT),
        u("email", PRED, q="s"),
    ),
    c(
        "SELECT s.n FROM users u, LATERAL "
        "(SELECT count(*) AS n FROM orders o WHERE o.note = u.email) s",
        u("note", PRED, q="o", t=ORDERS),
        u("email", PRED, q="u"),
    ),
    c("SELECT 1 FROM users HAVING max(email) > 'm'", u("email", PRED)),
    c(
        "SELECT 1/(CASE WHEN email LIKE 'a%' THEN 0 ELSE 1 END) FROM users",
        u("email", CASE),
    ),
    c(
        "SELECT CASE WHEN id > 1 THEN email ELSE ssn END FROM users",
        u("id", CASE),
        u("email", EXPR),
        u("ssn", EXPR),
    ),
    c(
        "SELECT id FROM users WHERE CASE WHEN email LIKE 'a%' THEN ssn > '5' ELSE false END",
        u("id", OUT),
        u("email", CASE),
        u("ssn", PRED),
    ),
    c("SELECT email, id FROM users ORDER BY 1", u("email", OUT), u("id", OUT), u("email", ORDER)),
    c(
        "SELECT id, email FROM users ORDER BY 2 DESC",
        u("id", OUT),
        u("email", OUT),
        u("email", ORDER),
    ),
    c("SELECT email AS e FROM users ORDER BY e", u("email", OUT), u("email", ORDER)),
    c(
        # ORDER BY a bare name prefers the output column: here "email" is id
        "SELECT id AS email FROM users ORDER BY email",
        u("id", OUT),
        u("id", ORDER),
    ),
    c(
        "SELECT upper(email), count(*) FROM users GROUP BY 1",
        u("email", EXPR),
        u("email", GROUP),
    ),
    c(
        "SELECT upper(email) AS e, count(*) FROM users GROUP BY e",
        u("email", EXPR),
        u("email", GROUP),
        subset=True,
    ),
    c(
        "SELECT DISTINCT ON (1) email, id FROM users",
        u("email", OUT),
        u("id", OUT),
        u("email", DON),
    ),
    c(
        "SELECT count(*) FILTER (WHERE email LIKE 'a%') FROM users",
        u("email", PRED),
    ),
    c(
        "SELECT id FROM users LIMIT (SELECT length(max(ssn)) FROM users)",
        u("id", OUT),
        u("ssn", PRED),
    ),
    c(
        "SELECT id FROM users OFFSET (SELECT count(*) FROM users WHERE ssn < '5')",
        u("id", OUT),
        u("ssn", PRED),
    ),
    # --- aggregates ------------------------------------------------------------------------------
    c("SELECT max(email) FROM users", u("email", AGG)),
    c("SELECT count(DISTINCT email) FROM users", u("email", AGG)),
    c("SELECT string_agg(email, ',') FROM users", u("email", AGG)),
    c("SELECT lag(email) OVER (ORDER BY id) FROM users", u("email", AGG), u("id", ORDER)),
    c(
        "SELECT string_agg(name, ',' ORDER BY email) FROM users",
        u("name", AGG),
        u("email", ORDER),
    ),
    c(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY salary) FROM users",
        u("salary", AGG),
    ),
    c("SELECT json_arrayagg(email ORDER BY ssn) FROM users", u("email", AGG), u("ssn", ORDER)),
    c("SELECT my_agg(DISTINCT email) FROM users", u("email", AGG)),
    # --- expressions in the select list ------------------------------------------------------------
    c("SELECT upper(email) FROM users", u("email", EXPR)),
    c("SELECT email || 'x' FROM users", u("email", EXPR)),
    c("SELECT md5(email) FROM users", u("email", EXPR)),
    c("SELECT substr(ssn, 1, 1) FROM users", u("ssn", EXPR)),
    c("SELECT email::text FROM users", u("email", EXPR)),
    c("SELECT 1/(length(email) - 11) FROM users", u("email", EXPR)),
    c("SELECT email = 'x' FROM users", u("email", EXPR, eq=True)),
    c("SELECT (SELECT email FROM users LIMIT 1)", u("email", EXPR)),
    c(
        "SELECT (SELECT max(o.total) FROM orders o WHERE o.uid = u.id) FROM users u",
        u("total", AGG, q="o", t=ORDERS),
        u("uid", PRED, q="o", t=ORDERS),
        u("id", PRED, q="u"),
    ),
    c(
        "SELECT e FROM (SELECT upper(email) AS e FROM users) s",
        u("email", EXPR),
    ),
    # --- stars and whole rows ----------------------------------------------------------------------
    c("SELECT * FROM users", u("*", OUT)),
    c("SELECT u.* FROM users u", u("*", OUT, q="u")),
    c(
        "SELECT * FROM users u JOIN orders o ON o.uid = u.id",
        u("*", OUT, t=f"{USERS} {ORDERS}"),
        u("uid", JOIN, q="o", t=ORDERS),
        u("id", JOIN, q="u"),
    ),
    c("SELECT * FROM (SELECT email FROM users) s", u("email", OUT)),
    c("SELECT u FROM users u", u("*", EXPR, q="u"), subset=True, absent=(u("*", OUT, q="u"),)),
    c("SELECT row_to_json(u) FROM users u", u("*", EXPR, q="u"), subset=True),
    c("SELECT to_jsonb(u) ->> 'email' FROM users u", u("*", EXPR, q="u"), subset=True),
    c("SELECT json_agg(u) FROM users u", u("*", AGG, q="u"), subset=True),
    c("SELECT 1 FROM users u WHERE u::text LIKE '%a%'", u("*", PRED, q="u"), subset=True),
    c("SELECT s FROM (SELECT email FROM users) s", u("email", OUT), u("email", EXPR, q="s")),
    c("SELECT (u).email FROM users u", u("email", OUT, q="u"), subset=True),
    # --- set operations and VALUES ----------------------------------------------------------------
    c(
        "SELECT email FROM users UNION ALL SELECT name FROM admins",
        u("email", OUT),
        u("name", OUT, t=ADMINS),
    ),
    c(
        "SELECT email FROM users UNION SELECT name FROM admins",
        u("email", OUT),
        u("name", OUT, t=ADMINS),
        u("email", DON),
        u("name", DON, t=ADMINS),
    ),
    c("SELECT email FROM users INTERSECT SELECT 'x'", u("email", OUT), u("email", JOIN)),
    c(
        "SELECT email FROM users EXCEPT SELECT name FROM admins",
        u("email", OUT),
        u("name", OUT, t=ADMINS),
        u("email", JOIN),
        u("name", JOIN, t=ADMINS),
    ),
    c(
        "SELECT email FROM users UNION ALL SELECT name FROM admins ORDER BY 1",
        u("email", OUT),
        u("name", OUT, t=ADMINS),
        u("email", ORDER),
        u("name", ORDER, t=ADMINS),
    ),
    c("SELECT * FROM (VALUES (1, 'a')) v(id, e) WHERE e = 'a'"),
    c(
        "SELECT v.x FROM users u, (VALUES (1)) v(x) WHERE v.x = u.id",
        u("id", PRED, q="u"),
    ),
    # --- CTEs ------------------------------------------------------------------------------------
    c(
        "WITH RECURSIVE r(id, mgr, e) AS (SELECT id, manager_id, email FROM users WHERE id = 1 "
        "UNION ALL SELECT u.id, u.manager_id, u.email FROM users u JOIN r ON u.manager_id = r.id) "
        "SELECT e FROM r WHERE e LIKE 'a%'",
        u("email", OUT),
        u("id", JOIN, q="r"),  # the recursive reference maps to the base query's column
        u("email", PRED),
        subset=True,
        absent=(u("*", JOIN, q="r"),),
    ),
    c(
        "WITH d AS (DELETE FROM users WHERE email LIKE 'a%' RETURNING ssn) SELECT * FROM d",
        u("email", PRED),
        u("ssn", OUT),
    ),
    c(
        "WITH a AS (SELECT email FROM users), b AS (SELECT email AS x FROM a) "
        "SELECT 1 FROM b ORDER BY x",
        u("email", OUT),
        u("email", ORDER),
    ),
    # --- DML ---------------------------------------------------------------------------------------
    c(
        "UPDATE users SET name = upper(email) WHERE ssn LIKE '1%' RETURNING email",
        u("email", EXPR),
        u("ssn", PRED),
        u("email", OUT),
    ),
    c(
        "UPDATE users u SET name = o.note FROM orders o WHERE o.uid = u.id AND u.email = 'x'",
        u("note", EXPR, q="o", t=ORDERS),
        u("uid", PRED, q="o", t=ORDERS),
        u("id", PRED, q="u"),
        u("email", PRED, q="u", eq=True),
    ),
    c("DELETE FROM users WHERE email LIKE 'a%'", u("email", PRED)),
    c("DELETE FROM users WHERE ssn = $1 RETURNING *", u("ssn", PRED, eq=True), u("*", OUT)),
    c(
        "INSERT INTO archive (e) SELECT email FROM users WHERE ssn = $1",
        u("email", EXPR),  # copied into a table: not a masked query result
        u("ssn", PRED, eq=True),
    ),
    c(
        "INSERT INTO users (email) VALUES ('x') ON CONFLICT (email) DO NOTHING",
        u("email", PRED, eq=True),
    ),
    c(
        "INSERT INTO users (email) SELECT note FROM orders ON CONFLICT (email) DO NOTHING",
        u("note", EXPR, t=ORDERS),
        u("email", PRED),
    ),
    c(
        "MERGE INTO users u USING staging s ON u.email = s.email "
        "WHEN MATCHED AND s.flag THEN UPDATE SET name = s.name "
        "WHEN NOT MATCHED THEN INSERT (email) VALUES (s.email)",
        u("email", JOIN, q="u"),
        u("email", JOIN, q="s", t="public.staging"),
        u("flag", PRED, q="s", t="public.staging"),
        u("name", EXPR, q="s", t="public.staging"),
        u("email", EXPR, q="s", t="public.staging"),
    ),
    # --- other statements --------------------------------------------------------------------------
    c("EXPLAIN SELECT id FROM users WHERE ssn > '5'", u("id", OUT), u("ssn", PRED)),
    c("EXPLAIN ANALYZE SELECT 1 FROM users ORDER BY ssn", u("ssn", ORDER)),
    c(
        "PREPARE p AS SELECT ssn FROM users WHERE email = $1",
        u("ssn", OUT),
        u("email", PRED, eq=True),
    ),
    c(
        "SELECT 1; SELECT email FROM users WHERE ssn = '1'",
        u("email", OUT),
        u("ssn", PRED, eq=True),
    ),
    c("COPY (SELECT email FROM users) TO STDOUT", u("email", EXPR)),
    c("CREATE TABLE t AS SELECT email FROM users", u("email", EXPR)),
    c("SELECT email INTO t2 FROM users", u("email", EXPR)),
    c("CREATE POLICY p ON users USING (email LIKE 'a%')", u("email", PRED)),
    c("SELECT x.email FROM app.users x", u("email", OUT, q="x", t="app.users")),
    c('SELECT "Email" FROM users', u("Email", OUT)),
    c("SET search_path TO app"),
    c(""),
]


@pytest.mark.parametrize("case", CASES, ids=[case.sql[:70] or "<empty>" for case in CASES])
def test_column_uses(case: Case) -> None:
    uses = column_uses(case.sql, case.search_path)
    assert len(uses) == len(set(uses)), "uses are reported once"
    if case.subset:
        missing = set(case.uses) - set(uses)
        assert not missing, f"missing {missing}; got {uses}"
    else:
        assert set(uses) == set(case.uses), f"got {uses}"
    for use in case.absent:
        assert use not in uses


def test_enough_cases() -> None:
    assert len(CASES) >= 60


def test_search_path_gives_every_candidate_schema() -> None:
    uses = column_uses("SELECT email FROM users", ("app", "public"))
    assert uses == (ColumnUse("email", None, OUT, False, ("app.users", "public.users")),)
    (catalog,) = column_uses("SELECT relname FROM pg_class")
    assert catalog.tables == ("pg_catalog.pg_class", "public.pg_class")


def test_schema_qualified_references_match_unaliased_tables() -> None:
    assert column_uses("SELECT public.users.email FROM users") == (
        ColumnUse("email", "public.users", OUT, False, (USERS,)),
    )


def test_use_is_hashable_and_a_str_enum() -> None:
    (use,) = column_uses("SELECT 1 FROM users WHERE email LIKE 'a%'")
    assert use.context == "predicate"
    assert {use: 1}[use] == 1


@pytest.mark.parametrize(
    "sql",
    ["SELEC email FROM users", "SELECT FROM WHERE", "SELECT 'unterminated", "SELECT 1\x00; DROP"],
)
def test_bad_text_is_a_parse_error(sql: str) -> None:
    with pytest.raises(SqlParseError):
        column_uses(sql)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_sql_parse_error(text: str) -> None:
    try:
        result = column_uses(text)
    except SqlParseError:
        return
    assert isinstance(result, tuple)
    assert all(isinstance(use, ColumnUse) for use in result)


# Statements assembled from fragments: they mostly parse, so the walker itself is exercised.
_EXPRS = [
    "email",
    "u.email",
    "u",
    "u.*",
    "*",
    "1",
    "$1",
    "'x'",
    "upper(email)",
    "max(ssn)",
    "count(*)",
    "(SELECT email FROM users LIMIT 1)",
    "CASE WHEN ssn > '1' THEN 1 END",
    "row_to_json(u)",
    "email = 'x'",
    "lag(email) OVER (PARTITION BY id ORDER BY ssn)",
    "(u).email",
    "ARRAY[email]",
    "x.y.z",
]
_FROMS = [
    "users u",
    "users u JOIN orders o ON o.uid = u.id",
    "(SELECT email, ssn FROM users) u",
    "users u, LATERAL (SELECT * FROM orders o WHERE o.uid = u.id) l",
    "users u NATURAL JOIN orders",
    "users u JOIN orders USING (email)",
    "c u",
    "unnest(ARRAY[1]) u",
    "(VALUES (1, 'a')) u(id, email)",
    "users AS u(a, b)",
]
_TAILS = [
    "",
    "WHERE email LIKE 'a%'",
    "WHERE email IN ('a', $1)",
    "ORDER BY 1",
    "GROUP BY 1, email",
    "WHERE EXISTS (SELECT 1 FROM users u2 WHERE u2.id = u.id)",
    "ORDER BY email LIMIT 3",
    "HAVING max(email) > 'm'",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_EXPRS), min_size=1, max_size=4),
    st.sampled_from(_FROMS),
    st.sampled_from(_TAILS),
    st.sampled_from(["", "DISTINCT ", "DISTINCT ON (email) "]),
    st.sampled_from(
        [
            "",
            "WITH c AS (SELECT email FROM users) ",
            "WITH RECURSIVE c(email) AS (SELECT 'a' UNION SELECT email FROM c) ",
        ]
    ),
    st.sampled_from(["", " UNION SELECT * FROM users", " INTERSECT SELECT email FROM users"]),
)
def test_assembled_statements_never_fail_internally(
    exprs: list[str], from_: str, tail: str, distinct: str, with_: str, setop: str
) -> None:
    sql = f"{with_}SELECT {distinct}{', '.join(exprs)} FROM {from_} {tail}{setop}"
    try:
        uses = column_uses(sql)
    except SqlParseError as exc:
        assert "cannot parse" in str(exc), f"internal failure on {sql!r}: {exc}"
        return
    assert len(uses) == len(set(uses))
    for use in uses:
        assert use.column
        assert isinstance(use.context, UseContext)
