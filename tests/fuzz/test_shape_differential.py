"""Differential fuzzing of shape_key: a decision cached by shape never differs from a fresh one.

Three oracles:

- PostgreSQL's own lexer (pglast.parser.scan, libpg_query's copy of scan.l): whenever
  shape_key gives a key, rendering PostgreSQL's token stream the same way (constants as `?`,
  comments as whitespace, unquoted words lower-cased, an operator's `?` as `\\?`) gives the
  very same key. So the key is a function of PostgreSQL's tokens, never of a guess about them.
- The analyzer: texts with one key analyze alike (category, operations, tables, columns,
  functions), so the policy decision, which sees nothing else of a statement (unless a rule
  has a statement_regex, which must bypass the shape cache), is the same.
- Templates: realistic statements with different constants share their key.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast import parser

from sqlgate.sql import SqlParseError, StatementAnalysis, analyze, shape
from sqlgate.sql.shape import shape_key

# Sized for about 4 s of CPU in all. To hunt longer, multiply the example counts:
# SQLGATE_FUZZ_SCALE=50 pytest tests/fuzz/test_shape_differential.py
SCALE = int(os.environ.get("SQLGATE_FUZZ_SCALE", "1"))
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FAST = settings(FUZZ, max_examples=400 * SCALE)  # a few ms per example
SLOW = settings(FUZZ, max_examples=150 * SCALE)  # several analyze() calls per example

# --- oracles


_CONSTANTS = frozenset({"ICONST", "FCONST", "SCONST", "BCONST", "XCONST", "USCONST"})
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


def _ascii_lower(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def reference_key(sql: str) -> str | None:
    """The shape key rendered from PostgreSQL's own token stream; None if its lexer refuses."""
    try:
        tokens = [t for t in parser.scan(sql) if t.name not in _COMMENTS]
    except parser.ParseError:
        return None
    if tokens and tokens[-1].name == "ASCII_59":  # a final ;
        tokens.pop()
    out: list[str] = []
    previous_end: int | None = None
    for token in tokens:
        text = sql[token.start : token.end + 1]
        if previous_end is not None and token.start > previous_end + 1:
            out.append(" ")  # whitespace or comments between the two tokens
        previous_end = token.end
        if token.name in _CONSTANTS:
            out.append("?")
        elif token.name == "IDENT" and text.startswith('"'):
            out.append(text)
        elif token.name == "UIDENT":
            out.append(text[:2].lower() + text[2:])
        else:
            out.append(_ascii_lower(text).replace("?", "\\?"))
    return "".join(out)


Summary = tuple[Any, ...]


def summary(sql: str) -> Summary | None:
    """What a policy decision depends on; None when the text does not parse."""
    try:
        analyses = analyze(sql)
    except SqlParseError:
        return None
    return tuple(_facts(a) for a in analyses)


def _facts(a: StatementAnalysis) -> Summary:
    return (
        a.category,
        a.operations,
        a.tables,
        a.columns,
        a.functions,
        a.qualified_functions,
        a.prepare_name,
        a.execute_name,
        a.deallocate_name,
        a.search_path,
    )


def check_against_scanner(sql: str) -> str | None:
    key = shape_key(sql)
    if key is not None:
        assert key == reference_key(sql), f"shape_key disagrees with PostgreSQL's lexer: {sql!r}"
        # Both of shape_key's scans, when the simple one applies, agree on their own too.
        low = sql.lower() if sql.isascii() else sql.encode().lower().decode()
        simple = shape._simple_key(low)
        assert simple is None or simple == shape._general_key(sql, low) == key, sql
    return key


# Across examples too: every parsed text seen, by key (bounded, it only widens the net).
_SEEN: dict[str, tuple[str, Summary]] = {}


def check_same_key_same_analysis(texts: list[str]) -> int:
    """Assert the analysis property over `texts`; return how many pairs it compared."""
    by_key: dict[str, list[tuple[str, Summary]]] = {}
    for sql in texts:
        key = check_against_scanner(sql)
        if key is None:
            continue
        facts = summary(sql)
        if facts is None:
            continue  # a text that does not parse is refused, whatever its shape
        by_key.setdefault(key, []).append((sql, facts))
    compared = 0
    for key, group in by_key.items():
        seen = _SEEN.get(key)
        if seen is not None:
            group = [seen, *group]
        elif len(_SEEN) < 20_000:
            _SEEN[key] = group[0]
        first_sql, first = group[0]
        for sql, facts in group[1:]:
            compared += 1
            assert facts == first, (
                f"same shape {key!r}, different analysis:\n{first_sql!r}: {first}\n{sql!r}: {facts}"
            )
    return compared


