"""`python -m bench`: the whole benchmark (see bench/perf.py and docs/performance.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.perf import main

if __name__ == "__main__":
    sys.exit(main())
