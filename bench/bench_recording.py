"""Throughput with session recording and audit on vs off (pgbench -S through sqlgate).

    python bench/bench_recording.py [--duration 8] [--rounds 2]

Starts a throwaway PostgreSQL and two sqlgate processes (one worker each) that differ only
in `recording.enabled`, runs pgbench -S with 8 clients in simple and prepared mode against
each, alternating, and prints TPS and the ratio recording-on / recording-off.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from statistics import median

from harness import SVC_PASSWORD, postgres, sqlgate, workdir

POLICY = """
  - name: bench
    when: {groups: [bench]}
    rules:
      - {action: block, operations: [drop_table, truncate]}
      - {action: allow, categories: [read, write, tcl, session]}
    default: block
"""


def _tps(port: int, password: str, mode: str, duration: int) -> float:
    env = {**os.environ, "PGPASSWORD": password, "PGSSLMODE": "disable"}
    out = subprocess.run(
        ["pgbench", "-S", "-M", mode, "-c", "8", "-j", "2", "-T", str(duration), "-h",
         "127.0.0.1", "-p", str(port), "-U", "bench", "app"],
        env=env, capture_output=True, text=True,
    )
    found = re.search(r"tps = ([\d.]+)", out.stdout)
    assert found, out.stdout + out.stderr
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = workdir()
    with postgres(work / "pg", max_connections="100") as pg:
        env = {**os.environ, "PGPASSWORD": SVC_PASSWORD}
        subprocess.run(["pgbench", "-i", "-s", "4", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
                        "-U", "sqlgate_svc", "app"], env=env, check=True, capture_output=True)
        on_dir = Path(tempfile.mkdtemp(dir=work))
        off_dir = Path(tempfile.mkdtemp(dir=work))
        with sqlgate(pg, on_dir, POLICY) as on, \
                sqlgate(pg, off_dir, POLICY, extra="recording: {enabled: false}") as off:
            tokens = {"on": on.token("bench", "bench"), "off": off.token("bench", "bench")}
            results: dict[str, dict[str, list[float]]] = {"simple": {"on": [], "off": []},
                                                         "prepared": {"on": [], "off": []}}
            for _ in range(args.rounds):
                for mode in results:
                    for name, gw in (("off", off), ("on", on)):
                        results[mode][name].append(
                            _tps(gw.port, tokens[name], mode, args.duration))
    summary = {mode: {"recording_off_tps": round(median(r["off"])),
                      "recording_on_tps": round(median(r["on"])),
                      "ratio_on_off": round(median(r["on"]) / median(r["off"]), 3)}
               for mode, r in results.items()}
    for mode, row in summary.items():
        print(f"{mode:>9}: off {row['recording_off_tps']:>7} tps, on "
              f"{row['recording_on_tps']:>7} tps, on/off {row['ratio_on_off']:.2f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