# --- constants


_TEXT_PIECES = [
    "a", "Z", "1", " ", "'", "''", '"', "\\", "\\'", ";", "--", "/*", "*/", "$", "$$", "$a$",
    "\n", "\t", "?", "é", "😀", "{", "}", "DROP TABLE t", "E'", "U&'", "0x", "\r\n",
]  # fmt: skip
content = st.lists(st.sampled_from(_TEXT_PIECES), max_size=8).map("".join)


def _plain(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _escape_string(text: str, double: bool) -> str:
    body = text.replace("\\", "\\\\").replace("'", "''" if double else "\\'")
    return "E'" + body.replace("\n", "\\n") + "'"


def _dollar(text: str, tag: str) -> str:
    delim = f"${tag}$"
    if (text + delim).find(delim) != len(text):
        delim = "$q9x$"
        if (text + delim).find(delim) != len(text):
            return _plain(text)
    return delim + text + delim


def _unicode(text: str) -> str:
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c == "a":
            out.append("\\0061")
        elif c == "é":
            out.append("\\+0000e9")
        elif c == "'":
            out.append("''")
        else:
            out.append(c)
    return "U&'" + "".join(out) + "'"


numbers = st.one_of(
    st.integers(0, 10**25).map(str),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr),
    st.integers(0, 10**6).map(lambda n: f"{n:_}"),
    st.integers(0, 2**40).map(hex),
    st.integers(0, 2**20).map(oct),
    st.integers(0, 2**20).map(bin),
    st.integers(0, 999).map(lambda n: f".{n}"),
    st.integers(0, 999).map(lambda n: f"{n}."),
    st.tuples(st.integers(0, 99), st.integers(0, 99), st.sampled_from("eE"),
              st.sampled_from(["", "+", "-"])).map(lambda t: f"{t[0]}.{t[1]}{t[2]}{t[3]}7"),
)  # fmt: skip
strings = st.one_of(
    content.map(_plain),
    st.tuples(content, st.booleans()).map(lambda t: _escape_string(*t)),
    st.tuples(content, st.sampled_from(["", "a", "tag", "_x1", "é", "T"])).map(
        lambda t: _dollar(*t)
    ),
    content.map(_unicode),
    st.text("01", max_size=8).map(lambda s: f"B'{s}'"),
    st.text("0123456789abcdefABCDEF", max_size=8).map(lambda s: f"X'{s}'"),
    st.tuples(content, content, st.sampled_from(["\n", " \n ", "\n\t", " -- c'\n", "\r"])).map(
        lambda t: _plain(t[0]) + t[2] + _plain(t[1])
    ),
)
literals = st.one_of(numbers, strings)


# --- property 1 (and 2) on realistic templates

