"""Peer comparison: one building model stored by the service, and validated by brickschema (Brick 1.4).

    python -m bench.brick_compare [--relationships 10000] [--validate-limit 600]

The model is a building with floors, rooms, HVAC zones, AHUs feeding VAVs, VAVs feeding zones, located in
rooms and each with an air temperature sensor: 6 relationships per VAV plus building-floor links, 10,000
relationships over about 6,800 entities by default, every class and relationship from the service's
Brick 1.4 catalog. The same model is

- stored by ``erapi serve`` (memory plugin) over HTTP, 100 items per request, one request at a time:
  entities first, then relationships, each batch validated (schema, types, subclass checks of both ends,
  entity existence) and stored with its versions and status records;
- written as RDF with the Brick 1.4 classes and relationships, loaded into ``brickschema.Graph`` with the
  Brick 1.4 ontology, and checked with ``Graph.validate()`` (SHACL, pyshacl engine), in a child process
  that is stopped at ``--validate-limit`` seconds.

They are different checks: validate() checks the whole graph against every Brick shape, the service checks
each relationship's type and its two ends as it stores it. The comparison is of the time a user waits for
a model of this size to be accepted. brickschema comes with the catalog extra (``pip install -e ".[catalog]"``).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

from bench import harness

COLLECTION = "brick_compare_building"
BRICK = "https://brickschema.org/schema/Brick#"
MODEL = "urn:erapi-bench:building#"
PREFIX = "BRICK_1_4__"
RELATIONSHIPS_PER_VAV = 6
FLOORS = 40
VAVS_PER_AHU = 20


def building(relationships: int) -> tuple[list[dict], list[dict]]:
    """Entities and relationships (service documents) of a building with ``relationships`` relationships."""
    floors = min(FLOORS, relationships)
    vavs = (relationships - floors) // RELATIONSHIPS_PER_VAV
    extra = relationships - floors - vavs * RELATIONSHIPS_PER_VAV  # topped up with more building-floor links
    floors += extra
    entities = [entity("building", "Building")]
    entities += [entity(f"floor-{f:03d}", "Floor") for f in range(floors)]
    entities += [entity(f"ahu-{a:03d}", "AHU") for a in range(-(-vavs // VAVS_PER_AHU))]
    links = [link("building", "hasPart_Building_Floor", f"floor-{f:03d}") for f in range(floors)]
    for v in range(vavs):
        vav, zone, room, sensor = f"vav-{v:04d}", f"zone-{v:04d}", f"room-{v:04d}", f"sensor-{v:04d}"
        entities += [entity(vav, "VAV"), entity(zone, "HVAC_Zone"), entity(room, "Room"),
                     entity(sensor, "Air_Temperature_Sensor")]
        links += [
            link(f"ahu-{v // VAVS_PER_AHU:03d}", "feeds_HVAC_Equipment_HVAC_Equipment", vav),
            link(vav, "feeds_Equipment_Location", zone),
            link(zone, "hasPart_Location_Location", room),
            link(f"floor-{v % floors:03d}", "hasPart_Floor_Room", room),
            link(vav, "hasPoint_Equipment_Point", sensor),
            link(vav, "hasLocation_Equipment_Location", room),
        ]
    return entities, links


def entity(entity_id: str, brick_class: str) -> dict:
    return {"id": entity_id, "entityType": PREFIX + brick_class, "entityName": entity_id}


def link(source: str, relationship_type: str, destination: str) -> dict:
    return {"id": f"{source}.{relationship_type.split('_')[0]}.{destination}", "sourceEntityId": source,
            "destinationEntityId": destination, "relationshipName": relationship_type.split("_")[0],
            "relationshipType": PREFIX + relationship_type}


def turtle(entities: list[dict], links: list[dict]) -> str:
    lines = [f"@prefix brick: <{BRICK}> .", f"@prefix bldg: <{MODEL}> .", ""]
    lines += [f"bldg:{e['id']} a brick:{e['entityType'][len(PREFIX):]} ." for e in entities]
    lines += [f"bldg:{r['sourceEntityId']} brick:{r['relationshipName']} bldg:{r['destinationEntityId']} ."
              for r in links]
    return "\n".join(lines) + "\n"


# ---- the service ---------------------------------------------------------------------------------------------


def store(service: harness.Service, kind: str, documents: list[dict]) -> float:
    """Store documents 100 per request, one request at a time; every item must be upserted."""
    started = time.monotonic()
    for start in range(0, len(documents), 100):
        batch = documents[start:start + 100]
        reply = harness.http(service.port, "POST", f"/apollo/er/{kind}", batch,
                             service.headers(COLLECTION, **{"async": "false"}))
        if reply.status != 207 or f"Upserted:  {len(batch)}.".encode() not in reply.body:
            raise harness.BenchError(f"storing {kind} {start}-{start + len(batch)} answered {reply.status}: "
                                     f"{reply.body[:400]!r}")
    return time.monotonic() - started


def service_side(workdir: Path, entities: list[dict], links: list[dict], cpus: harness.Cpus) -> dict:
    service = harness.start_service(workdir, "service-brick", cpus=cpus.server)
    try:
        reply = harness.http(service.port, "POST", "/apollo/collections", {"collectionId": COLLECTION},
                             service.headers())
        if reply.status != 201:
            raise harness.BenchError(f"registering {COLLECTION} answered {reply.status}: {reply.body[:300]!r}")
        entities_s = store(service, "entities", entities)
        relationships_s = store(service, "relationships", links)
    finally:
        service.stop()
    return {"entities_s": entities_s, "relationships_s": relationships_s}


# ---- brickschema ---------------------------------------------------------------------------------------------


def validate_file(path: Path) -> dict:
    """Runs in the child process: load Brick 1.4, add the model, validate; timings and result counts."""
    import brickschema
    from rdflib import RDF
    from rdflib.namespace import SH

    started = time.monotonic()
    graph = brickschema.Graph(load_brick=True, brick_version="1.4")
    loaded = time.monotonic()
    graph.parse(path, format="turtle")
    parsed = time.monotonic()
    conforms, results, _text = graph.validate()
    validated = time.monotonic()
    severities: collections.Counter = collections.Counter()
    ours: collections.Counter = collections.Counter()
    for result in results.subjects(RDF.type, SH.ValidationResult):
        severity = str(results.value(result, SH.resultSeverity)).rpartition("#")[2]
        severities[severity] += 1
        if str(results.value(result, SH.focusNode)).startswith(MODEL):
            shape = str(results.value(result, SH.sourceShape)).rpartition("#")[2]
            ours[f"{severity} {shape}"] += 1
    return {"brickschema": version("brickschema"), "pyshacl": version("pyshacl"),
            "load_brick_s": loaded - started, "parse_model_s": parsed - loaded, "validate_s": validated - parsed,
            "triples": len(graph), "conforms": bool(conforms), "results": dict(severities),
            "results_on_model": dict(ours.most_common())}


def version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(package)
    except PackageNotFoundError:
        return "not installed"


def peer_line(peer: dict) -> str:
    """brickschema's timings and verdict, in one line."""
    if "failed" in peer:
        return f"brickschema: load, parse and validate() failed: {peer['failed']}"
    return (f"brickschema {peer['brickschema']} (pyshacl {peer['pyshacl']}), Brick 1.4: load ontology "
            f"{peer['load_brick_s']:.2f} s, parse model {peer['parse_model_s']:.2f} s, "
            f"validate() {peer['validate_s']:.2f} s over {peer['triples']:,} triples; conforms={peer['conforms']}, "
            f"results {peer['results']}")


