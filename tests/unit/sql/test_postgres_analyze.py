"""Behaviour of `analyze` beyond single-statement classification."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.errors import SqlgateError
from sqlgate.sql import (
    CATEGORIES,
    OPERATIONS,
    RESET_SEARCH_PATH,
    Category,
    SqlParseError,
    StatementAnalysis,
    analyze,
    postgres,
)


def one(sql: str, search_path: tuple[str, ...] = ("public",)) -> StatementAnalysis:
    (analysis,) = analyze(sql, search_path)
    return analysis


# --- input shapes


@pytest.mark.parametrize("sql", ["", "   \n\t", "-- only a comment", "/* c */", ";", " ; ;; "])
def test_blank_or_comment_only_text_has_no_statements(sql: str) -> None:
    assert analyze(sql) == ()


def test_drop_after_select_is_a_second_statement() -> None:
    first, second = analyze("SELECT 1; DROP TABLE t")
    assert first.category is Category.READ
    assert second.category is Category.DDL
    assert second.operations == {"drop_table"}
    assert second.tables == {"public.t"}


def test_each_statement_text_is_its_own_slice() -> None:
    sql = "SELECT 1;  -- note\nDELETE FROM t WHERE a = 'x;y' ;\n\tSELECT $$;$$"
    texts = [a.text for a in analyze(sql)]
    assert texts == ["SELECT 1", "DELETE FROM t WHERE a = 'x;y'", "SELECT $$;$$"]


def test_statement_text_is_sliced_by_characters_not_bytes() -> None:
    sql = "SELECT 'é€😀' AS x; SELECT 'ü'; UPDATE t SET a = 'ß'"
    texts = [a.text for a in analyze(sql)]
    assert texts == ["SELECT 'é€😀' AS x", "SELECT 'ü'", "UPDATE t SET a = 'ß'"]


def test_categories_and_operations_are_string_vocabularies() -> None:
    assert {c.value for c in Category} == CATEGORIES
    assert "unknown" in CATEGORIES
    assert str(Category.COPY_OUT) == "copy_out"
    assert {"select", "delete_without_where", "set_role", "copy_to_program"} <= OPERATIONS


def test_analysis_is_immutable() -> None:
    analysis = one("SELECT 1")
    with pytest.raises(AttributeError):
        analysis.category = Category.WRITE  # type: ignore[misc]


# --- parse errors fail closed


@pytest.mark.parametrize(
    "sql",
    [
        "DR/**/OP TABLE t",
        "SELEC 1",
        "SELECT FROM WHERE",
        "DROP TABLE",
        "SELECT 'unterminated",
        "SELECT $$unterminated",
        "/* unterminated comment SELECT 1",
        "SELECT 1; DROP TABLE",
        "\x01\x02garbage",
    ],
)
def test_text_that_does_not_parse_raises(sql: str) -> None:
    with pytest.raises(SqlParseError):
        analyze(sql)


def test_parse_error_says_where() -> None:
    with pytest.raises(SqlParseError) as info:
        analyze("SELECT FROM WHERE x")
    assert info.value.position == 12
    assert "WHERE" in str(info.value)
    assert isinstance(info.value, SqlgateError)


def test_nul_character_is_refused_rather_than_truncated() -> None:
    # libpg_query would stop at the NUL and see only "SELECT 1".
    with pytest.raises(SqlParseError) as info:
        analyze("SELECT 1\x00; DROP TABLE t")
    assert info.value.position == 8


def test_unpaired_surrogate_is_a_parse_error() -> None:
    with pytest.raises(SqlParseError):
        analyze("SELECT '\ud800'")


def test_internal_failure_becomes_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(postgres, "_loads", broken)
    with pytest.raises(SqlParseError, match="boom"):
        analyze("SELECT 1")


def test_statement_type_without_a_rule_is_unknown() -> None:
    # White-box: libpg_query may grow statement types; until classified they fail closed.
    analysis = postgres._analyze_statement("NEW", {"FutureStmt": {}}, postgres._resolver(()))
    assert analysis.category is Category.UNKNOWN
    assert analysis.operations == {"unknown"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_analyzes_or_raises_parse_error(sql: str) -> None:
    try:
        result = analyze(sql)
    except SqlParseError:
        return
    assert isinstance(result, tuple)
    for analysis in result:
        assert isinstance(analysis, StatementAnalysis)
        assert analysis.category in Category
        assert analysis.operations
        assert analysis.operations <= OPERATIONS


_SQLISH = st.lists(
    st.sampled_from(
        [
            "SELECT",
            "DELETE",
            "FROM",
            "WHERE",
            "WITH",
            "AS",
            "(",
            ")",
            ";",
            ",",
            "t",
            "x",
            "'a'",
            "$$b$$",
            "1",
            "*",
            "=",
            "INSERT",
            "INTO",
            "VALUES",
            "UPDATE",
            "SET",
            "RETURNING",
            "EXPLAIN",
            "ANALYZE",
            "COPY",
            "TO",
            "STDOUT",
            "DROP",
            "TABLE",
            "f(",
            "pg_read_file(",
            "--",
            "/*",
            "*/",
            "\n",
            "PREPARE",
            "p",
            "EXECUTE",
        ]
    ),
    max_size=25,
).map(" ".join)


@settings(max_examples=500, deadline=None)
@given(_SQLISH)
def test_sql_like_text_analyzes_or_raises_parse_error(sql: str) -> None:
    try:
        result = analyze(sql)
    except SqlParseError:
        return
    for analysis in result:
        assert analysis.operations <= OPERATIONS
        if "delete" in analysis.operations and "explain" not in analysis.operations:
            assert analysis.category is not Category.READ


# --- tables: search_path, quoting, CTE scope


def test_unqualified_tables_resolve_in_the_search_path() -> None:
    assert one("SELECT * FROM t", ("app",)).tables == {"app.t"}
    assert one("SELECT * FROM t", ("$user", "app")).tables == {"app.t"}
    assert one("SELECT * FROM t").tables == {"public.t"}
    assert one("SELECT * FROM other.t", ("app",)).tables == {"other.t"}


def test_every_schema_of_the_search_path_is_a_candidate() -> None:
    # With a longer path PostgreSQL takes the first schema that has the table: any of them.
    assert one("SELECT * FROM t", ("a", "b", "a")).tables == {"a.t", "b.t"}


def test_catalog_names_also_resolve_in_pg_catalog() -> None:
    # pg_catalog is searched before the path unless the path names it.
    assert one("SELECT * FROM pg_authid").tables == {"pg_catalog.pg_authid", "public.pg_authid"}
    path = ("app", "pg_catalog")
    assert one("SELECT * FROM pg_authid", path).tables == {
        "app.pg_authid",
        "pg_catalog.pg_authid",
    }


def test_empty_search_path_falls_back_to_public() -> None:
    assert one("SELECT * FROM t", ()).tables == {"public.t"}
    assert one("SELECT * FROM t", ("$user",)).tables == {"public.t"}


def test_quoted_identifiers_keep_their_case() -> None:
    assert one('SELECT * FROM "Sales"."Orders"').tables == {"Sales.Orders"}
    assert one("SELECT * FROM Sales.Orders").tables == {"sales.orders"}
    assert one('SELECT "Col", col FROM t').columns == {"Col", "col"}


def test_names_with_dots_are_quoted_so_they_stay_unambiguous() -> None:
    assert one('SELECT * FROM "a.b"').tables == {'public."a.b"'}
    assert one('SELECT * FROM "x"".y".z').tables == {'"x"".y".z'}


def test_cte_names_are_not_tables() -> None:
    assert one("WITH x AS (SELECT * FROM t) SELECT * FROM x").tables == {"public.t"}


def test_cte_that_reads_a_table_of_its_own_name_reports_the_table() -> None:
    analysis = one("WITH secret AS (SELECT * FROM secret) SELECT * FROM secret")
    assert analysis.tables == {"public.secret"}


def test_cte_name_does_not_hide_a_table_outside_its_scope() -> None:
    sql = "SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) a, secret"
    assert one(sql).tables == {"public.secret"}


def test_later_cte_sees_earlier_ones_but_not_the_reverse() -> None:
    sql = "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM a, b"
    assert one(sql).tables == {"public.b"}


def test_recursive_cte_sees_itself() -> None:
    sql = "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r"
    assert one(sql).tables == frozenset()


def test_schema_qualified_name_is_a_table_even_if_a_cte_shares_it() -> None:
    assert one("WITH t AS (SELECT 1) SELECT * FROM t, public.t").tables == {"public.t"}


def test_dml_target_is_a_table_even_if_a_cte_shares_its_name() -> None:
    analysis = one("WITH t AS (SELECT 1) DELETE FROM t WHERE a IN (SELECT * FROM t)")
    assert analysis.tables == {"public.t"}
    assert analysis.operations == {"delete"}


def test_cte_on_a_set_operation_branch_is_scoped_to_it() -> None:
    sql = "(WITH x AS (SELECT 1) SELECT * FROM x) UNION SELECT * FROM x"
    assert one(sql).tables == {"public.x"}


def test_create_schema_elements_resolve_in_the_new_schema() -> None:
    analysis = one("CREATE SCHEMA s CREATE TABLE t (a int)")
    assert "s.t" in analysis.tables


# --- columns and functions


def test_columns_are_reported_as_written() -> None:
    analysis = one("SELECT t.a, b, t.*, * FROM t WHERE c = 1")
    assert analysis.columns == {"t.a", "b", "t.*", "*", "c"}


def test_update_and_insert_target_columns_are_reported() -> None:
    assert {"secret", "id"} <= one("UPDATE t SET secret = 1 WHERE id = 2").columns
    assert {"a", "b"} <= one("INSERT INTO t (a, b) VALUES (1, 2)").columns


def test_qualified_function_names_keep_the_schema() -> None:
    analysis = one("SELECT pg_catalog.pg_read_file('x'), now(), s.f()")
    assert analysis.functions == {"pg_read_file", "now", "f"}
    assert analysis.qualified_functions == {"pg_catalog.pg_read_file", "now", "s.f"}


def test_quoted_function_names_are_lowered() -> None:
    # Deny lists name functions in lower case; a quoted upper-case name is matched too.
    assert one("SELECT \"PG_READ_FILE\"('x')").functions == {"pg_read_file"}


def test_function_deep_in_nested_subqueries_is_found() -> None:
    sql = "SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT secret_fn()) a) b) c"
    assert one(sql).functions == {"secret_fn"}


def test_functions_in_explain_analyze_target_are_found() -> None:
    assert one("EXPLAIN ANALYZE SELECT pg_read_file('x')").functions == {"pg_read_file"}


# --- prepared statements and session state


def test_prepare_carries_the_analysis_of_its_body() -> None:
    analysis = one("PREPARE p AS DELETE FROM t")
    assert analysis.prepare_name == "p"
    assert analysis.category is Category.WRITE
    assert {"prepare", "delete", "delete_without_where"} == analysis.operations
    assert analysis.text == "PREPARE p AS DELETE FROM t"


def test_execute_is_unknown_until_the_session_resolves_it() -> None:
    analysis = one("EXECUTE p")
    assert analysis.execute_name == "p"
    assert analysis.category is Category.UNKNOWN
    assert analysis.operations == {"execute"}


def test_explain_analyze_execute_is_unknown_and_names_the_statement() -> None:
    analysis = one("EXPLAIN ANALYZE EXECUTE p")
    assert analysis.execute_name == "p"
    assert analysis.category is Category.UNKNOWN
    assert analysis.operations == {"explain", "execute"}


def test_create_table_as_execute_names_the_statement() -> None:
    analysis = one("CREATE TABLE x AS EXECUTE p")
    assert analysis.execute_name == "p"
    assert analysis.category is Category.DDL
    assert analysis.operations == {"create_table", "execute"}


def test_deallocate_names_the_statement() -> None:
    assert one("DEALLOCATE p").deallocate_name == "p"
    assert one("DEALLOCATE PREPARE p").deallocate_name == "p"
    assert one("DEALLOCATE ALL").deallocate_name == "*"


def test_set_search_path_is_reported_for_the_session() -> None:
    assert one("SET search_path TO a, b").search_path == ("a", "b")
    assert one("SET search_path = \"$user\", 'My Schema'").search_path == ("$user", "My Schema")
    assert one("SET LOCAL search_path TO x").search_path == ("x",)
    assert one('SET "Search_Path" TO x').search_path == ("x",)


@pytest.mark.parametrize(
    "sql",
    ["SET search_path TO DEFAULT", "RESET search_path", "RESET ALL", "DISCARD ALL"],
)
def test_statements_that_restore_the_default_search_path(sql: str) -> None:
    assert one(sql).search_path == RESET_SEARCH_PATH == ()


def test_other_statements_do_not_touch_the_search_path() -> None:
    assert one("SET work_mem = '1MB'").search_path is None
    assert one("SELECT 1").search_path is None


def test_analysis_follows_a_search_path_set_in_the_same_string() -> None:
    # The caller applies SET search_path between calls; within one string it cannot, and the
    # tables of the later statement are reported in the path given to this call.
    first, second = analyze("SET search_path TO app; SELECT * FROM t")
    assert first.search_path == ("app",)
    assert second.tables == {"public.t"}
