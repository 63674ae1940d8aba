"""shape_key: constants become `?`, everything else keeps its meaning, doubt gives None."""

from __future__ import annotations

import pytest

from sqlgate.sql.shape import MAX_SHAPE_BYTES, shape_key


def same(*texts: str) -> str:
    keys = {shape_key(t) for t in texts}
    assert len(keys) == 1, keys
    (key,) = keys
    assert key is not None
    return key


def differ(a: str, b: str) -> None:
    ka, kb = shape_key(a), shape_key(b)
    assert ka is not None and kb is not None
    assert ka != kb


# --- constants of every kind


def test_pgbench_select_with_any_account_has_one_shape() -> None:
    key = same(
        "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 99999",
    )
    assert key == "select abalance from pgbench_accounts where aid = ?"


@pytest.mark.parametrize(
    "literal",
    [
        "1",
        "99999",
        "0",
        "3.14",
        "1.",
        "1e5",
        "1E+10",
        "2.5e-3",
        ".5",
        ".5e3",
        "0x1F",
        "0XdeadBEEF",
        "0o17",
        "0b1010",
        "1_000_000",
        "0x_1f",
        "99999999999999999999999",
        "'a'",
        "'b'",
        "''",
        "'it''s'",
        "'a\\'",  # standard_conforming_strings: the backslash is an ordinary character
        "'line\nbreak'",
        "E'\\''",
        "e'\\\\'",
        "E'it''s \\n \\t \\' \\\\'",
        "E'\\q'",
        "U&'d\\0061t\\+000061'",
        "u&'plain'",
        "U&'\\\\'",
        "B'1010'",
        "b''",
        "X'1F'",
        "x'ff'",
        "$$x$$",
        "$$$$",
        "$$it's$$",
        "$tag$ $$ nested $$ $tag$",
        "$a$x$b$y$a$",
        "$_1$x$_1$",
        "$é$x$é$",
        "'é€😀'",
        "'a'\n'b'",
        "'a'  \n  'b'",
        "'a' -- note\n'b'",
        "'a'\n-- note\n'b'",
        "E'a'\n'\\''",
        "B'1'\n'0'",
    ],
)
def test_every_constant_becomes_a_placeholder(literal: str) -> None:
    assert shape_key(f"SELECT x FROM t WHERE a = {literal}") == "select x from t where a = ?"


def test_different_strings_numbers_and_kinds_share_a_shape() -> None:
    same("SELECT * FROM t WHERE a = 'a'", "SELECT * FROM t WHERE a = 'b'")
    same("SELECT * FROM t WHERE a = E'\\''", "SELECT * FROM t WHERE a = 'x'")
    same("SELECT 1.5e10, 'x'", "SELECT 2, $q$y$q$")


def test_string_continuation_is_one_literal_but_adjacent_strings_are_two() -> None:
    assert shape_key("SELECT 'a'\n'b'") == "select ?"
    # No newline: two tokens (a syntax error for PostgreSQL), not one.
    assert shape_key("SELECT 'a' 'b'") == "select ? ?"
    # A /* */ comment does not continue a string, only whitespace holding a newline does.
    assert shape_key("SELECT 'a' /* c */\n'b'") == "select ? ?"


def test_a_prefix_letter_belongs_to_the_string_only_at_a_token_start() -> None:
    # somE'x' is the identifier "some" followed by a string, not an E'' string.
    assert shape_key("SELECT somE'x'") == "select some?"
    assert shape_key("SELECT E'x'") == "select ?"
    assert shape_key("SELECT xb'1'") == "select xb?"
    assert shape_key("SELECT xu&'a'") == "select xu&?"
    assert shape_key("SELECT N'x'") == "select n?"  # NCHAR, then a string


def test_dollar_quotes_follow_postgres_tag_rules() -> None:
    # $1 is a parameter, kept; a$b$c is one identifier; $$...$$ is a constant.
    assert shape_key("SELECT $1, $22 FROM t") == "select $1, $22 from t"
    assert shape_key("SELECT a$b$c FROM t") == "select a$b$c from t"
    assert shape_key("SELECT $Tag$x$tag$ $Tag$") == "select ?"  # tags are case-sensitive
    # The quote ends at the first $a$, even inside what looks like another tag.
    assert shape_key("SELECT $a$ $ba$a$, 1") == "select ?, ?"
    assert shape_key("SELECT $a$ $ba$a$ $a$") is None  # ... so the last $a$ opens a new one


# --- what is not a constant


def test_quoted_identifiers_are_kept_verbatim() -> None:
    differ('SELECT * FROM "Users"', "SELECT * FROM users")
    differ('SELECT * FROM "a  b"', 'SELECT * FROM "a b"')
    assert shape_key('SELECT "a\'b" FROM t') == 'select "a\'b" from t'
    assert (
        shape_key('SELECT "x""y" FROM "T" WHERE "c" = 1') == 'select "x""y" from "T" where "c" = ?'
    )
    assert shape_key('SELECT U&"d\\0061t" FROM t') == 'select u&"d\\0061t" from t'


