"""Graph reads on a real Brick model: ms per request and storage calls per request, memory and MongoDB.

    python -m bench.graph [--requests 20] [--explosion 12000] [--mongodb-uri URI]

One ``erapi serve`` per plugin (the MongoDB one on a scratch database it drops afterwards), loaded over HTTP with
the Soda Hall model of tests/data (1,673 entities over three collections, tests/brick_model.py), then asked,
``--requests`` times each, one request at a time on a fresh connection:

- ``depth-3 traversal``: ``GET /apollo/er/entities/ahu_A1/graph?depth=3`` (every relationship, both directions);
- ``3-hop pattern``: ``POST /apollo/er/graph/query``, AHU-1 -feeds-> VAV -feeds-> HVAC_Zone -hasPart-> Room;
- ``explosion``: a hub entity with ``--explosion`` points (written first), ``graph?depth=2&limit=10000``: the
  walk must stop at the node limit (the answer says ``truncated``) instead of serving them all.

Storage calls are read from the service's own metrics (``erapi_storage_call_duration_seconds_count`` per
operation) before and after each request, less what a scrape itself costs. Prints, per question, the median
and 90th percentile latency, the nodes answered and the storage calls per request by operation.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import Counter
from typing import Any

from bench import harness
from bench.harness import BenchError, client_headers, http
from erapi.catalog import load_catalog
from tests import brick_model

CALLS = re.compile(r'^erapi_storage_call_duration_seconds_count\{operation="([a-z_]+)"\} ([0-9.e+]+)$', re.M)
# the job worker polls the queue in the background: its calls are no request's
BACKGROUND = frozenset({"claim_chunk", "renew_chunk", "finish_chunk", "release_chunk", "pending_items"})
HUB = "bench_hub"
PATTERN = {"start": {"entityId": "ahu_A1"},
           "hops": [{"relationshipType": "feeds", "entityType": "VAV"},
                    {"relationshipType": "feeds", "entityType": "HVAC_Zone"},
                    {"relationshipType": "hasPart", "entityType": "Room"}]}


def storage_calls(port: int) -> Counter:
    reply = http(port, "GET", "/metrics")
    if reply.status != 200:
        raise BenchError(f"/metrics answered {reply.status}: the bench needs metrics enabled")
    return Counter({name: int(float(value)) for name, value in CALLS.findall(reply.body.decode())
                    if name not in BACKGROUND})


def load_model(port: int, token: str) -> None:
    catalog = load_catalog()
    known = brick_model.entities(catalog)
    for collection in brick_model.COLLECTIONS.values():
        _ok(http(port, "POST", "/apollo/collections", {"collectionId": collection}, client_headers(token)), 201)
        batch = [{"id": key, "entityType": entity_type} for key, (entity_type, home) in sorted(known.items())
                 if home == collection]
        _write(port, token, collection, "entities", batch)
    for collection, items in sorted(brick_model.relationships(catalog, known).items()):
        _write(port, token, collection, "relationships", items)


def load_hub(port: int, token: str, points: int) -> None:
    _ok(http(port, "POST", "/apollo/collections", {"collectionId": HUB}, client_headers(token)), 201)
    _write(port, token, HUB, "entities", [{"id": "hub", "entityType": "BRICK_1_4__AHU"}] + [
        {"id": f"p{n:05d}", "entityType": "BRICK_1_4__Temperature_Sensor"} for n in range(points)])
    _write(port, token, HUB, "relationships", [
        {"id": f"h{n:05d}", "sourceEntityId": "hub", "destinationEntityId": f"p{n:05d}",
         "brickRelationshipType": "BRICK_1_4__hasPoint"} for n in range(points)])


def _write(port: int, token: str, collection: str, kind: str, items: list[dict]) -> None:
    for start in range(0, len(items), 100):
        reply = http(port, "POST", f"/apollo/er/{kind}", items[start:start + 100], client_headers(token, collection))
        _ok(reply, 207)


def _ok(reply: harness.Reply, status: int) -> None:
    if reply.status != status:
        raise BenchError(f"expected {status}, got {reply.status}: {reply.body[:300]!r}")


def measure(port: int, token: str, requests: int, question: tuple) -> dict[str, Any]:
    method, path, collection, body, nodes_of = question
    scrape = _scrape_cost(port)
    latencies, calls, answered = [], Counter(), 0
    for _ in range(requests):
        before = storage_calls(port)
        started = time.perf_counter()
        reply = http(port, method, path, body, client_headers(token, collection))
        latencies.append(time.perf_counter() - started)
        _ok(reply, 200)
        calls += storage_calls(port) - before - scrape
        answered = nodes_of(reply.json())
    return {"median_ms": statistics.median(latencies) * 1000,
            "p90_ms": statistics.quantiles(latencies, n=10)[-1] * 1000 if requests > 1 else latencies[0] * 1000,
            "answered": answered, "calls": {name: count / requests for name, count in sorted(calls.items())}}


def _scrape_cost(port: int) -> Counter:
    first = storage_calls(port)
    return storage_calls(port) - first


def questions(explosion: int) -> dict[str, tuple]:
    found = {
        "depth-3 traversal": ("GET", "/apollo/er/entities/ahu_A1/graph?depth=3", "soda_hvac", None,
                              lambda body: len(body["data"]["nodes"])),
        "3-hop pattern": ("POST", "/apollo/er/graph/query", "soda_hvac", PATTERN,
                          lambda body: body["paging"]["totalCount"]),
    }
    if explosion:
        found["explosion"] = ("GET", "/apollo/er/entities/hub/graph?depth=2&limit=10000", HUB, None,
                              lambda body: f"{len(body['data']['nodes'])} truncated={body['data']['truncated']}")
    return found


def run(requests: int, explosion: int, mongodb_uri: str = "") -> dict[str, dict]:
    results = {}

    def measure_plugin(storage: str, service: harness.Service) -> None:
        load_model(service.port, service.token)
        if explosion:
            load_hub(service.port, service.token, explosion)
        results[storage] = {name: measure(service.port, service.token, requests, question)
                            for name, question in questions(explosion).items()}
        report(storage, requests, results[storage])

    harness.on_each_plugin("graph", mongodb_uri, measure_plugin)
    return results


def report(storage: str, requests: int, results: dict[str, dict]) -> None:
    print(f"{storage} plugin, {requests} requests per question, one at a time")
    print(f"  {'question':<18} {'median ms':>10} {'p90 ms':>8}  {'answered':<22} storage calls per request")
    for name, result in results.items():
        calls = ", ".join(f"{op} {count:g}" for op, count in result["calls"].items())
        print(f"  {name:<18} {result['median_ms']:>10.1f} {result['p90_ms']:>8.1f}  {str(result['answered']):<22} "
              f"{calls}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.graph", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="requests per question")
    parser.add_argument("--explosion", type=int, default=12000, help="points of the hub entity (0: no explosion)")
    parser.add_argument("--mongodb-uri", default="", help="also measure the MongoDB plugin on this server")
    arguments = parser.parse_args(argv)
    return harness.exit_status(lambda: run(arguments.requests, arguments.explosion, arguments.mongodb_uri))


if __name__ == "__main__":
    raise SystemExit(main())