TEMPLATES = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = {}",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
    "select * from Users where Email = {} and active",
    "SELECT pg_read_file({})",
    "SELECT pg_catalog.pg_read_file({}, {}, {})",
    "SELECT * FROM dblink({}, {}) AS t(a int)",
    "SELECT lo_import({}), lo_export({}, {})",
    "SELECT query_to_xml({}, true, false, {})",
    "SELECT pg_ls_dir({}) UNION SELECT pg_read_binary_file({})::text",
    "SELECT set_config({}, {}, false)",
    "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE c.country = {} AND o.total > {}",
    "SELECT * FROM t1 LEFT JOIN t2 USING (id) WHERE t2.v BETWEEN {} AND {}",
    "SELECT * FROM a WHERE id IN (SELECT a_id FROM b WHERE c = {})",
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = {})",
    "SELECT * FROM t WHERE x = {} FOR UPDATE",
    "SELECT * INTO new_table FROM t WHERE a = {}",
    'SELECT * FROM "Mixed"."Case" WHERE "Col" = {}',
    "SELECT a, b FROM t ORDER BY a LIMIT {} OFFSET {}",
    "SELECT {}::text, {} || {}",
    "SELECT coalesce(x, {}) FROM t GROUP BY x HAVING count(*) > {}",
    "SELECT CASE WHEN a > {} THEN {} ELSE {} END FROM t",
    "SELECT * FROM t WHERE data @> {} AND tags ? {}",
    "SELECT * FROM t WHERE name LIKE {} ESCAPE {}",
    "SELECT * FROM t WHERE a = $1 AND b = {}",
    "select * from T where A = {} and b = ANY(ARRAY[{}, {}])",
    "(SELECT a FROM t WHERE b = {}) UNION ALL (SELECT a FROM u WHERE b = {})",
    "SELECT * FROM t -- it's a comment\nWHERE a = {} /* block /* nested */ */",
    "UPDATE accounts SET balance = balance + {} WHERE id = {}",
    "UPDATE accounts SET balance = {}",
    "UPDATE t SET a = {} FROM u WHERE t.id = u.id AND u.flag = {} RETURNING t.*",
    "DELETE FROM sessions WHERE expires < {}",
    "DELETE FROM sessions",
    "DELETE FROM t USING u WHERE t.id = u.id AND u.k = {}",
    "INSERT INTO audit (who, what, at) VALUES ({}, {}, now())",
    "INSERT INTO t SELECT * FROM s WHERE x = {} ON CONFLICT (id) DO UPDATE SET v = {}",
    "INSERT INTO logs SELECT {}, now() FROM generate_series(1, {})",
    "WITH moved AS (DELETE FROM queue WHERE id = {} RETURNING *) INSERT INTO done "
    "SELECT * FROM moved",
    "WITH u AS (UPDATE t SET a = {} WHERE b = {} RETURNING *) SELECT count(*) FROM u",
    "WITH x AS (SELECT {} AS a) SELECT * FROM x",
    "WITH RECURSIVE r(n) AS (SELECT {} UNION ALL SELECT n + {} FROM r WHERE n < {}) "
    "SELECT * FROM r",
    "VALUES ({}, {}), ({}, {})",
    "TABLE pgbench_branches",
    "MERGE INTO t USING s ON t.id = s.id AND s.v > {} WHEN MATCHED THEN UPDATE SET v = {} "
    "WHEN NOT MATCHED THEN INSERT VALUES (s.id, {})",
]


def _instances(template: str) -> st.SearchStrategy[str]:
    slots = template.count("{}")
    return st.lists(literals, min_size=slots, max_size=slots).map(
        lambda values: template.format(*values)
    )


@st.composite
def template_pairs(draw: st.DrawFn) -> tuple[str, str]:
    template = draw(st.sampled_from(TEMPLATES))
    return draw(_instances(template)), draw(_instances(template))


@SLOW
@given(template_pairs())
def test_one_template_with_other_constants_has_one_shape_and_one_analysis(
    pair: tuple[str, str],
) -> None:
    first, second = pair
    key = check_against_scanner(first)
    assert key is not None, first  # every constant the strategies build is one we lex
    assert check_against_scanner(second) == key, (first, second)
    facts = summary(first)
    assert facts is not None, first
    assert summary(second) == facts, (first, second)
    check_same_key_same_analysis([first, second])


def test_every_template_has_a_key() -> None:
    for template in TEMPLATES:
        sql = template.format(*["1"] * template.count("{}"))
        assert shape_key(sql) is not None, sql
        assert summary(sql) is not None, sql


# --- property 2 over generated statements: a small grammar, so that most of them parse

_NAMES = ["t", "users", "Orders", '"Mixed"', '"a b"', "pgbench_accounts", "pg_class", "x1", "é"]
_FUNCS = ["pg_read_file", "dblink", "lower", "coalesce", "pg_catalog.pg_sleep", '"Func"',
          "set_config", "lo_import", "public.f", "now", "count"]  # fmt: skip
_OPS = ["=", "<>", "<", ">=", "+", "-", "*", "/", "||", "~~", "?", "?|", "@>", "AND", "OR"]
_TYPES = ["int", "text", "numeric(10, 2)", "bigint[]", "jsonb", '"MyType"']

Tokens = list[str | None]  # None: a constant's slot


def _column(draw: st.DrawFn) -> Tokens:
    name = draw(st.sampled_from([*_NAMES, "a", "b", "aid"]))
    if draw(st.booleans()):
        return [draw(st.sampled_from(_NAMES)), ".", name]
    return [name]