def test_unquoted_words_fold_to_lower_case_in_ascii_only() -> None:
    same(
        "SELECT A FROM T WHERE B = 1", "select a from t where b = 2", "SeLeCt a FrOm t WhErE b = 3"
    )
    # PostgreSQL folds ASCII letters only: Ä and ä are different identifiers in UTF-8.
    differ("SELECT Ä FROM t", "SELECT ä FROM t")
    # U+212A KELVIN SIGN lower-cases to ASCII k in Python, never in PostgreSQL.
    differ("SELECT \u212a FROM t", "SELECT k FROM t")


def test_parameters_operators_and_punctuation_are_kept() -> None:
    assert shape_key("SELECT a::int, b[1:2] FROM t WHERE c <> $1 AND d ~* 'x'") == (
        "select a::int, b[?:?] from t where c <> $1 and d ~* ?"
    )
    # An operator's own ? is escaped, so it can never pass for a placeholder.
    assert shape_key("SELECT a ? 'k', b ?| c FROM t") == "select a \\? ?, b \\?| c from t"
    differ("SELECT a ? b FROM t", "SELECT a 1 b FROM t")


def test_signs_stay_operators() -> None:
    assert shape_key("SELECT -1, - 2, +3") == "select -?, - ?, +?"


# --- comments and whitespace


def test_comments_are_removed_and_whitespace_collapsed() -> None:
    key = same(
        "SELECT 1",
        "SELECT /* x */ 1",
        "SELECT/* x */1",
        "  SELECT\n\t1  ",
        "-- leading\nSELECT 1 -- trailing",
        "/* a /* nested */ comment */ SELECT 1",
        "SELECT 1; -- done\n",
        "SELECT 1 /* c */ ; /* d /* e */ */  ",
    )
    assert key == "select ?"


def test_a_comment_separates_tokens() -> None:
    assert shape_key("SELECT a/**/b FROM t") == "select a b from t"
    assert shape_key("SELECT 1-/**/-2") == "select ?- -?"
    assert shape_key("SELECT 1+--x\n2") == "select ?+ ?"


def test_nested_comments_end_where_postgres_ends_them() -> None:
    assert shape_key("SELECT /* a /* b */ c */ 1") == "select ?"
    assert shape_key("SELECT /* a /* b */ 1") is None  # still inside the outer comment
    assert shape_key("SELECT /* */* 2") == "select * ?"
    assert shape_key("SELECT /*/ x */ 1") == "select ?"


# --- look-alikes


def test_sql_inside_constants_does_not_leak_into_the_key() -> None:
    key = shape_key("SELECT 'DROP TABLE t'")
    assert key == "select ?"
    assert "drop" not in key
    assert shape_key("SELECT $$; DROP TABLE t; $$") == "select ?"
    assert shape_key("SELECT 'x'';DROP TABLE t;--'") == "select ?"
    assert shape_key("SELECT E'\\';DROP TABLE t;--'") == "select ?"
    assert shape_key("SELECT $a$ $$; DROP TABLE t; $$ $a$") == "select ?"
    assert shape_key("SELECT 1 /* ; DROP TABLE t; */") == "select ?"
    assert shape_key("SELECT 1 -- ; DROP TABLE t;") == "select ?"
    assert shape_key('SELECT 1 AS ";DROP TABLE t"') == 'select ? as ";DROP TABLE t"'


def test_a_statement_hidden_after_a_semicolon_is_refused() -> None:
    assert shape_key("SELECT 1; DROP TABLE t") is None
    assert shape_key("SELECT 'a;b'; DROP TABLE t") is None
    assert shape_key("SELECT 1;;") is None
    assert shape_key("SELECT 1; /* x */ SELECT 2") is None


# --- scope: which statements get a key at all


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select 1",
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1 WHERE b = 2",
        "DELETE FROM t WHERE a = 1",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "VALUES (1, 'a')",
        "TABLE t",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "(SELECT 1) UNION (SELECT 2)",
        "((VALUES (1)))",
        "/* c */ ( -- d\n SELECT 1)",
    ],
)
def test_queries_and_dml_get_a_key(sql: str) -> None:
    assert shape_key(sql) is not None


@pytest.mark.parametrize(
    "sql",
    [
        "SET search_path TO 'x'",
        "SET ROLE 'admin'",
        "RESET ALL",
        "EXPLAIN SELECT 1",
        "EXPLAIN (ANALYZE 0) DELETE FROM t",
        "COPY t TO '/tmp/x'",
        "COPY (SELECT 1) TO STDOUT",
        "DO $$ BEGIN PERFORM 1; END $$",
        "CALL p(1)",
        "PREPARE p AS SELECT 1",
        "EXECUTE p(1)",
        "SHOW search_path",
        "DROP TABLE t",
        "CREATE TABLE t (a int DEFAULT 1)",
        "BEGIN",
        "DECLARE c CURSOR FOR SELECT 1",
        "LOCK TABLE t",
        "select1",
        "selectx FROM t",
        "select$1",
        '"select" 1',
        "",
        "   ",
        "-- only a comment",
        ";",
    ],
)
def test_other_statements_get_none(sql: str) -> None:
    assert shape_key(sql) is None


