"""Time sqlgate.sql.analyze on typical statements: `python bench/bench_analysis.py`.

Prints microseconds per call (best of several rounds, so that noise from other processes
inflates nothing) and the share spent in libpg_query itself, which is the floor.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pglast import parser

from sqlgate.sql import analyze, postgres

SHORT_SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213"

JOIN_SELECT = """
SELECT o.id, o.created_at, c.name, c.email, sum(li.quantity * li.unit_price) AS total,
       count(DISTINCT p.id) AS products, max(s.shipped_at) AS last_shipment
FROM sales.orders o
JOIN sales.customers c ON c.id = o.customer_id
JOIN sales.line_items li ON li.order_id = o.id
JOIN catalog.products p ON p.id = li.product_id
LEFT JOIN logistics.shipments s ON s.order_id = o.id AND s.status IN ('sent', 'delivered')
WHERE o.created_at >= now() - interval '30 days'
  AND c.country = 'DE'
  AND o.status <> 'cancelled'
  AND o.id NOT IN (SELECT r.order_id FROM sales.refunds r WHERE r.amount > 100)
  AND EXISTS (SELECT 1 FROM sales.payments pay WHERE pay.order_id = o.id AND pay.ok)
GROUP BY o.id, o.created_at, c.name, c.email
HAVING sum(li.quantity * li.unit_price) > 250.00
ORDER BY total DESC, o.created_at
LIMIT 100 OFFSET 0
"""

DML = "UPDATE pgbench_accounts SET abalance = abalance + -4121 WHERE aid = 77120"

MULTI = (
    "BEGIN; UPDATE pgbench_accounts SET abalance = abalance + 10 WHERE aid = 1; "
    "SELECT abalance FROM pgbench_accounts WHERE aid = 1; "
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES (3, 1, 1, 10, CURRENT_TIMESTAMP); END;"
)


def per_call_us(fn: Callable[[str], object], sql: str, rounds: int = 5, n: int = 2000) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn(sql)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    cases = [
        ("short SELECT", SHORT_SELECT),
        (f"{len(JOIN_SELECT)} B SELECT with joins", JOIN_SELECT),
        ("DML (UPDATE)", DML),
        ("multi-statement (5)", MULTI),
    ]
    print(f"JSON decoder: {postgres._loads.__module__}")
    print(f"{'statement':32} {'analyze µs':>11} {'parse only µs':>14}")
    for name, sql in cases:
        total = per_call_us(analyze, sql)
        parse = per_call_us(parser.parse_sql_json, sql)
        print(f"{name:32} {total:11.1f} {parse:14.1f}")


if __name__ == "__main__":
    main()
