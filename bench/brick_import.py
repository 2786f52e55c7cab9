"""Import of a public Brick model end to end, next to the sync API and to brickschema on the same file.

    python -m bench.brick_import [--model tests/data/brick/ebu3b_brick.ttl] [--runs 3] [--validate-limit 600]

In each run, on one new ``erapi serve`` (memory plugin, pinned to the first CPU; the clients on the others), past
its first use (``warm_up``: one refused entity, whose closest-name search imports rapidfuzz in the service):

- **import**: ``erapi import MODEL`` as a user runs it, in a new process, timed from start to exit:
  interpreter start and imports, the parse ("reading": Oxigraph, rdflib's import included), mapping, registering
  the collection, the entity jobs and the relationship jobs (each from its first job sent to its last one seen
  complete), the results read (the entity jobs' while the relationship jobs run; in a collection the import
  registered, only the failed items' records), the summary. The summary's own figures split that time;
  relationships/s = relationships written / seconds, for the whole and for its parts;
- **sync API**: the entities and relationships the import wrote, sent again by explicit type to a fresh
  collection, 100 per request, one request at a time on one kept-alive connection (as the importer's client
  keeps its own): relationships/s for the relationships alone, and for entities and relationships together
  (the same writes as the import's);
- the service's CPU seconds during each, and the importer's own (user + system): where the time goes;
- **brickschema**: ``brickschema.Graph(load_brick=True, brick_version="1.4")``, parse the model, ``validate()``,
  in a child process stopped after ``--validate-limit`` seconds (bench/brick_compare.py's peer).

The issue's target: the import at least half of the sync API's relationships/s (docs/BRICK.md records runs).
The runs' ratios and their median are printed; brickschema runs once, after the last run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

import orjson

from bench import harness
from bench.brick_compare import brickschema_side, peer_line, version

DEFAULT_MODEL = harness.ROOT / "tests" / "data" / "brick" / "ebu3b_brick.ttl"  # the biggest shipped
IMPORTED, BASELINE, WARM_UP = "bench_import", "bench_sync", "bench_warm_up"
PAGE = 1000


@dataclass
class Run:
    summary: str
    import_s: float
    import_server_cpu_s: float
    import_client_cpu_s: float
    baseline: int  # relationships the sync API wrote
    entities_s: float
    relationships_s: float
    sync_server_cpu_s: float


def run_import(service: harness.Service, model: Path) -> tuple[float, float, float, str]:
    """Seconds, the service's CPU seconds and the importer's CPU seconds, and the importer's output."""
    command = [*harness.erapi_command(), "import", str(model), "--collection", IMPORTED, "--quiet",
               "--url", f"http://{harness.HOST}:{service.port}", "--token", service.token]
    env = installed_environment(service.env)
    server_cpu, client_cpu = harness.process_cpu_seconds(service.server.pid), _children_cpu_seconds()
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True, env=env, cwd=harness.ROOT)
    elapsed = time.monotonic() - started
    if finished.returncode not in (0, 1):  # 1: some items refused, which the summary reports
        raise harness.BenchError(f"erapi import failed ({finished.returncode}): {finished.stderr[-1500:]}")
    return (elapsed, harness.process_cpu_seconds(service.server.pid) - server_cpu,
            _children_cpu_seconds() - client_cpu, finished.stdout)


def installed_environment(env: dict[str, str]) -> dict[str, str]:
    """The importer's environment as an installed erapi has it: its modules' bytecode compiled beforehand (pip
    does at install), not compiled from source at every start as with PYTHONDONTWRITEBYTECODE (0.03-0.05 s); one
    warm-up import writes it (into __pycache__, which git ignores)."""
    env = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", "import erapi.cli, erapi.brick_import"], env=env, cwd=harness.ROOT,
                   check=True)
    return env


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
    connection = HTTPConnection(harness.HOST, service.port, timeout=60)
    try:
        started = time.monotonic()
        post(connection, service, "entities", entities)
        between = time.monotonic()
        post(connection, service, "relationships", relationships)
        return len(relationships), between - started, time.monotonic() - between
    finally:
        connection.close()


def post(connection: HTTPConnection, service: harness.Service, kind: str, documents: list[dict]) -> None:
    headers = service.headers(BASELINE, **{"async": "false", "Content-Type": "application/json"})
    for start in range(0, len(documents), 100):
        batch = documents[start:start + 100]
        connection.request("POST", f"/apollo/er/{kind}", body=orjson.dumps(batch), headers=headers)
        reply = connection.getresponse()
        body = reply.read()
        if reply.status != 207 or f"Upserted:  {len(batch)}.".encode() not in body:
            raise harness.BenchError(f"storing {kind} answered {reply.status}: {body[:400]!r}")


def phases(summary: str) -> dict[str, float]:
    """The summary's seconds: reading, mapping (and the part of it that overlapped the entity jobs), entities,
    relationships; and the relationships written."""
    found = {}
    for line in summary.splitlines():
        words = line.replace(",", "").split()
        if line.startswith("Read "):  # ... mapped in 0.17 s (0.08 s of it while the entity jobs ran)
            found.update(reading=float(words[4]), mapping=float(words[8]),
                         overlapped=float(words[10].lstrip("(")) if len(words) > 10 else 0.0)
        elif line.startswith(("Entities:", "Relationships:")):
            found[words[0].rstrip(":").lower()] = float(words[-2])
            found["written"] = int(words[1])
    return found