def _expr(draw: st.DrawFn, depth: int) -> Tokens:
    choice = draw(st.integers(0, 9 if depth < 3 else 2))
    if choice == 0:
        return [None]
    if choice == 1:
        return _column(draw)
    if choice == 2:
        return [draw(st.sampled_from(["$1", "$2", "NULL", "true", "*"]))] if depth else [None]
    if choice == 3:
        return [*_expr(draw, depth + 1), draw(st.sampled_from(_OPS)), *_expr(draw, depth + 1)]
    if choice == 4:
        args: Tokens = []
        for i in range(draw(st.integers(0, 3))):
            args += ([","] if i else []) + _expr(draw, depth + 1)
        return [draw(st.sampled_from(_FUNCS)), "(", *args, ")"]
    if choice == 5:
        return ["(", *_select(draw, depth + 1), ")"]
    if choice == 6:
        return ["CASE", "WHEN", *_expr(draw, depth + 1), "THEN", None, "ELSE",
                *_expr(draw, depth + 1), "END"]  # fmt: skip
    if choice == 7:
        return [*_expr(draw, depth + 1), "::", draw(st.sampled_from(_TYPES))]
    if choice == 8:
        return [draw(st.sampled_from(["date", "interval", "text", "int"])), None]
    return ["ARRAY", "[", None, ",", *_expr(draw, depth + 1), "]"]


def _select(draw: st.DrawFn, depth: int) -> Tokens:
    out: Tokens = ["SELECT", *_expr(draw, depth)]
    for _ in range(draw(st.integers(0, 2))):
        out += [",", *_expr(draw, depth)]
    if draw(st.booleans()):
        out += ["FROM", draw(st.sampled_from(_NAMES))]
        if draw(st.booleans()):
            out += ["JOIN", draw(st.sampled_from(_NAMES)), "ON", *_expr(draw, depth + 1)]
        if draw(st.booleans()):
            out += ["WHERE", *_expr(draw, depth + 1)]
    if draw(st.booleans()):
        out += ["LIMIT", None]
    if depth == 0 and draw(st.integers(0, 5)) == 0:
        out += ["FOR", "UPDATE"]
    return out


def _dml(draw: st.DrawFn, depth: int) -> Tokens:
    table = draw(st.sampled_from(_NAMES))
    kind = draw(st.integers(0, 3))
    where = ["WHERE", *_expr(draw, depth + 1)] if draw(st.booleans()) else []
    returning = ["RETURNING", "*"] if draw(st.booleans()) else []
    if kind == 0:
        return ["UPDATE", table, "SET", "a", "=", *_expr(draw, depth + 1), *where, *returning]
    if kind == 1:
        return ["DELETE", "FROM", table, *where, *returning]
    if kind == 2:
        return ["INSERT", "INTO", table, "VALUES", "(", None, ",", *_expr(draw, depth + 1), ")",
                *returning]  # fmt: skip
    return ["INSERT", "INTO", table, *_select(draw, depth + 1)]


@st.composite
def statements(draw: st.DrawFn) -> Tokens:
    kind = draw(st.integers(0, 5))
    if kind <= 1:
        return _select(draw, 0)
    if kind == 2:
        return _dml(draw, 0)
    if kind == 3:
        inner = _dml(draw, 1) if draw(st.booleans()) else _select(draw, 1)
        outer = _select(draw, 1) if draw(st.booleans()) else _dml(draw, 1)
        return ["WITH", "w", "AS", "(", *inner, ")", *outer]
    if kind == 4:
        return ["VALUES", "(", None, ",", *_expr(draw, 1), ")"]
    return ["(", *_select(draw, 1), ")", "UNION", "ALL", "(", *_select(draw, 1), ")"]


_GAPS = [" ", " ", "\n", "  \t", "/* c */", "/* a /* b */ */", "-- c\n", "\r\n"]
_PUNCT = frozenset("(),[]:;.=<>+-*/|~?@")


def _render(draw: st.DrawFn, tokens: Tokens, values: list[str]) -> str:
    it = iter(values)
    out: list[str] = []
    previous = ""
    for token in tokens:
        text = next(it) if token is None else token
        if out:
            glue = previous[-1:] in _PUNCT or text[:1] in _PUNCT
            out.append(draw(st.sampled_from([*_GAPS, ""] if glue else _GAPS)))
        out.append(text)
        previous = text
    if draw(st.booleans()):
        out.append(draw(st.sampled_from([";", " ;", "; -- end\n", ";/* x */"])))
    return "".join(out)


