"""Connection set-up cost of sqlgate: token validation (cached JWKS) + backend login.

    python bench/bench_connect.py [--n 300]

Runs a throwaway PostgreSQL (SCRAM) and `sqlgate serve` with the dev issuer, then times
connect + `SELECT 1` + close directly and through the gateway, alternating rounds. The
gateway's extra cost per connection is the difference.
"""

from __future__ import annotations

import argparse
import json

from harness import connect_seconds, direct_dsn, gateway_dsn, postgres, sqlgate, workdir

POLICY = """
  - name: bench
    when: {groups: [bench]}
    rules:
      - {action: allow, categories: [read]}
    default: block
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="connections per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = workdir()
    with postgres(work / "pg") as pg, sqlgate(pg, work, POLICY) as gw:
        token = gw.token("bench", "bench")
        direct, through = [], []
        connect_seconds(gateway_dsn(gw, token), 20)  # warm up
        for _ in range(args.rounds):
            direct.append(connect_seconds(direct_dsn(pg), args.n))
            through.append(connect_seconds(gateway_dsn(gw, token), args.n))
    d, g = min(direct) * 1000, min(through) * 1000
    result = {"direct_ms": round(d, 3), "sqlgate_ms": round(g, 3),
              "added_ms": round(g - d, 3), "ratio": round(g / d, 2)}
    print(f"connect+SELECT 1+close: direct {d:.2f} ms, through sqlgate {g:.2f} ms, "
          f"added {g - d:.2f} ms per connection")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
