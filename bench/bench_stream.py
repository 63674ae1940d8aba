"""Large-result streaming: 1M rows with one masked column, through sqlgate vs direct.

    python bench/bench_stream.py [--rows 1000000]

psql (C, output to /dev/null) reads the same SELECT directly, through sqlgate with a mask on
one column, and through sqlgate with content detectors on the other text columns too.
Reports rows/s and the ratio to direct.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time

from harness import SVC_PASSWORD, postgres, sqlgate, workdir

POLICY = """
  - name: masked
    when: {groups: [bench]}
    rules:
      - {action: allow, categories: [read]}
    masks:
      - {columns: [public.big.email], strategy: redact}
    default: block
  - name: detecting
    when: {groups: [bench-detect]}
    rules:
      - {action: allow, categories: [read]}
    masks:
      - {columns: [public.big.email], strategy: redact}
    detectors: [email, credit_card, ssn, phone]
    default: block
"""

QUERY = "SELECT id, email, note FROM big"


def _psql_seconds(port: int, user: str, password: str) -> float:
    env = {**os.environ, "PGPASSWORD": password, "PGSSLMODE": "disable"}
    start = time.perf_counter()
    subprocess.run([shutil.which("psql") or "psql", "-h", "127.0.0.1", "-p", str(port), "-U",
                    user, "-d", "app", "-X", "-At", "-o", "/dev/null", "-c", QUERY],
                   env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = workdir()
    with postgres(work / "pg") as pg:
        pg.execute(
            "CREATE TABLE big AS SELECT g AS id, 'user' || g || '@example.com' AS email, "
            f"'order note number ' || g AS note FROM generate_series(1, {args.rows}) g",
            dbname="app",
        )
        pg.execute("ALTER TABLE big OWNER TO sqlgate_svc", dbname="app")
        with sqlgate(pg, work, POLICY) as gw:
            masked_token = gw.token("bench", "bench")
            detect_token = gw.token("bench", "bench-detect")
            times: dict[str, list[float]] = {"direct": [], "sqlgate_mask": [],
                                             "sqlgate_mask_detect": []}
            for _ in range(args.rounds):
                times["direct"].append(_psql_seconds(pg.port, "sqlgate_svc", SVC_PASSWORD))
                times["sqlgate_mask"].append(_psql_seconds(gw.port, "bench", masked_token))
                times["sqlgate_mask_detect"].append(
                    _psql_seconds(gw.port, "bench", detect_token))
    best = {k: min(v) for k, v in times.items()}
    result = {k: {"seconds": round(v, 3), "rows_per_s": int(args.rows / v),
                  "ratio_to_direct": round(best["direct"] / v, 3)} for k, v in best.items()}
    for name, r in result.items():
        print(f"{name:>22}: {r['rows_per_s']:>10,} rows/s  ({r['ratio_to_direct']:.2f}x direct)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