@st.composite
def statement_families(draw: st.DrawFn) -> list[str]:
    """One generated statement, written 2-4 times with other constants, gaps and case."""
    tokens = draw(statements())
    slots = sum(token is None for token in tokens)
    texts = []
    for _ in range(draw(st.integers(2, 4))):
        values = draw(st.lists(literals, min_size=slots, max_size=slots))
        sql = _render(draw, tokens, values)
        if draw(st.integers(0, 3)) == 0:
            sql = sql.upper()
        texts.append(sql)
    return texts


@SLOW
@given(statement_families())
def test_generated_statements_with_one_shape_analyze_alike(texts: list[str]) -> None:
    check_same_key_same_analysis(texts)


# --- property 2 over arbitrary SQL-ish text

_WORDS = [
    "SELECT", "select", "FROM", "WHERE", "INSERT", "INTO", "VALUES", "UPDATE", "SET",
    "DELETE", "WITH", "AS", "AND", "OR", "NOT", "DROP", "TABLE", "UNION", "RETURNING",
    "JOIN", "ON", "LIMIT", "CASE", "WHEN", "THEN", "END", "IS", "NULL", "RECURSIVE",
    "E", "e", "U", "u", "B", "x", "N", "n", "UESCAPE", "t", "users", "pg_read_file",
    "dblink", "a1", "a$b", "_x", "é", "Ä", "tab\u00a0le", "some", "EXPLAIN", "COPY", "DO",
]  # fmt: skip
_SYMBOLS = [
    "(", ")", ",", ".", "..", ";", "=", "-", "+", "*", "/", "?", "?|", "::", "&", "$",
    "$1", "$2", "--", "/*", "*/", "'", '"', "\\", "{", "[", "]", ":", "<>", "!", "@", "|",
    '"Quoted"', '"a""b"', '"x y"', 'U&"d\\0061"', '""', "$$", "$a$", "1", "0", ".5",
]  # fmt: skip
_SEPARATORS = ["", "", " ", " ", "\n", "\t", "/**/", "/* c /* d */ */", "-- c\n", "\r\n", "\v"]

# A skeleton is a list of fixed pieces and literal slots (None); instances fill the slots.
skeleton_piece = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from(_SYMBOLS),
    st.none(),
    st.sampled_from(_SEPARATORS),
)
skeletons = st.lists(skeleton_piece, min_size=1, max_size=16)


def _fill(skeleton: list[str | None], values: list[str]) -> str:
    it = iter(values)
    return "".join(piece if piece is not None else next(it) for piece in skeleton)


@st.composite
def families(draw: st.DrawFn) -> list[str]:
    """Texts from one skeleton: the same tokens with different constants (and case)."""
    head = draw(
        st.sampled_from(
            [
                "SELECT ",
                "select",
                "WITH ",
                "UPDATE ",
                "DELETE FROM ",
                "INSERT INTO ",
                "(",
                "/* x */ SELECT",
                "VALUES (",
                "",
            ]
        )
    )
    skeleton: list[str | None] = [head, *draw(skeletons)]
    slots = sum(piece is None for piece in skeleton)
    out = []
    for _ in range(draw(st.integers(2, 4))):
        values = draw(st.lists(literals, min_size=slots, max_size=slots))
        sql = _fill(skeleton, values)
        if draw(st.booleans()):
            sql = sql.upper() if draw(st.booleans()) else sql.lower()
        out.append(sql)
    return out


@SLOW
@given(families())
def test_texts_with_one_shape_analyze_alike(texts: list[str]) -> None:
    check_same_key_same_analysis(texts)


# Raw characters too: whatever shape_key accepts, PostgreSQL's lexer reads the same way.
_RAW = "aeEuUbBxXnN019 _$'\"\\;-/*.?&(),\n\t\r\v{}é\u00a0\x00\x7f\u212a"


@FAST
@given(st.text(_RAW, max_size=40).map(lambda s: "SELECT " + s))
def test_raw_text_keys_match_the_postgres_lexer(sql: str) -> None:
    check_same_key_same_analysis([sql])


@FAST
@given(
    st.lists(
        st.sampled_from(
            _SYMBOLS + _WORDS + _SEPARATORS + ["'x'", "E'\\''", "$$;$$", "1e5", "0x1F"]
        ),
        max_size=20,
    ).map(lambda parts: "SELECT " + "".join(parts))
)
def test_token_soup_keys_match_the_postgres_lexer(sql: str) -> None:
    check_same_key_same_analysis([sql])
