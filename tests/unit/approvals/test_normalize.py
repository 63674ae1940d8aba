"""normalize_sql: one key per statement; layout and comments ignored, literals never."""

from __future__ import annotations

import pytest

from sqlgate.approvals import normalize_sql
from sqlgate.core import Dialect


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  SELECT\n\t1 ;; ", "SELECT 1"),
        ("SELECT/**/1", "SELECT 1"),
        ("-- why\nDROP TABLE t; -- done", "DROP TABLE t"),
        ("SELECT 'a  -- not a comment' /* one */", "SELECT 'a  -- not a comment'"),
        ("SELECT $$ keep   this -- too $$", "SELECT $$ keep   this -- too $$"),
        ("SELECT E'it\\'s  ok'", "SELECT E'it\\'s  ok'"),
        ('SELECT "Mixed  Case" FROM t', 'SELECT "Mixed  Case" FROM t'),
        ("SELECT a.b,c", "SELECT a.b,c"),
        ("BEGIN; DROP TABLE t;\nCOMMIT;", "BEGIN; DROP TABLE t; COMMIT"),
        ("SELECT 'unterminated  ", "SELECT 'unterminated"),
    ],
)
def test_postgres(sql: str, expected: str) -> None:
    assert normalize_sql(sql) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE id = 2"),
        ("DELETE FROM t WHERE id = 1", "delete from t where id = 1"),
        ("SELECT 'a b'", "SELECT 'a  b'"),
        ("SELECT 1", "SELECT 1; SELECT 2"),
    ],
)
def test_different_statements_stay_different(a: str, b: str) -> None:
    assert normalize_sql(a) != normalize_sql(b)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT  1 ;", "SELECT 1"),
        ("SELECT 1 # note\n, 2", "SELECT 1 , 2"),
        ("SELECT 1 -- note\n", "SELECT 1"),
        ("SELECT 1--1", "SELECT 1--1"),
        ("SELECT /*! STRAIGHT_JOIN */ a /* x */ FROM t", "SELECT /*! STRAIGHT_JOIN */ a FROM t"),
        ("SELECT 'it\\'s  # x', `a  b`", "SELECT 'it\\'s  # x', `a  b`"),
        ("SELECT 'a''  b'", "SELECT 'a''  b'"),
    ],
)
def test_mysql(sql: str, expected: str) -> None:
    assert normalize_sql(sql, Dialect.MYSQL) == expected