def warm_up(service: harness.Service) -> None:
    """One entity of an unknown class through the sync API, refused: the service's first closest-name search imports
    rapidfuzz (0.03-0.05 s of its CPU), which EBU3B's entity job would pay and the sync API, measured after it on
    the same service, would not. Both sides then run on a service past its first use."""
    harness.http(service.port, "POST", "/apollo/collections", {"collectionId": WARM_UP}, service.headers())
    reply = harness.http(service.port, "POST", "/apollo/er/entities",
                         [{"id": "warm-up", "entityType": "BRICK_1_4__Electric_Power_Meter", "entityName": "w"}],
                         service.headers(WARM_UP))
    if b"closest known names" not in reply.body:
        raise harness.BenchError(f"the warm-up answered {reply.status}: {reply.body[:300]!r}")


def one_run(model: Path, cpus: harness.Cpus) -> Run:
    with harness.workspace() as workdir:
        service = harness.start_service(workdir, "service-brick-import", cpus=cpus.server)
        try:
            warm_up(service)
            import_s, import_server_cpu_s, import_client_cpu_s, summary = run_import(service, model)
            server_cpu = harness.process_cpu_seconds(service.server.pid)
            baseline, entities_s, relationships_s = sync_baseline(service)
            sync_server_cpu_s = harness.process_cpu_seconds(service.server.pid) - server_cpu
        finally:
            service.stop()
    return Run(summary, import_s, import_server_cpu_s, import_client_cpu_s, baseline, entities_s, relationships_s,
               sync_server_cpu_s)


def report(run: Run) -> tuple[float, float]:
    """Prints the run's figures; returns import / sync end to end: of the relationships alone, of both."""
    seconds = phases(run.summary)
    written = seconds["written"]
    rest = run.import_s - sum(seconds[key] for key in ("reading", "mapping", "entities", "relationships")) \
        + seconds["overlapped"]
    sync_rate = run.baseline / run.relationships_s
    whole_rate = run.baseline / (run.entities_s + run.relationships_s)
    rate = {name: written / value for name, value in (
        ("end to end", run.import_s), ("in the command", run.import_s - rest),
        ("jobs", seconds["entities"] + seconds["relationships"]), ("relationship jobs", seconds["relationships"]))}
    print(f"erapi import (end to end, new process, memory): {run.import_s:.2f} s, {rate['end to end']:,.0f} "
          f"relationships/s\n  of which: reading (parse) {seconds['reading']:.2f} s, mapping "
          f"{seconds['mapping']:.2f} s ({seconds['overlapped']:.2f} s of it during the entity jobs), entity jobs {seconds['entities']:.2f} s, relationship jobs "
          f"{seconds['relationships']:.2f} s, the rest {rest:.2f} s (interpreter start, imports, catalog, "
          f"registering the collection, the relationships' results, summary)\n  CPU: the service {run.import_server_cpu_s:.2f} s, the "
          f"importer {run.import_client_cpu_s:.2f} s")
    print(f"sync API (100 per request, one at a time, same service, {run.baseline:,} relationships): entities "
          f"{run.entities_s:.2f} s, relationships {run.relationships_s:.2f} s: {sync_rate:,.0f} relationships/s "
          f"(relationships alone), {whole_rate:,.0f} relationships/s (entities and relationships)\n"
          f"  CPU: the service {run.sync_server_cpu_s:.2f} s")
    for name, value in rate.items():
        print(f"import / sync, {name}: {value / sync_rate:.2f} of the relationships alone, "
              f"{value / whole_rate:.2f} of entities and relationships (target: at least 0.5)")
    return rate["end to end"] / sync_rate, rate["end to end"] / whole_rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.brick_import", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--runs", type=int, default=3, help="each on a new service (default: 3)")
    parser.add_argument("--validate-limit", type=float, default=600.0)
    parser.add_argument("--no-pin", action="store_true")
    arguments = parser.parse_args(argv)
    cpus = harness.split_cpus(pin=not arguments.no_pin)
    if cpus.load:
        os.sched_setaffinity(0, cpus.load)  # this process (the sync client) and the importer it starts
    ratios = []
    for number in range(1, arguments.runs + 1):
        run = one_run(arguments.model, cpus)
        print(f"## run {number} of {arguments.runs}; {cpus.describe()}\nmodel: {arguments.model.name}\n"
              f"{run.summary.rstrip()}", flush=True)
        ratios.append(report(run))
    print(f"median of {len(ratios)} runs, import / sync end to end: "
          f"{statistics.median(r[0] for r in ratios):.2f} of the relationships alone, "
          f"{statistics.median(r[1] for r in ratios):.2f} of entities and relationships (target: at least 0.5)")
    if version("brickschema") != "not installed":
        peer = brickschema_side(arguments.model, arguments.validate_limit)
        print(f"brickschema: stopped after {arguments.validate_limit:.0f} s" if peer.get("timed_out")
              else peer_line(peer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
