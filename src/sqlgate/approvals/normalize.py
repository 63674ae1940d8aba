"""The exact text a defer-mode grant covers: comments and layout removed, everything else kept.

A grant is for *the* statement an approver read, not for its shape: literals, identifiers and
keyword spelling stay as written. Only what cannot change the meaning goes: comments, runs of
whitespace (one space where there was any) and trailing semicolons.

PostgreSQL text is tokenised by PostgreSQL's own lexer (pglast), so a `--` inside a string or
a dollar-quoted body is never mistaken for a comment. It assumes `standard_conforming_strings
= on`, the server default since 9.1 (the policy analysis makes the same assumption). Text the
lexer rejects is only stripped at both ends: it never ran anyway, and an unsure rewrite could
make two different statements look alike.
"""

from __future__ import annotations

from pglast import parser

from sqlgate.core import Dialect

_PG_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_PG_SEMICOLON = "ASCII_59"


def normalize_sql(sql: str, dialect: Dialect = Dialect.POSTGRES) -> str:
    """The comparison key of `sql` for grants (see the module docstring)."""
    if dialect is Dialect.MYSQL:
        return _normalize_mysql(sql)
    return _normalize_postgres(sql)


def _normalize_postgres(sql: str) -> str:
    try:
        tokens = [t for t in parser.scan(sql) if t.name not in _PG_COMMENTS]
    except parser.ParseError:
        return sql.strip()
    while tokens and tokens[-1].name == _PG_SEMICOLON:
        tokens.pop()
    out: list[str] = []
    previous_end = -1
    for token in tokens:
        # Token offsets are inclusive character positions; any gap was layout or a comment.
        if out and token.start > previous_end + 1:
            out.append(" ")
        out.append(sql[token.start : token.end + 1])
        previous_end = token.end
    return "".join(out)


def _normalize_mysql(sql: str) -> str:
    """A small MySQL lexer: quotes (with backslash escapes) kept verbatim; `#`, `-- ` and
    `/* */` comments dropped, but `/*!...*/` and `/*+...*/` kept because MySQL executes them."""
    out: list[str] = []
    gap = False
    i, n = 0, len(sql)

    def emit(text: str) -> None:
        nonlocal gap
        if gap and out:
            out.append(" ")
        gap = False
        out.append(text)

    while i < n:
        ch = sql[i]
        if ch.isspace():
            gap = True
            i += 1
        elif ch == "#" or (sql.startswith("--", i) and (i + 2 == n or sql[i + 2].isspace())):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            gap = True
        elif sql.startswith("/*", i) and not sql.startswith(("/*!", "/*+"), i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            gap = True
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 3)
            stop = n if end < 0 else end + 2
            emit(sql[i:stop])
            i = stop
        elif ch in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\" and ch != "`":
                    j += 2
                elif sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                        j += 2
                    else:
                        break
                else:
                    j += 1
            stop = min(j + 1, n)
            emit(sql[i:stop])
            i = stop
        else:
            j = i
            while j < n and not (
                sql[j].isspace() or sql[j] in "'\"`#;" or sql.startswith(("--", "/*"), j)
            ):
                j += 1
            j = max(j, i + 1)
            emit(sql[i:j])
            i = j
    while out and out[-1] in (";", " "):
        out.pop()
    return "".join(out)
