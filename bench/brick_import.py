"""Import of a public Brick model end to end, next to the sync API and to brickschema on the same file.

    python -m bench.brick_import [--model tests/data/brick/ebu3b_brick.ttl] [--validate-limit 600]

In one run, on one ``erapi serve`` (memory plugin):

- **import**: ``erapi import MODEL`` as a user runs it, in a new process, timed from start to exit:
  interpreter start and imports, the parse ("reading": Oxigraph, rdflib's import included), mapping, registering
  the collection, the entity jobs and the relationship jobs (each from the first job sent to the last one
  seen finished, its item records read), the summary. The summary's own figures split that time;
  relationships/s = relationships written / seconds, for the whole and for its parts;
- **sync API**: the entities and relationships the import wrote, sent again by explicit type to a fresh
  collection, 100 per request, one request at a time: relationships/s for the relationships alone, and for
  entities and relationships together (the same work as the import's jobs);
- **brickschema**: ``brickschema.Graph(load_brick=True, brick_version="1.4")``, parse the model, ``validate()``,
  in a child process stopped after ``--validate-limit`` seconds (bench/brick_compare.py's peer).

The issue's target: the import at least half of the sync API's relationships/s (docs/BRICK.md records runs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench import harness
from bench.brick_compare import brickschema_side, peer_line, version

DEFAULT_MODEL = harness.ROOT / "tests" / "data" / "brick" / "ebu3b_brick.ttl"  # the biggest shipped
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


def sync_baseline(service: harness.Service) -> tuple[int, float, float]:
    """The imported entities and relationships, sent again by their stored type to a fresh collection:
    relationships, seconds for the entities, seconds for the relationships."""
    reply = harness.http(service.port, "POST", "/apollo/collections", {"collectionId": BASELINE}, service.headers())
    if reply.status != 201:
        raise harness.BenchError(f"registering {BASELINE} answered {reply.status}: {reply.body[:300]!r}")
    client = ("id", "entityType", "entityName", "additionalEntityTypes", "brickStatements")
    entities = [{k: v for k, v in e.items() if k in client} for e in read_all(service, "entities", IMPORTED)]
    relationships = [{"id": r["id"], "sourceEntityId": r["sourceEntityId"],
                      "destinationEntityId": r["destinationEntityId"], "relationshipType": r["relationshipType"]}
                     for r in read_all(service, "relationships", IMPORTED)]
    started = time.monotonic()
    post(service, "entities", entities)
    between = time.monotonic()
    post(service, "relationships", relationships)
    return len(relationships), between - started, time.monotonic() - between


def post(service: harness.Service, kind: str, documents: list[dict]) -> None:
    for start in range(0, len(documents), 100):
        batch = documents[start:start + 100]
        reply = harness.http(service.port, "POST", f"/apollo/er/{kind}", batch,
                             service.headers(BASELINE, **{"async": "false"}))
        if reply.status != 207 or f"Upserted:  {len(batch)}.".encode() not in reply.body:
            raise harness.BenchError(f"storing {kind} answered {reply.status}: {reply.body[:400]!r}")


def phases(summary: str) -> dict[str, float]:
    """The summary's seconds: reading, mapping, entities, relationships; and the relationships written."""
    found = {}
    for line in summary.splitlines():
        words = line.replace(",", "").split()
        if line.startswith("Read "):
            found.update(reading=float(words[4]), mapping=float(words[8]))
        elif line.startswith(("Entities:", "Relationships:")):
            found[words[0].rstrip(":").lower()] = float(words[-2])
            found["written"] = int(words[1])
    return found


def report(summary: str, import_s: float, baseline: int, entities_s: float, relationships_s: float) -> None:
    seconds = phases(summary)
    written = seconds["written"]
    rest = import_s - sum(seconds[key] for key in ("reading", "mapping", "entities", "relationships"))
    sync_rate, whole_rate = baseline / relationships_s, baseline / (entities_s + relationships_s)
    rate = {name: written / value for name, value in (
        ("end to end", import_s), ("in the command", import_s - rest),
        ("jobs", seconds["entities"] + seconds["relationships"]), ("relationship jobs", seconds["relationships"]))}
    print(f"erapi import (end to end, new process, memory): {import_s:.2f} s, {rate['end to end']:,.0f} "
          f"relationships/s\n  of which: reading (parse) {seconds['reading']:.2f} s, mapping "
          f"{seconds['mapping']:.2f} s, entity jobs {seconds['entities']:.2f} s, relationship jobs "
          f"{seconds['relationships']:.2f} s, the rest {rest:.2f} s (interpreter start, imports, catalog, "
          f"registering the collection, summary)")
    print(f"sync API (100 per request, one at a time, same service, {baseline:,} relationships): entities "
          f"{entities_s:.2f} s, relationships {relationships_s:.2f} s: {sync_rate:,.0f} relationships/s "
          f"(relationships alone), {whole_rate:,.0f} relationships/s (entities and relationships)")
    for name, value in rate.items():
        print(f"import / sync, {name}: {value / sync_rate:.2f} of the relationships alone, "
              f"{value / whole_rate:.2f} of entities and relationships (target: at least 0.5)")


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
            baseline, entities_s, relationships_s = sync_baseline(service)
        finally:
            service.stop()
        print(f"model: {arguments.model.name}\n{summary.rstrip()}")
        report(summary, import_s, baseline, entities_s, relationships_s)
        if version("brickschema") != "not installed":
            peer = brickschema_side(arguments.model, arguments.validate_limit)
            print(f"brickschema: stopped after {arguments.validate_limit:.0f} s" if peer.get("timed_out")
                  else peer_line(peer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