def brickschema_side(model: Path, limit: float) -> dict:
    child = subprocess.Popen([sys.executable, "-m", "bench.brick_compare", "--validate-only", str(model)],
                             cwd=harness.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        output, errors = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {"timed_out": True}
    if child.returncode != 0:  # brickschema refusing the file is its verdict (EBU3B: an IRI ending in '%')
        return {"failed": errors.strip().splitlines()[-1]}
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.brick_compare", description=__doc__.splitlines()[0])
    parser.add_argument("--relationships", type=int, default=10_000)
    parser.add_argument("--validate-limit", type=float, default=600.0,
                        help="seconds brickschema's load + validate() may take before it is stopped")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--validate-only", metavar="TTL", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.validate_only:
        print(json.dumps(validate_file(Path(arguments.validate_only))))
        return 0
    if version("brickschema") == "not installed":
        print("brickschema is not installed: pip install -e '.[catalog]' (a development extra)")
        return 1
    entities, links = building(arguments.relationships)
    cpus = harness.split_cpus(pin=not arguments.no_pin)
    kinds = collections.Counter(r["relationshipType"][len(PREFIX):] for r in links)
    print(f"building model: {len(entities):,} entities, {len(links):,} relationships "
          f"({', '.join(f'{n} {t}' for t, n in kinds.most_common())})", flush=True)
    with harness.workspace() as workdir:
        model = workdir / "building.ttl"
        model.write_text(turtle(entities, links))
        service = service_side(workdir, entities, links, cpus)
        total = service["entities_s"] + service["relationships_s"]
        print(f"service (erapi serve, memory, one request of 100 at a time): entities {service['entities_s']:.2f} s, "
              f"relationships {service['relationships_s']:.2f} s, total {total:.2f} s "
              f"({len(links) / service['relationships_s']:,.0f} relationships/s)", flush=True)
        peer = brickschema_side(model, arguments.validate_limit)
    if peer.get("timed_out"):
        print(f"brickschema: load + validate() did not finish within {arguments.validate_limit:.0f} s (stopped); "
              f"the service took {total:.2f} s")
        return 0
    print(peer_line(peer))
    if "failed" in peer:
        return 0
    model_violations = sum(n for key, n in peer["results_on_model"].items() if key.startswith("Violation"))
    print(f"  results on the model's own nodes by shape: {peer['results_on_model'] or 'none'}; violations on "
          f"the model's nodes: {model_violations} (the others are on the ontology's own nodes)")
    print(f"validate() / service total: {peer['validate_s'] / total:.1f}x; "
          f"(load + parse + validate()) / service total: "
          f"{(peer['load_brick_s'] + peer['parse_model_s'] + peer['validate_s']) / total:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
