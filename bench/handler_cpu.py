"""The write path's own CPU time, measured in one process: steadier than a load test on a busy machine.

A memory-plugin app (``create_app``, the serve command's garbage-collector thresholds, INFO logging to
/dev/null) answers ``--rounds`` rounds of ``--requests`` POSTs of the bench's workload (100 new
relationships each, bench/workload.py) from aiohttp's test client in the same process. A middleware in front of
the app's own takes the process CPU time of each request's handling (the middlewares and the handler; not the
HTTP parsing, routing nor the client, except what the client does while the handler waits for the rest of a
body). A round's figure is its CPU time over its requests; the minimum over rounds is the one least disturbed by
other processes (they can only add to it), and is what to compare between two trees, run alternately from a
directory outside both (``python -m`` puts the current directory ahead of PYTHONPATH: started inside a tree, it
measures that tree whatever PYTHONPATH names):

    cd /tmp && PYTHONPATH=TREE python -m bench.handler_cpu [--rounds 15] [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench import workload
from erapi.app import create_app
from erapi.auth import mint_local_token
from erapi.cli import GC_THRESHOLDS
from erapi.config import AuthConfig, Config
from erapi.logs import configure_logging

SECRET = "handler-cpu-" + "x" * 40
WARM_UP = 30


async def measure(rounds: int, requests: int) -> list[float]:
    """Each round's handler CPU time per request, in ms."""
    with open(os.devnull, "wb") as devnull:
        configure_logging("INFO", devnull)
        spent = [0.0]

        @web.middleware
        async def timed(request: web.Request, handler):
            started = time.process_time()
            try:
                return await handler(request)
            finally:
                spent[0] += time.process_time() - started

        app = create_app(Config(storage="memory", auth=AuthConfig(secret=SECRET)))
        app.middlewares.insert(0, timed)
        async with TestClient(TestServer(app)) as client:
            post = _poster(client)
            await post("/apollo/collections", orjson.dumps({"collectionId": workload.COLLECTION}), 201)
            for batch in workload.entity_batches():
                await post("/apollo/er/entities", orjson.dumps(batch), 207)
            template = workload.relationship_template()
            bodies = iter([workload.render(template, n, "0101") for n in range(WARM_UP + rounds * requests)])
            for _ in range(WARM_UP):
                await post("/apollo/er/relationships", next(bodies), 207)
            gc.set_threshold(*GC_THRESHOLDS)
            figures = []
            for _ in range(rounds):
                spent[0] = 0.0
                for _ in range(requests):
                    await post("/apollo/er/relationships", next(bodies), 207)
                figures.append(spent[0] / requests * 1000)
            return figures


def _poster(client: TestClient):
    headers = {"Authorization": f"Bearer {mint_local_token(SECRET, 'bench', ['apollo_read', 'apollo_write'], 3600)}",
               "ercollectionid": workload.COLLECTION, "Content-Type": "application/json"}

    async def post(path: str, body: bytes, status: int) -> None:
        response = await client.post(path, data=body, headers=headers)
        answer = await response.read()
        if response.status != status or (status == 207 and b'"failure":[]' not in answer):
            raise SystemExit(f"{path} answered {response.status}: {answer[:300]!r}")

    return post


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=40, help="100-relationship requests per round")
    arguments = parser.parse_args()
    figures = asyncio.run(measure(arguments.rounds, arguments.requests))
    print("handler CPU ms per request, each round:", " ".join(f"{figure:.3f}" for figure in figures))
    print(f"min {min(figures):.3f} ms, median {sorted(figures)[len(figures) // 2]:.3f} ms")


if __name__ == "__main__":
    main()
