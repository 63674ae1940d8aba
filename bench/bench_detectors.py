"""Time the content detectors per cell: `python bench/bench_detectors.py`.

Prints nanoseconds per `DetectorSet.mask_bytes` call (what the row path calls) and per
`mask` call, with every detector on, best of several rounds so that noise from other
processes inflates nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from sqlgate.masking.detectors import DETECTOR_NAMES, DetectorSet

SHORT = "Widget, blue, 12 pcs"
EMAIL = "alice.archer@example.com"
PARAGRAPH = (
    "Customer called on Tuesday about the delayed shipment of order 48213. She asked us to "
    "ring back on +44 20 7946 0958 after lunch; the courier says the parcel left the depot "
    "late and should arrive within two days."
)
_WORDS = (
    "The quarterly review covers revenue, churn and the roadmap for the storage team; "
    "in 2023 we shipped 14 releases, closed 312 tickets and cut p95 latency by 18.5 percent. "
    "Next quarter focuses on replication, backups and a cleaner onboarding flow for new "
    "accounts, with three milestones agreed by the steering group on 2024-01-05. "
)
NO_PII_2K = (_WORDS * (2048 // len(_WORDS) + 1))[:2048]

CASES = [
    ("short value, no PII", SHORT),
    ("matching email", EMAIL),
    (f"{len(PARAGRAPH)}-char paragraph, one phone", PARAGRAPH),
    ("2 KB text, no PII", NO_PII_2K),
]


def per_call_ns(fn: Callable[[], object], rounds: int, n: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    detectors = DetectorSet(DETECTOR_NAMES)
    print(f"detectors: {', '.join(sorted(DETECTOR_NAMES))}")
    print(f"{'case':36} {'mask_bytes ns':>14} {'mask ns':>10}  result")
    for label, text in CASES:
        raw = text.encode()
        # Long values get fewer calls so that every case takes about as long.
        n = max(200, args.calls * 32 // max(32, len(text)))
        as_bytes = per_call_ns(partial(detectors.mask_bytes, raw), args.rounds, n)
        as_text = per_call_ns(partial(detectors.mask, text), args.rounds, n)
        result = detectors.mask(text)
        shown = "unchanged" if result is None else repr(result[:60])
        print(f"{label:36} {as_bytes:14.0f} {as_text:10.0f}  {shown}")


if __name__ == "__main__":
    main()
