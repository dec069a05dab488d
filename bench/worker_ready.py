"""How long a fresh `c360 worker` takes from process start to /ready answering 200.

Usage: python bench/worker_ready.py [--runs N]   (needs the broker: `make kafka-up`)
Prints each run and the median; the target is under 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from harness import drop_fresh, fresh_settings

from tests.support.worker import WorkerProcess


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            settings = fresh_settings(Path(tmp))
            worker = WorkerProcess(settings, Path(tmp) / "worker.log").start()
            try:
                seconds = worker.wait_ready(timeout=60)
            finally:
                worker.stop()
                drop_fresh()
        times.append(seconds)
        print(f"run {run + 1}: ready after {seconds:.2f} s (fresh topics and state)")
    print(f"median: {statistics.median(times):.2f} s  (target: < 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
