"""How fast a worker takes in reference data: a labels dataset and a prices feed.

Usage (a broker must be running: ``ops/with-kafka.sh .venv/bin/python
bench/reference.py [--labels N] [--prices N]``). Produces ``N`` wallet labels (distinct
wallets, one record each, as a labels dataset is loaded) and ``N`` prices (distinct
tokens) to a fresh deployment's reference topics, starts one worker and prints, per
topic, the records per second from the worker's readiness until every stage has
consumed everything they caused (the labels to the link stage and on to the profile
stage; the prices to every profile partition).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from harness import batched, dispose, ensure, fresh_settings, produce, wait_quiet

from tests.support.worker import WorkerProcess


def labels(n: int) -> list[tuple[str, str, dict]]:
    out = []
    for i in range(n):
        address = f"0x{0x1AB0000000 + i:040x}"
        value = {
            "chain_id": 1,
            "address": address,
            "labels": [{"label": f"Fund {i}", "category": "fund", "source": "bench"}],
        }
        out.append(("labels", f"1:{address}", value))
    return out


def prices(n: int) -> list[tuple[str, str, dict]]:
    out = []
    for i in range(n):
        token = f"0x{0x70CE000000 + i:040x}"
        value = {
            "chain_id": 1,
            "token": token,
            "symbol": f"T{i}",
            "decimals": 18,
            "price_usd": 1.0 + i / 1000,
            "timestamp": "2026-11-30T00:00:00Z",
        }
        out.append(("prices", f"1:{token}", value))
    return out


async def measure(events: list[tuple[str, str, dict]]) -> float:
    """Records/s of one reference topic into a fresh worker."""
    with tempfile.TemporaryDirectory(prefix="c360-bench-ref-") as tmp_name:
        tmp = Path(tmp_name)
        settings = fresh_settings(tmp)
        await ensure(settings)
        await produce(settings, batched(settings, events))
        worker = WorkerProcess(settings, tmp / "worker.log").start()
        try:
            worker.wait_ready(120)
            started = time.time()
            quiet = await wait_quiet(settings, timeout=900)
            return len(events) / max(1e-3, quiet - started)
        finally:
            worker.stop()
            await dispose(settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=5000)
    parser.add_argument("--prices", type=int, default=1000)
    args = parser.parse_args()
    for kind, events in (("labels", labels(args.labels)), ("prices", prices(args.prices))):
        rate = asyncio.run(measure(events))
        print(f"{kind}: {len(events):,} records, {rate:,.0f} records/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
