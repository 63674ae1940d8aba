"""Time sqlgate.sql.shape.shape_key: `python bench/bench_shape.py`.

Prints microseconds per call (best of many rounds) for the shipped implementation and for two
alternatives it was measured against:

- one alternation of *every* token kind (words and whitespace included) run through `re.sub`
  with a Python callback: one callback per token, which is what makes it several times slower;
- PostgreSQL's own lexer (pglast.parser.scan, the fuzz tests' oracle) with the tokens rendered
  in Python: exact by construction, but a Python object per token.

The shipped code lower-cases the text once, then cuts out numbers and '...' strings with one
re.split (no Python per token); texts with anything else go to a scan that stops only at the
characters that can start a constant, comment, quoted identifier, `;`, `?` or a character to
refuse, and copies the text in between by slicing. The two 1 KB cases show both paths.

The alternative below is for timing only: it lexes the common cases the same way (the script
checks that on its inputs) but lacks the shipped module's corner cases.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from pglast import parser

from sqlgate.sql.shape import shape_key

SHORT = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"

# About 1 KB, with 30 constants: first as an ORM or an agent might write it (quoted
# identifiers, comments, an E'' string: the general scan), then plainer (the simple scan).
KILOBYTE = """
SELECT o.id, o.created_at, c.name, c.email, sum(li.quantity * li.unit_price) AS total,
       count(DISTINCT p.id) AS products, max(s.shipped_at) AS last_shipment
FROM sales.orders o
JOIN sales.customers c ON c.id = o.customer_id
JOIN sales.line_items li ON li.order_id = o.id
JOIN catalog.products p ON p.id = li.product_id
LEFT JOIN logistics.shipments s ON s.order_id = o.id AND s.status IN ('sent', 'delivered')
WHERE o.created_at >= now() - interval '30 days'
  AND c.country = 'DE' -- only Germany
  AND o.status <> 'cancelled'
  AND o.id NOT IN (SELECT r.order_id FROM sales.refunds r WHERE r.amount > 100)
  AND EXISTS (SELECT 1 FROM sales.payments pay WHERE pay.order_id = o.id AND pay.ok)
  AND o.note NOT LIKE E'%\\\\%' AND o.region = "Region"."Name"
  AND o.channel IN ('web', 'app', 'partner', 'phone') AND o.discount BETWEEN 0.05 AND 0.5
  AND c.segment = ANY (ARRAY['retail', 'smb']) AND o.total_cents % 7 = 3
