"""How long CPython's full garbage collection takes as the memory plugin's store grows.

The service runs in this process (the app ``erapi serve`` runs, on a loopback port, with the garbage collector
set as ``erapi serve`` sets it), filled over HTTP through the real write path by ``bench.preload`` from the
same event loop. At each checkpoint the fill pauses and the script prints how many objects the collector
tracks and how long one full collection (``gc.collect()``) takes: the pause a request meets whenever CPython
decides to run one (when the objects promoted since the last full collection exceed 25 % of those it found).

    python -m bench.gc_pause [--checkpoints 250000,500000,1000000] [--types]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import tempfile
import time
from collections import Counter

from aiohttp import web

from bench import harness, preload, workload


def full_collection() -> tuple[int, float]:
    """(objects the collector tracks, seconds of the fastest of three full collections)."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        gc.collect()
        timings.append(time.perf_counter() - started)
    return len(gc.get_objects()), min(timings)


async def run(checkpoints: list[int], show_types: bool = False) -> None:
    from erapi.app import create_app
    from erapi.auth import mint_local_token
    from erapi.cli import GC_THRESHOLDS
    from erapi.config import load_config
    from erapi.logs import configure_logging

    with tempfile.TemporaryDirectory() as home:
        secret = secrets.token_urlsafe(48)
        config = load_config(None, {"HOME": home, "ERAPI_AUTH_SECRET": secret, "ERAPI_LOG_LEVEL": "WARNING"})
        configure_logging(config.log.level)
        gc.set_threshold(*GC_THRESHOLDS)
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        port = harness.free_port()
        await web.TCPSite(runner, harness.HOST, port).start()
        try:
            token = mint_local_token(secret, "bench", "apollo_read apollo_write", 14400)
            # blocking HTTP calls, so in a thread: the service answers them on this event loop
            await asyncio.to_thread(harness.set_up_building, port, token)
            print(f"{'stored relationships':>22} {'tracked objects':>16} {'full collection':>16} {'RSS':>10}")
            stored = 0
            for checkpoint in checkpoints:
                requests = (checkpoint - stored) // workload.ITEMS_PER_REQUEST
                result = await preload.preload(port, token, requests, first_counter=stored // 100,
                                               time_limit=3600)
                if result.stopped:
                    raise harness.BenchError(f"the fill stopped: {result.stopped}")
                stored += requests * workload.ITEMS_PER_REQUEST
                tracked, seconds = full_collection()
                rss = harness.rss_bytes(os.getpid())
                print(f"{stored:>22,} {tracked:>16,} {seconds * 1000:>13,.0f} ms {rss / 2**20:>6,.0f} MiB",
                      flush=True)
                if show_types:
                    common = Counter(type(held).__name__ for held in gc.get_objects()).most_common(8)
                    print("    most tracked: " + ", ".join(f"{name} {count:,}" for name, count in common))
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gc_pause", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default="250000,500000,1000000",
                        help="stored relationships at which to measure, comma-separated, ascending")
    parser.add_argument("--types", action="store_true", help="also print the types the collector tracks most")
    arguments = parser.parse_args(argv)
    asyncio.run(run(sorted(int(value) for value in arguments.checkpoints.split(",")), arguments.types))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