# --- doubt gives None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'abc",
        "SELECT E'abc\\'",
        'SELECT "abc',
        "SELECT $$abc",
        "SELECT $a$abc$b$",
        "SELECT 1 /* abc",
        "SELECT 1 /* a /* b */",
        "SELECT 'a'\n'b",
        "SELECT B'01",
        "SELECT U&'abc",
    ],
)
def test_unterminated_tokens_give_none(sql: str) -> None:
    assert shape_key(sql) is None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1abc",  # trailing junk: an error since PostgreSQL 15, an alias before
        "SELECT 1e",
        "SELECT 1e+",
        "SELECT 0x",
        "SELECT 0x1g",
        "SELECT 0b2",
        "SELECT 1_",
        "SELECT 1__0",
        "SELECT 1$",
        "SELECT 1..5",
        "SELECT 1.5.5",
        "SELECT ..5",
        "SELECT $1abc",
        "SELECT $1_0",
        "SELECT $1$$x$$",
        "SELECT $$x$$1",
        "SELECT $$x$$$$y$$",
        "SELECT $$x$$a",
        "SELECT $",
        "SELECT $a",
    ],
)
def test_tokens_glued_to_identifier_characters_give_none(sql: str) -> None:
    assert shape_key(sql) is None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT E'\\x41'",  # escapes that can fail the parse (invalid UTF-8, NUL, code points)
        "SELECT E'\\101'",
        "SELECT E'\\0'",
        "SELECT E'\\u0041'",
        "SELECT E'\\U00000041'",
        "SELECT U&'\\zz'",
        "SELECT U&'\\0000'",
        "SELECT U&'\\D800\\DC00'",
        "SELECT U&'\\+110000'",
        "SELECT U&'\\'",
        "SELECT U&'a'\n'b'",  # continued U& strings are decoded as one
        "SELECT U&'d!0061t' UESCAPE '!'",
        "SELECT * FROM U&\"d!0061t\" UESCAPE '!'",
        "SELECT a FROM t WHERE b = 'x' UESCAPE",
    ],
)
def test_escapes_that_could_fail_or_change_meaning_give_none(sql: str) -> None:
    assert shape_key(sql) is None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 \\g",
        "SELECT {1}",
        "SELECT\v1",
        "SELECT 1\x1c",
        "SELECT 1\x7f",
        "SELECT 1\x01",
    ],
)
def test_characters_postgres_refuses_outside_quotes_give_none(sql: str) -> None:
    assert shape_key(sql) is None


def test_those_characters_are_fine_inside_constants_and_identifiers() -> None:
    assert shape_key("SELECT '\\ {} \v \x01 \x7f'") == "select ?"
    assert shape_key("SELECT $$\\$$, '{\"a\": 1}'") == "select ?, ?"
    assert shape_key('SELECT "{x}" FROM t') == 'select "{x}" from t'
    assert shape_key("SELECT 1 -- \\ {}\n") == "select ?"


def test_nul_gives_none_anywhere() -> None:
    assert shape_key("SELECT 1\x00") is None
    assert shape_key("SELECT '\x00'") is None
    assert shape_key("SELECT 1 -- \x00") is None


def test_lone_surrogates_give_none() -> None:
    assert shape_key("SELECT '\ud800'") is None


def test_texts_over_64_kib_give_none() -> None:
    filler = "x" * (MAX_SHAPE_BYTES - len("SELECT 1 -- "))
    assert shape_key("SELECT 1 -- " + filler) == "select ?"
    assert shape_key("SELECT 1 -- " + filler + "x") is None
    # The limit counts UTF-8 bytes, not characters.
    wide = "é" * ((MAX_SHAPE_BYTES - 20) // 2)
    assert shape_key("SELECT 1 -- " + wide) == "select ?"
    assert shape_key("SELECT 1 -- " + wide + "é" * 10) is None


# --- whitespace inside identifiers and non-ASCII text


def test_whitespace_inside_quoted_identifiers_is_kept() -> None:
    assert shape_key('SELECT  "a \n\t b"  ,\n c  FROM t') == 'select "a \n\t b" , c from t'
    assert shape_key('SELECT "x"  \n FROM t') == 'select "x" from t'


def test_non_ascii_identifiers_keep_their_characters() -> None:
    # U+00A0 is an identifier character to PostgreSQL, not whitespace.
    assert shape_key("SELECT a\u00a0b FROM t") == "select a\u00a0b from t"
    assert shape_key("SELECT a\u00a0b,  \n x FROM tÄ WHERE c = 'ü'") == (
        "select a\u00a0b, x from tÄ where c = ?"
    )
    assert shape_key('SELECT "é"  ,  Ü  FROM t') == 'select "é" , Ü from t'
