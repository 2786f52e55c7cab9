"""Fill a running service with stored relationships over HTTP, through the real write path.

Why over HTTP and not a bench-only entry point that calls ``erapi.writes`` in-process:
the domain layer and the memory plugin's copies are nearly all of a request's cost (see
docs/PERFORMANCE.md), so an in-process fill would save only the HTTP share (under 10 %) while measuring a
service started differently from ``erapi serve``. Over HTTP the store holds exactly what clients would
have made (current view, history, status records), and the fill doubles as a throughput-versus-size curve.

Requests carry new ids (phase byte ``fe``) and go out on ``concurrency`` connections; each answer must be a
207 with every item upserted, else the fill stops with the reason.

    python -m bench.preload --port 8080 --token TOKEN --relationships 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import aiohttp

from bench import workload
from bench.harness import HOST, BenchError


@dataclass
class PreloadResult:
    requests: int
    elapsed_s: float
    stopped: str = ""  # why the fill ended before ``requests`` (its time limit), else empty
    # (relationships sent by this fill when the segment ended, relationships/s within the segment)
    segments: list[tuple[int, float]] = field(default_factory=list)

    @property
    def relationships_per_s(self) -> float:
        return self.requests * workload.ITEMS_PER_REQUEST / self.elapsed_s if self.elapsed_s else 0.0


async def preload(port: int, token: str, requests: int, *, collection: str = workload.COLLECTION,
                  concurrency: int = 16, segment_requests: int = 1000, time_limit: float = 900.0,
                  first_counter: int = 0, guard: Callable[[], str] | None = None) -> PreloadResult:
    """Send ``requests`` batches of new relationships; every item must be upserted.

    At ``time_limit`` seconds the fill stops where it is and says so in ``stopped``. ``guard`` is asked every
    50 requests; a non-empty answer stops the fill with that reason, as an error.
    """
    template = workload.relationship_template(collection=collection)
    tag = workload.tag(workload.PHASE_PRELOAD)
    expected = f"Upserted:  {workload.ITEMS_PER_REQUEST}.".encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "ercollectionid": collection, "async": "false"}
    url = f"http://{HOST}:{port}/apollo/er/relationships"
    next_counter = first_counter
    done = 0
    started = time.monotonic()
    segment_started = started
    result = PreloadResult(requests=0, elapsed_s=0.0)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_counter, done, segment_started
        while next_counter < first_counter + requests:
            counter = next_counter
            next_counter += 1
            body = workload.render(template, counter, tag)
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
            if response.status != 207 or expected not in answer:
                raise BenchError(f"preload request {counter} answered {response.status}: {answer[:300]!r}")
            done += 1
            if guard and done % 50 == 0:
                reason = guard()
                if reason:
                    raise BenchError(f"preload stopped after {done} requests: {reason}")
            if done % segment_requests == 0:
                now = time.monotonic()
                rate = segment_requests * workload.ITEMS_PER_REQUEST / (now - segment_started)
                result.segments.append((done * workload.ITEMS_PER_REQUEST, rate))
                segment_started = now

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.ensure_future(worker(session)) for _ in range(concurrency)]
        try:
            finished, _ = await asyncio.wait(tasks, timeout=time_limit, return_when=asyncio.FIRST_EXCEPTION)
            for task in finished:
                task.result()
            if len(finished) < len(tasks):
                result.stopped = f"time limit of {time_limit:.0f} s reached after {done:,} of {requests:,} requests"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    result.requests = done
    result.elapsed_s = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.preload", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port of a service on 127.0.0.1")
    parser.add_argument("--token", required=True, help="bearer token with apollo_write")
    parser.add_argument("--relationships", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--collection", default=workload.COLLECTION,
                        help="a registered collection holding the AHUs of bench.workload")
    arguments = parser.parse_args(argv)
    requests = -(-arguments.relationships // workload.ITEMS_PER_REQUEST)
    result = asyncio.run(preload(arguments.port, arguments.token, requests, collection=arguments.collection,
                                 concurrency=arguments.concurrency))
    print(f"stored {result.requests * workload.ITEMS_PER_REQUEST:,} relationships in {result.elapsed_s:.1f} s "
          f"({result.relationships_per_s:,.0f} relationships/s){'; ' + result.stopped if result.stopped else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
