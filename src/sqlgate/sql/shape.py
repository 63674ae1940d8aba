"""Shape keys for the decision cache: a statement's text with every constant replaced by `?`.

pgbench -S in simple-query mode sends `SELECT abalance FROM pgbench_accounts WHERE aid = 48213;`
with a new number each time, so a cache keyed by the exact text always misses. `shape_key`
maps all of those to one key, `select abalance from pgbench_accounts where aid = ?`, so the
parse and the policy decision run once per shape.

The one safety property: two texts with the same key differ only in their constants (value
and kind), comments, whitespace and the case of unquoted words, so an analysis (category,
operations, tables, functions, columns) computed from one holds for the other. Hence the rules:

- Lexing is PostgreSQL's, exactly (scan.l of PostgreSQL 18, which pglast uses): '...' strings
  with '' escapes, E'...' with backslash escapes, U&'...', B'...' and X'...', dollar quotes
  ($tag$...$tag$; $1 is a parameter), the continuation of a string literal after whitespace
  holding a newline ('a'<newline>'b' is one literal), numbers (decimal, exponents, 0x/0o/0b,
  underscores), "quoted identifiers" with "" escapes, -- comments and nested /* */ comments.
  Wherever this module could be wrong about where a token ends it returns None instead:
  unterminated strings, comments or dollar quotes; a number, parameter or dollar quote
  followed directly by an identifier character (trailing junk, which PostgreSQL versions
  treat differently); `..` before a number; characters PostgreSQL does not accept outside
  quotes (`\\`, `{`, `}`, control characters including \\v); E'' escapes that could make the
  parse fail (\\0-7, \\x, \\u, \\U); invalid U&'' escapes, U&'' continued over a newline, and
  any UESCAPE clause (its string is the escape character of the preceding string or
  identifier: not a constant).
- Constants become `?`, in every form, including the whole of a continued literal. Quoted
  identifiers stay verbatim (`"Users"` is not `users`); unquoted words are lower-cased in
  ASCII only, as PostgreSQL folds them. Parameters ($1) and operators stay verbatim; an
  operator's own `?` (jsonb `?`, `?|`) is written `\\?` so that no operator can be mistaken for
  a placeholder. Comments count as whitespace; whitespace runs become one space and the
  ends are trimmed ('a'<newline>'b' is one constant, so one `?`; 'a' 'b' is two). A final
  `;` is dropped.
- Scope: a key only for a single statement (no `;` except a final one) whose first keyword,
  after comments, whitespace and opening parentheses, is SELECT, INSERT, UPDATE, DELETE,
  WITH, VALUES, TABLE or MERGE. Every other kind of statement can depend on a constant's value
  (SET search_path/role, EXPLAIN (ANALYZE 0), COPY ... TO 'file', ...) and gets None; so does a
  text with a NUL, or over 64 KiB of UTF-8.

Assumption: `standard_conforming_strings` is on (PostgreSQL's default since 9.1), so a
backslash in '...' is an ordinary character. With it off, 'a\\'' OR 1=1 --' lexes differently:
the caller must stop using shape keys on a session whose server reports
standard_conforming_strings=off (ParameterStatus).

Two texts with one key either analyze alike or one of them does not parse at all (a constant's
type can matter to the grammar: `varchar(10)` vs `varchar(99999999999)`). A decision taken for
a text that did not parse must therefore never be cached under its shape.

Speed: most statements hold nothing but words, operators, numbers and '...' strings. For them
one `re.split` in C cuts the constants out, with no Python work per token; anything else
(quoted identifiers, comments, other string forms, parameters, `?`, a `;` before the end,
junk) sends the text to a general scan that stops at each special token. Both are built from
the same regular-expression pieces; tests/fuzz/test_shape_differential.py checks both against
PostgreSQL's own lexer.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SHAPE_BYTES", "shape_key"]

MAX_SHAPE_BYTES = 64 * 1024

# An identifier character after the first: ASCII letters, digits, _ and $, and any non-ASCII
# character (PostgreSQL lexes bytes; every byte >= 0x80 is an identifier byte).
_IDC = "0-9A-Za-z_$\\x80-\\U0010ffff"
# Characters that PostgreSQL's lexer rejects outside quotes and comments. \v is whitespace to
# PostgreSQL 16+ but not to older servers, so it is refused rather than guessed.
_BAD = "\\\\{}\\x00-\\x08\\x0b\\x0e-\\x1f\\x7f"
_SPACE = " \t\n\r\f"  # PostgreSQL's whitespace (less \v)

# {whitespace_with_newline}{quote}: what lets a quoted string continue on a later line.
_CONT = r"(?:[ \t\f]|--[^\n\r]*+)*+[\n\r](?:[ \t\n\r\f]++|--[^\n\r]*+[\n\r])*+'"
_Q = r"(?:[^']++|'')*+'"  # the rest of a '...' or U&'...' string after its opening quote
_STRING = rf"{_Q}(?:{_CONT}{_Q})*+"  # ... with its continuations
_EQ = r"(?:[^'\\]++|\\[^0-7xuU]|'')*+'"  # ... of an E'...' string (risky escapes excluded)
_BQ = r"[^']*+'"  # ... of a B'...' or X'...' string ('' ends it: no escapes there)
_DIGITS = r"(?:_?[0-9])*+"  # the rest of a decimal integer after its first digit
_EXP = rf"(?:[eE][-+]?[0-9]{_DIGITS})?"
# A number after its first digit (which the scan has consumed) at a token start, complete:
# followed by neither an identifier character nor a dot.
_NUMBER = (
    rf"(?<![{_IDC}][0-9])"
    rf"(?>(?<=0)(?:[xX](?:_?[0-9A-Fa-f])++|[oO](?:_?[0-7])++|[bB](?:_?[01])++)"
    rf"|{_DIGITS}(?:\.(?:[0-9]{_DIGITS})?)?{_EXP})(?![{_IDC}.])"
)
_DOLQ_TAG = r"(?:[A-Za-z_\x80-\U0010ffff][0-9A-Za-z_\x80-\U0010ffff]*+)?\$"

# Both scans start with one character class, which lets the regex engine skip plain text
# without trying any branch (`.` is not in it: .5 is found from its digit); each branch then
# looks behind at the consumed character and what precedes it, to tell E'x' from somE'x',
# 1 from t1 and .5 from ..5. Every group is empty: it only marks which branch matched.

# The simple scan: numbers and '...' strings at a token start are the constants; anything
# else worth a look is marked, and sends the text to the general scan.
_SIMPLE = re.compile(
    rf"[-/'\"$0-9;?{_BAD}](?:"
    rf"(?<=[0-9])(?:(?<=\.[0-9])()|{_NUMBER}|(?<![{_IDC}][0-9])())"
    rf"|(?<=')(?:(?<=[eEbBxX&]')()|{_STRING}|())"
    rf"|(?<=-)-()|(?<=/)\*()|(?<=[\"$;?{_BAD}])()"
    r")"
)
_SIMPLE_GROUPS = _SIMPLE.groups

# The general scan: every token that needs attention; the text between two of them (words,
# operators, punctuation, whitespace) is copied, lower-cased.
_SPECIAL = re.compile(
    rf"[-/'\"$0-9;?{_BAD}](?:"
    rf"(?<=[0-9])(?:(?<=\.[0-9])(?:(?<!\.\.[0-9]){_DIGITS}{_EXP}(?![{_IDC}.])(?P<dotnum>)"
    rf"|(?P<bad1>))|{_NUMBER}(?P<num>)|(?<![{_IDC}][0-9])(?P<bad2>))"
    rf"|(?<=')(?:(?<=[uU]&')(?<![{_IDC}][uU]&')(?:{_Q}(?!{_CONT})(?P<ustr>)|(?P<bad3>))"
    rf"|(?<=[eE]')(?<![{_IDC}][eE]')(?:{_EQ}(?:{_CONT}{_EQ})*+(?P<xstr>)|(?P<bad4>))"
    rf"|(?<=[bBxX]')(?<![{_IDC}][bBxX]')(?:{_BQ}(?:{_CONT}{_BQ})*+(?P<xstr2>)|(?P<bad5>))"
    rf"|{_STRING}(?P<str>)|(?P<bad6>))"
    rf"|(?<=;)(?P<semi>)"
    rf"|(?<=\")(?:(?:[^\"]++|\"\")*+\"(?P<ident>)|(?P<bad7>))"
    rf"|(?<=-)-[^\n\r]*+(?P<line>)"
    rf"|(?<=/)\*(?:(?:[^*/]++|\*(?!/)|/(?!\*))*+\*/(?P<block>)|(?P<nested>))"
    rf"|(?<=\$)(?<![{_IDC}]\$)(?:[0-9]++(?![{_IDC}])(?P<param>)|{_DOLQ_TAG}(?P<dollar>)"
    rf"|(?P<bad8>))"
    rf"|(?<=\?)(?P<qmark>)"
    rf"|(?<=[{_BAD}])(?P<bad9>)"
    r")"
)

# What the general scan found: a constant with 0, 1 (E'' B'' X'' .5) or 2 (U&'') prefix
# characters in the copied text before the match, or something else.
_CONST, _CONST1, _CONST2, _PARAM, _IDENT, _COMMENT = range(6)
_NESTED, _DOLLAR, _QMARK, _SEMI, _BADK = range(6, 11)
_KIND_OF_NAME = {
    "num": _CONST,
    "str": _CONST,
    "dotnum": _CONST1,
    "xstr": _CONST1,
    "xstr2": _CONST1,
    "ustr": _CONST2,
    "param": _PARAM,
    "ident": _IDENT,
    "line": _COMMENT,
    "block": _COMMENT,
    "nested": _NESTED,
    "dollar": _DOLLAR,
    "qmark": _QMARK,
    "semi": _SEMI,
}
# m.lastindex -> kind
_KINDS: tuple[int, ...] = tuple(
    [_BADK]
    + [
        _KIND_OF_NAME.get(name, _BADK)
        for name, _ in sorted(_SPECIAL.groupindex.items(), key=lambda item: item[1])
    ]
)
assert len(_KINDS) == _SPECIAL.groups + 1

_COMMENT_EDGE = re.compile(r"/\*|\*/")
_TRIVIA = re.compile(r"(?:[ \t\n\r\f]++|--[^\n\r]*+)*+")
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
_UNICODE_ESCAPE = re.compile(r"\\(?:(\\)|([0-9A-Fa-f]{4})|\+([0-9A-Fa-f]{6})|)")
_FIRST_KEYWORD = re.compile(
    r"[( ]*(?:select|insert|update|delete|with|values|table|merge)(?![0-9a-z_$\x80-\U0010ffff])"
)
_ASCII_IDC = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$")


def shape_key(sql: str) -> str | None:
    """The statement's shape: its text with every constant replaced by `?`, or None.

    None means "no shape cache for this text": not a single SELECT/INSERT/UPDATE/DELETE/WITH/
    VALUES/TABLE/MERGE statement, or a text this lexer is not sure about. See the module
    docstring for the exact rules and the standard_conforming_strings assumption.
    """
    if len(sql) > MAX_SHAPE_BYTES or "\x00" in sql:
        return None
    if sql.isascii():
        low = sql.lower()
    else:
        try:
            raw = sql.encode()
        except UnicodeEncodeError:  # lone surrogates: not text a client could have sent
            return None
        if len(raw) > MAX_SHAPE_BYTES:
            return None
        low = raw.lower().decode()  # bytes.lower() folds ASCII only, as PostgreSQL does
    if "uescape" in low:
        return None
    key = _simple_key(low)
    if key is None:
        key = _general_key(sql, low)
    if key is None or _FIRST_KEYWORD.match(key) is None:
        return None
    return key


def _simple_key(low: str) -> str | None:
    """The key of a text of words, operators, numbers and '...' strings; None for the rest."""
    body = low.rstrip(_SPACE)
    if body[-1:] == ";":
        body = body[:-1]
    if '"' in body:
        return None  # quoted identifiers are common and need the general scan: skip this one
    parts = _SIMPLE.split(body)
    # re.split puts the groups of each match between the texts around it: all None, unless
    # the match was one of the marked tokens.
    if parts.count(None) != len(parts) // (_SIMPLE_GROUPS + 1) * _SIMPLE_GROUPS:
        return None
    return _collapse("?".join(parts[:: _SIMPLE_GROUPS + 1]))


def _general_key(sql: str, low: str) -> str | None:
    parts: list[str] = []
    append = parts.append
    quoted: list[str] = []  # the quoted identifiers, in order
    search = _SPECIAL.search
    kinds = _KINDS
    copied = 0  # low[copied:] has not been copied to parts yet
    at = 0  # where the next search starts
    size = len(sql)
    while (m := search(sql, at)) is not None:
        kind = kinds[m.lastindex or 0]
        start, at = m.span()
        if kind == _CONST:
            append(low[copied:start])
            append("?")
        elif kind == _CONST1:
            if start - 1 < copied:
                return None
            append(low[copied : start - 1])
            append("?")
        elif kind == _CONST2:
            if start - 2 < copied or not _valid_unicode_escapes(sql[start + 1 : at - 1]):
                return None
            append(low[copied : start - 2])
            append("?")
        elif kind == _PARAM:
            continue  # copied with the text around it
        elif kind == _IDENT:
            if at - start == 2:
                return None  # "": PostgreSQL refuses a zero-length identifier
            append(low[copied:start])
            append("\x00")  # a stand-in (NUL occurs nowhere else) while whitespace collapses
            quoted.append(sql[start:at])
        elif kind == _COMMENT:
            append(low[copied:start])
            append(" ")
        elif kind == _NESTED:
            end = _comment_end(sql, at)
            if end < 0:
                return None
            append(low[copied:start])
            append(" ")
            at = end
        elif kind == _DOLLAR:
            close = sql.find(sql[start:at], at)
            if close < 0:
                return None
            end = close + at - start
            if end < size and (sql[end] in _ASCII_IDC or sql[end] >= "\x80"):
                return None  # $$x$$1: where PostgreSQL's next token starts is not ours to say
            append(low[copied:start])
            append("?")
            at = end
        elif kind == _QMARK:
            append(low[copied:start])
            append("\\?")
        elif kind == _SEMI:
            if not _only_trivia(sql, at):
                return None  # more than one statement
            append(low[copied:start])
            copied = at = size
            break
        else:
            return None
        copied = at
    append(low[copied:])
    key = _collapse("".join(parts))
    if quoted:
        pieces = key.split("\x00")
        key = pieces[0] + "".join(
            [name + piece for name, piece in zip(quoted, pieces[1:], strict=True)]
        )
    return key


def _collapse(text: str) -> str:
    """Each run of whitespace as one space, none at the ends.

    Plain text holds no ASCII whitespace but PostgreSQL's (the rest was refused), so for ASCII
    str.split() splits exactly where PostgreSQL sees whitespace; beyond ASCII it would also
    split at U+00A0 and the like, which are identifier characters to PostgreSQL.
    """
    if text.isascii():
        return " ".join(text.split())
    return _WHITESPACE.sub(" ", text).strip(" ")


def _comment_end(sql: str, at: int) -> int:
    """Where the /* comment whose body starts at `at` ends (comments nest); -1 if it does not."""
    depth = 1
    for edge in _COMMENT_EDGE.finditer(sql, at):
        if edge.group() == "/*":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return edge.end()
    return -1


def _only_trivia(sql: str, at: int) -> bool:
    """Whether sql[at:] holds nothing but whitespace and complete comments."""
    size = len(sql)
    while True:
        match = _TRIVIA.match(sql, at)
        at = match.end() if match else at
        if at == size:
            return True
        if not sql.startswith("/*", at):
            return False
        at = _comment_end(sql, at + 2)
        if at < 0:
            return False


def _valid_unicode_escapes(body: str) -> bool:
    """Whether PostgreSQL accepts the escapes of U&'body' (escape character \\)."""
    if "\\" not in body:
        return True
    for escape in _UNICODE_ESCAPE.finditer(body):
        if escape.group(1):
            continue
        digits = escape.group(2) or escape.group(3)
        if digits is None:
            return False
        code = int(digits, 16)
        # Surrogates are valid in pairs; refusing them all keeps this check simple.
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return False
    return True