GROUP BY o.id, o.created_at, c.name, c.email
HAVING sum(li.quantity * li.unit_price) > 250.00 /* big orders */
ORDER BY total DESC, o.created_at
LIMIT 100 OFFSET 0;
"""
PLAIN_KILOBYTE = (
    KILOBYTE.replace(" -- only Germany", "")
    .replace(" /* big orders */", "")
    .replace("E'%\\\\%'", "'%x%'")
    .replace('"Region"."Name"', "region.name")
)

DOLLAR = (
    "INSERT INTO docs (id, body, meta) VALUES (42, $body$It's a 'quoted' ; -- text$body$, "
    '$$ {"a": 1} $$) RETURNING id'
)

# --- the alternative: every token through a re.sub callback ---------------------------------

_IDC = "0-9A-Za-z_$\\x80-\\U0010ffff"
_START = rf"(?<![{_IDC}])"  # not inside an identifier
_TAG = r"[A-Za-z_\x80-\U0010ffff][0-9A-Za-z_\x80-\U0010ffff]*"
_TOKEN = re.compile(
    r"(?P<ws>[ \t\n\r\f]+|--[^\n\r]*|/\*(?:[^*/]|\*(?!/)|/(?!\*))*\*/)"
    rf"|(?P<str>{_START}[eE]'(?:[^'\\]|\\[^0-7xuU]|'')*'|{_START}[bBxX]'[^']*'|'(?:[^']|'')*')"
    r"|(?P<ident>\"(?:[^\"]|\"\")*\")"
    rf"|(?P<dollar>{_START}(?P<tag>\$(?:{_TAG})?\$)[\s\S]*?(?P=tag))"
    rf"|(?P<param>{_START}\$[0-9]+)"
    rf"|(?P<num>{_START}(?:0[xX](?:_?[0-9A-Fa-f])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+"
    r"|(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)"
    r"(?:[eE][-+]?[0-9](?:_?[0-9])*)?))"
    rf"|(?P<word>[A-Za-z_\x80-\U0010ffff][{_IDC}]*)"
    r"|(?P<q>\?)"
    r"|(?P<other>[^ \t\n\r\f])"
)


class _Refuse(Exception):
    pass


def _token(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind == "ws":
        return " "
    if kind == "str" or kind == "dollar" or kind == "num":
        return "?"
    if kind == "word":
        return m.group().lower()
    if kind == "q":
        return "\\?"
    text = m.group()
    if kind == "other" and text in "'\"\\{}$;":
        if text == ";" and m.end() == len(m.string):
            return ""
        raise _Refuse
    return text


def sub_callback_shape_key(sql: str) -> str | None:
    try:
        key = " ".join(_TOKEN.sub(_token, sql.rstrip()).split())
    except _Refuse:
        return None
    return key if key.startswith(("select", "insert", "update", "delete", "with")) else None


# --- and PostgreSQL's own lexer (pglast.parser.scan), rendered the same way -----------------

_CONSTANTS = frozenset({"ICONST", "FCONST", "SCONST", "BCONST", "XCONST", "USCONST"})


def scanner_shape_key(sql: str) -> str | None:
    try:
        tokens = [t for t in parser.scan(sql) if t.name not in ("SQL_COMMENT", "C_COMMENT")]
    except parser.ParseError:
        return None
    if tokens and tokens[-1].name == "ASCII_59":
        tokens.pop()
    out: list[str] = []
    previous_end = None
    for token in tokens:
        if previous_end is not None and token.start > previous_end + 1:
            out.append(" ")
        previous_end = token.end
        text = sql[token.start : token.end + 1]
        if token.name in _CONSTANTS:
            out.append("?")
        elif text.startswith('"'):
            out.append(text)
        else:
            out.append(text.lower().replace("?", "\\?"))
    return "".join(out)


# --- timing ---------------------------------------------------------------------------------


def per_call_us(fn: Callable[[str], object], sql: str, rounds: int = 60, n: int = 500) -> float:
    """Best of many short rounds of CPU time: on a shared machine, the quiet rounds count."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn(sql)
        best = min(best, (time.process_time() - start) / n)
    return best * 1e6


def main() -> None:
    cases = [
        (f"pgbench -S ({len(SHORT)} chars)", SHORT),
        (f"1 KB SELECT, general ({len(KILOBYTE)} chars)", KILOBYTE),
        (f"1 KB SELECT, simple ({len(PLAIN_KILOBYTE)} chars)", PLAIN_KILOBYTE),
        (f"INSERT with dollar quotes ({len(DOLLAR)})", DOLLAR),
    ]
    for _, sql in cases:
        shipped = shape_key(sql)
        assert shipped is not None
        assert shipped == sub_callback_shape_key(sql) == scanner_shape_key(sql), sql
    print(f"{'statement':38} {'shape_key':>10} {'re.sub callback':>16} {'pglast.scan':>12}  (µs)")
    for name, sql in cases:
        fast = per_call_us(shape_key, sql)
        sub = per_call_us(sub_callback_shape_key, sql)
        scan = per_call_us(scanner_shape_key, sql, rounds=20, n=100)
        print(f"{name:38} {fast:10.2f} {sub:16.2f} {scan:12.2f}")
    print(f"\nkey: {shape_key(SHORT)!r}")


if __name__ == "__main__":
    main()
