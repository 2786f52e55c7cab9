"""Import of a public Brick model end to end, next to the sync API and to brickschema on the same file.

    python -m bench.brick_import [--model tests/data/brick/soda_brick.ttl] [--validate-limit 600]

In one run, on one ``erapi serve`` (memory plugin):

- **import**: ``erapi import MODEL`` as a user runs it (a new process: parse, map, async jobs, tracker
  following, summary), timed from start to exit; relationships/s = relationships written / that time;
- **sync API**: the relationships the import wrote, sent again by explicit type to a fresh collection (its
  entities first, untimed), 100 per request, one request at a time: relationships/s of that;
- **brickschema**: ``brickschema.Graph(load_brick=True, brick_version="1.4")``, parse the model, ``validate()``,
  in a child process stopped after ``--validate-limit`` seconds (bench/brick_compare.py's peer).

The import must reach at least half of the sync API's relationships/s (docs/BRICK.md records a run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench import harness
from bench.brick_compare import brickschema_side, peer_line, version

DEFAULT_MODEL = harness.ROOT / "tests" / "data" / "brick" / "soda_brick.ttl"
IMPORTED, BASELINE = "bench_import", "bench_sync"
PAGE = 1000


def run_import(service: harness.Service, model: Path) -> tuple[float, str]:
    command = [*harness.erapi_command(), "import", str(model), "--collection", IMPORTED, "--quiet",
               "--url", f"http://{harness.HOST}:{service.port}", "--token", service.token]
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True, env=service.env, cwd=harness.ROOT)
    elapsed = time.monotonic() - started
    if finished.returncode not in (0, 1):  # 1: some items refused, which the summary reports
        raise harness.BenchError(f"erapi import failed ({finished.returncode}): {finished.stderr[-1500:]}")
    return elapsed, finished.stdout


def read_all(service: harness.Service, kind: str, collection: str) -> list[dict]:
    """Every active document of the collection, through the list endpoint."""
    documents, token = [], None
    while True:
        headers = service.headers(collection, PageSize=str(PAGE), **({"continuationToken": token} if token else {}))
        reply = harness.http(service.port, "GET", f"/apollo/er/{kind}", headers=headers)
        if reply.status != 200:
            raise harness.BenchError(f"listing {kind} answered {reply.status}: {reply.body[:300]!r}")
        body = reply.json()
        documents += body["data"]
        token = body["paging"]["continuationToken"]
        if not token:
            return documents


def sync_baseline(service: harness.Service) -> tuple[int, float]:
    """The imported relationships, sent again by their stored type: relationships and seconds."""
    reply = harness.http(service.port, "POST", "/apollo/collections", {"collectionId": BASELINE}, service.headers())
    if reply.status != 201:
        raise harness.BenchError(f"registering {BASELINE} answered {reply.status}: {reply.body[:300]!r}")
    client = ("id", "entityType", "entityName", "additionalEntityTypes", "brickStatements")
    entities = [{k: v for k, v in e.items() if k in client} for e in read_all(service, "entities", IMPORTED)]
    relationships = [{"id": r["id"], "sourceEntityId": r["sourceEntityId"],
                      "destinationEntityId": r["destinationEntityId"], "relationshipType": r["relationshipType"]}
                     for r in read_all(service, "relationships", IMPORTED)]
    post(service, "entities", entities)
    started = time.monotonic()
    post(service, "relationships", relationships)
    return len(relationships), time.monotonic() - started


def post(service: harness.Service, kind: str, documents: list[dict]) -> None:
    for start in range(0, len(documents), 100):
        batch = documents[start:start + 100]
        reply = harness.http(service.port, "POST", f"/apollo/er/{kind}", batch,
                             service.headers(BASELINE, **{"async": "false"}))
        if reply.status != 207 or f"Upserted:  {len(batch)}.".encode() not in reply.body:
            raise harness.BenchError(f"storing {kind} answered {reply.status}: {reply.body[:400]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.brick_import", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--validate-limit", type=float, default=600.0)
    parser.add_argument("--no-pin", action="store_true")
    arguments = parser.parse_args(argv)
    cpus = harness.split_cpus(pin=not arguments.no_pin)
    with harness.workspace() as workdir:
        service = harness.start_service(workdir, "service-brick-import", cpus=cpus.server)
        try:
            import_s, summary = run_import(service, arguments.model)
            # "Relationships: N written, M unchanged, K refused in S s"
            relationships_line = summary.splitlines()[1].split()
            written, phase_s = int(relationships_line[1]), float(relationships_line[-2])
            baseline, baseline_s = sync_baseline(service)
        finally:
            service.stop()
        print(f"model: {arguments.model.name}\n{summary.rstrip()}")
        imported_rate, phase_rate, sync_rate = written / import_s, written / phase_s, baseline / baseline_s
        print(f"erapi import (end to end, new process, memory): {import_s:.2f} s, {imported_rate:,.0f} relationships/s")
        print(f"erapi import, its relationship jobs (sent to finished): {phase_s:.2f} s, "
              f"{phase_rate:,.0f} relationships/s")
        print(f"sync API (100 per request, one at a time, same service): {baseline_s:.2f} s for {baseline:,} "
              f"relationships, {sync_rate:,.0f} relationships/s")
        print(f"import / sync = {imported_rate / sync_rate:.2f} end to end, {phase_rate / sync_rate:.2f} for the "
              f"relationship jobs (target: at least 0.5)", flush=True)
        if version("brickschema") != "not installed":
            peer = brickschema_side(arguments.model, arguments.validate_limit)
            print(f"brickschema: stopped after {arguments.validate_limit:.0f} s" if peer.get("timed_out")
                  else peer_line(peer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
