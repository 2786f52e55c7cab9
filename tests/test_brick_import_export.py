"""``erapi import`` then ``erapi export`` of public Brick models (tests/data/brick), on every storage plugin.

What is imported comes back in the export (compared with rdflib), what is left out is counted in the summary,
a second import writes no version, and Brick's SHACL shapes find the same faults in the export as in the source.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import re
import socket
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from rdflib import RDF, BNode, Graph, URIRef

from erapi import brick_rdf
from erapi.app import create_app
from erapi.brick_cli import export_to
from erapi.brick_graph import Triples, from_rdflib
from erapi.brick_import import (
    BRICK_CLASS, RELATIONSHIP_NAMESPACE, Summary, _relationship_name, relationship_id, run_import,
)
from erapi.catalog import load_catalog
from erapi.keys import storage_key
from storage_plugins.base import DocumentQuery
from tests.api_fixtures import make_config, token

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "brick"
CATALOG = load_catalog()
SMALL_MODELS = ["goodBuilding.ttl", "building_meter.ttl", "smallOffice_brick_compiled.ttl"]
BIG_MODEL = "soda_brick.ttl"  # 1,695 entities
BIGGEST_MODEL = "ebu3b_brick.ttl"  # 6,176 entities
FAST_JOBS = {"poll_interval_seconds": 0.05}


@pytest.fixture
async def service(app_factory):
    api = await app_factory(jobs=FAST_JOBS)
    return api.client


@pytest.fixture
async def memory_service(aiohttp_client):
    """The memory plugin only: the biggest model (EBU3B, 14,000 items) takes minutes on the MongoDB test servers
    (docs/BRICK.md)."""
    return await aiohttp_client(create_app(make_config("memory", jobs=FAST_JOBS)))


async def import_model(client, name: str, collection: str = "m1", **options):
    return await run_import(DATA / name, str(client.make_url("")), token("alice"), collection, CATALOG,
                            session=client.session, show_progress=False, **options)


async def export_graph(client, collection: str = "m1", accept: str = "text/turtle") -> Graph:
    target = io.BytesIO()
    response = await client.get(f"/apollo/er/ercollections/{collection}/export",
                                headers={"Authorization": f"Bearer {token('alice')}", "Accept": accept})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith(accept)
    target.write(await response.read())
    return Graph().parse(data=target.getvalue(), format="turtle" if accept == "text/turtle" else "json-ld")


def rdflib_graph(path: Path) -> Graph:
    """The model as rdflib reads it: the reference for what the importer (which parses with Oxigraph) sent."""
    return Graph().parse(str(path), format="turtle")


def entity_subjects(graph: Graph) -> set:
    return {s for s, o in graph.subject_objects(RDF.type) if isinstance(s, URIRef) and BRICK_CLASS.match(str(o))}


def described(graph: Triples, subject: URIRef) -> set[str]:
    """What the graph says about ``subject`` with blank nodes written out (comparable across graphs): Brick
    classes by the current name they resolve to (a deprecated or older name is exported as the class it stands
    for), everything else as the statement shape of brickStatements."""
    found = set()
    for predicate, value in graph.predicate_objects(str(subject)):
        brick_class = BRICK_CLASS.match(value) if predicate == str(RDF.type) and isinstance(value, str) else None
        if brick_class:
            current = CATALOG.entity_type("BRICK_1_4__" + brick_class.group(1))
            found.add(f"class {current.brick_class if current else brick_class.group(1)}")
        else:
            found.add(json.dumps(brick_rdf.statement_of(graph, predicate, value), sort_keys=True))
    return found


async def check_round_trip(client, name: str) -> tuple[Summary, Graph]:
    """Import, export, compare; the import's summary and the export."""
    source = rdflib_graph(DATA / name)
    summary = await import_model(client, name)
    exported = await export_graph(client)
    accepted = entity_subjects(source) - {URIRef(i) for i in summary.refused_ids}
    assert accepted, "the model imported nothing"
    entities = entity_subjects(source)
    assert summary.written["entities"] + summary.refused["entities"] == len(entities)
    relationships = {(s, p, o) for s, p, o in source if s in entities and o in entities
                     and _relationship_name(CATALOG, p) is not None}  # sent as relationships, written or refused
    source_triples, exported_triples = from_rdflib(source), from_rdflib(exported)
    sent_as_relationships: dict = {}
    for s, p, o in relationships:
        statement = brick_rdf.statement_of(source_triples, str(p), str(o))
        sent_as_relationships.setdefault(s, set()).add(json.dumps(statement, sort_keys=True))
    missing = {}
    for subject in accepted:
        want = described(source_triples, subject) - sent_as_relationships.get(subject, set())
        lost = want - described(exported_triples, subject)
        if lost:
            missing[str(subject)] = lost
    assert missing == {}
    # every relationship written is in the export as its Brick predicate
    assert len(relationships & set(exported)) == summary.written["relationships"]
    assert len(relationships) == summary.written["relationships"] + summary.refused["relationships"]
    # nothing is lost silently: statements about no entity are counted by kind
    about_entities = sum(1 for s, _, _ in source if s in entities)
    in_nodes = sum(1 for s, _, _ in source if isinstance(s, BNode))
    assert sum(summary.unmapped.values()) == len(source) - about_entities - in_nodes
    return summary, exported


@pytest.mark.slow  # Brick's shapes take seconds per model
@pytest.mark.parametrize("name", SMALL_MODELS)
async def test_every_imported_statement_is_in_the_export_with_the_sources_faults(service, name):
    summary, exported = await check_round_trip(service, name)
    check_same_faults(name, summary, exported)


@pytest.mark.slow
async def test_the_big_model_round_trips_with_the_sources_faults(service):
    summary, exported = await check_round_trip(service, BIG_MODEL)
    check_same_faults(BIG_MODEL, summary, exported)


@pytest.mark.slow
async def test_the_biggest_model_round_trips(memory_service):
    await check_round_trip(memory_service, BIGGEST_MODEL)


async def test_the_summary_counts_writes_refusals_and_statements_left_out(memory_service, tmp_path):
    # the importer's counting; on every plugin, test_every_imported_statement_is_in_the_export imports this model
    service = memory_service
    summary = await import_model(service, "smallOffice_brick_compiled.ttl")
    # its 15 Electrical_Power_Sensor, a Brick 1.1/1.2 class, are accepted as the Power_Sensor they stand for
    assert (summary.written["entities"], summary.refused["entities"]) == (181, 0)
    assert summary.unmapped == Counter({"statement about something that is not a Brick entity (rdf:type)": 1})
    model = tmp_path / "unknown_class.ttl"
    model.write_text("@prefix brick: <https://brickschema.org/schema/Brick#> .\n"
                     "<urn:x:meter> a brick:Electric_Power_Meter .\n"
                     "<urn:x:sensor> a brick:Power_Sensor ; brick:isPointOf <urn:x:meter> .\n")
    summary = await run_import(model, str(service.make_url("")), token("alice"), "m2", CATALOG,
                               session=service.session, show_progress=False)
    assert (summary.written["entities"], summary.refused["entities"]) == (1, 1)
    assert summary.refusals == Counter({
        "Entity type BRICK_1_4__Electric_Power_Meter not found in the entity type catalog; closest known names: "
        "BRICK_1_4__Electric_Power_Sensor, BRICK_1_4__Electrical_Meter": 1,
        "Destination entity <destination> not found in ERCollection m2": 1})  # the sensor's isPointOf


async def erapi(*arguments: str) -> int:
    """``erapi ARGUMENTS`` as a user runs it (its own event loop, in a thread: the in-process service's loop
    keeps serving meanwhile)."""
    from erapi.cli import main

    return await asyncio.to_thread(main, list(arguments))


def counts_of(lines: list[str]) -> list[str]:
    """The summary's lines without their seconds (written, unchanged, refused; refusals; statements left out);
    the in-process service's log lines (on the same standard output) left out."""
    return [re.sub(r" in [0-9.]+ s$", "", line) for line in lines
            if not line.startswith("Read ") and not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2} ", line)]


async def test_the_import_command_prints_the_summary_and_exits_non_zero_on_refusals(service, tmp_path, capsys):
    url = str(service.make_url(""))
    status = await erapi("import", str(DATA / "goodBuilding.ttl"), "--url", url, "--token", token("alice"),
                         "--collection", "m1", "--quiet")
    printed = capsys.readouterr().out.splitlines()
    through_aiohttp = await import_model(service, "goodBuilding.ttl", collection="m2")
    assert counts_of(printed) == counts_of(through_aiohttp.lines())
    assert status == (1 if sum(through_aiohttp.refused.values()) else 0)
    model = tmp_path / "unknown_class.ttl"
    model.write_text("@prefix brick: <https://brickschema.org/schema/Brick#> .\n"
                     "<urn:x:meter> a brick:Electric_Power_Meter .\n")
    status = await erapi("import", str(model), "--url", url, "--token", token("alice"), "--quiet")
    assert status == 1
    assert "Entities: 0 written, 0 unchanged, 1 refused" in capsys.readouterr().out


async def test_the_import_command_as_its_own_process_prints_the_whole_summary_and_its_status(service):
    # run as a process, the command ends without the interpreter's teardown (erapi/cli.py): nothing it printed
    # to a pipe (block-buffered unless PYTHONUNBUFFERED says otherwise) may be lost; the exit status is the summary's
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erapi", "import", str(DATA / "goodBuilding.ttl"), "--url", str(service.make_url("")),
        "--token", token("alice"), "--collection", "m1", "--quiet", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=buffered)
    printed, errors = await command.communicate()
    through_aiohttp = await import_model(service, "goodBuilding.ttl", collection="m2")
    assert (counts_of(printed.decode().splitlines()), errors) == (counts_of(through_aiohttp.lines()), b"")
    assert command.returncode == (1 if sum(through_aiohttp.refused.values()) else 0)
    unreachable = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erapi", "import", str(DATA / "goodBuilding.ttl"), "--url", "http://127.0.0.1:9",
        "--token", "t", "--quiet", stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=buffered)
    _, errors = await unreachable.communicate()
    assert (unreachable.returncode, errors.decode().startswith("erapi import: cannot reach the service")) == (1, True)


async def test_the_import_command_shows_why_the_service_refused_or_could_not_be_reached(service, capsys):
    model = str(DATA / "goodBuilding.ttl")
    await service.post("/apollo/collections", json={"collectionId": "m3"},
                       headers={"Authorization": f"Bearer {token('alice')}"})
    status = await erapi("import", model, "--url", str(service.make_url("")), "--token", token("bob"), "--quiet",
                         "--collection", "m3")
    assert (status, capsys.readouterr().err.splitlines()[-1]) == (
        1, "erapi import: sending entities to ERCollection m3: 403 ERCollection m3 is not registered or the caller has "
        "no write grant on it")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    status = await erapi("import", model, "--url", f"http://127.0.0.1:{port}", "--token", "t", "--quiet")
    assert status == 1
    assert capsys.readouterr().err.startswith(f"erapi import: cannot reach the service at http://127.0.0.1:{port}: ")


async def test_a_second_import_writes_no_version(service):
    await import_model(service, "building_meter.ttl")
    again = await import_model(service, "building_meter.ttl")
    assert (again.written, again.refused) == (Counter(), Counter())
    assert again.unchanged == Counter({"entities": 10, "relationships": 9})
    storage = service.app[storage_key]
    for kind, field in (("entities", "sysEntityVersion"), ("relationships", "sysRelationshipVersion")):
        documents = await storage.list_current(kind, "m1", DocumentQuery(limit=1000))
        assert {d["sysData"][field] for d in documents} == {1}
        for document in documents:
            assert len(await storage.get_versions(kind, "m1", document["id"])) == 1


async def test_split_by_class_puts_each_family_in_its_collection(service):
    summary = await import_model(service, "building_meter.ttl", split=True)
    assert sum(summary.refused.values()) == 0
    points = await export_graph(service, "m1_point")
    assert {str(o).rsplit("#", 1)[1] for o in points.objects(None, RDF.type)} == {
        "Energy_Sensor", "Peak_Demand_Sensor", "Electric_Power_Sensor"}
    # a point's isPointOf lives in the point collection and names the meter in the equipment collection
    assert (URIRef("http://example.com#building_power_sensor"), URIRef(brick_rdf.BRICK + "isPointOf"),
            URIRef("http://example.com#main-meter")) in points


@pytest.mark.slow  # two imports: seconds on the MongoDB test servers
async def test_a_relationship_name_comes_back_from_the_export(service, tmp_path):
    await import_model(service, "building_meter.ttl")
    storage = service.app[storage_key]
    stored = await storage.list_current("relationships", "m1", DocumentQuery(limit=1000))
    renamed = {key: stored[0][key] for key in ("id", "sourceEntityId", "destinationEntityId", "relationshipType")}
    response = await service.post("/apollo/er/relationships", json=[{**renamed, "relationshipName": "main feed"}],
                                  headers={"Authorization": f"Bearer {token('alice')}", "ercollectionid": "m1"})
    assert response.status == 207, await response.text()
    target = tmp_path / "export.ttl"
    target.write_bytes((await export_graph(service)).serialize(format="turtle", encoding="utf-8"))
    summary = await run_import(target, str(service.make_url("")), token("alice"), "m2", CATALOG,
                               session=service.session, show_progress=False)
    assert summary.unmapped == Counter() and summary.written["relationships"] == len(stored)

    def names(documents):
        return {(d["sourceEntityId"], d["destinationEntityId"]): d["relationshipName"] for d in documents}
    again = await storage.list_current("relationships", "m2", DocumentQuery(limit=1000))
    expected = {**names(stored), (renamed["sourceEntityId"], renamed["destinationEntityId"]): "main feed"}
    assert names(again) == expected


COLLECTIONS_TOML = """
default = "other"
[entities]
"http://example.com#main-meter" = "meters"
[prefixes]
"http://example.com#submeter-" = "submeters"
"http://example.com#submeter-submeter-" = "submeter_points"
[classes]
Sensor = "sensors"
"brick:Electric_Power_Sensor" = "power"
"""


async def test_a_collections_file_sends_each_entity_where_its_rules_say(memory_service, tmp_path):
    rules = tmp_path / "collections.toml"
    rules.write_text(COLLECTIONS_TOML)
    summary = await import_model(memory_service, "building_meter.ttl", collections_file=rules)
    assert sum(summary.refused.values()) == 0
    storage = memory_service.app[storage_key]
    placed = {}
    for collection in ("meters", "submeters", "submeter_points", "sensors", "power", "other"):
        for document in await storage.list_current("entities", collection, DocumentQuery(limit=100)):
            placed[document["id"].split("#")[1]] = collection
    assert placed == {  # the IRI first, then the longest prefix, then the deepest class the file names
        "main-meter": "meters", "submeter-floor1": "submeters", "submeter-floor2": "submeters",
        "submeter-floor3": "submeters", "submeter-submeter-floor1-power": "submeter_points",
        "submeter-submeter-floor2-power": "submeter_points", "submeter-submeter-floor3-power": "submeter_points",
        "building_power_sensor": "power", "building_energy_sensor": "sensors", "building_peak_demand": "sensors"}
    # a relationship lives in its source's collection and names its destination's
    power = await export_graph(memory_service, "power")
    assert (URIRef("http://example.com#building_power_sensor"), URIRef(brick_rdf.BRICK + "isPointOf"),
            URIRef("http://example.com#main-meter")) in power


def test_a_collections_file_without_a_matching_rule_sends_to_its_default_else_to_the_collection(tmp_path):
    from erapi.brick_collections import collection_rule

    rules = tmp_path / "collections.json"
    rules.write_text(json.dumps({"default": "rest", "classes": {"AHU": "ahus"}}))
    collection_of = collection_rule("base", CATALOG, path=rules)
    assert collection_of("urn:x:1", "BRICK_1_4__AHU") == "ahus"
    assert collection_of("urn:x:2", "BRICK_1_4__Zone_Air_Temperature_Sensor") == "rest"
    rules.write_text(json.dumps({"classes": {"AHU": "ahus"}}))
    assert collection_rule("base", CATALOG, path=rules)("urn:x:2", "BRICK_1_4__Zone_Air_Temperature_Sensor") == "base"


@pytest.mark.parametrize(("name", "text", "reason"), [
    ("c.toml", "default = ", "not valid TOML"),
    ("c.json", "{", "not valid JSON"),
    ("c.yaml", "default: x", "a collections file is .toml or .json"),
    ("c.toml", 'colections = {}', "c.toml: Additional properties are not allowed ('colections' was unexpected)"),
    ("c.json", '{"prefixes": {"urn:a:": "bad id!"}}', '/prefixes/urn:a:: "bad id!" does not match'),
    ("c.json", '{"classes": {"Air_Handler_Unti": "ahus"}}',
     "/classes/Air_Handler_Unti: not a Brick class of the catalog; closest known: Air_Handler_Unit"),
])
def test_a_bad_collections_file_stops_the_import_with_its_reason(tmp_path, capsys, name, text, reason):
    from erapi.cli import main

    rules = tmp_path / name
    rules.write_text(text)
    status = main(["import", str(DATA / "goodBuilding.ttl"), "--collections-file", str(rules), "--token", "t",
                   "--url", "http://127.0.0.1:9"])  # never contacted: the file is read first
    assert status == 2
    assert reason in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")  # rdflib's JSON-LD parser
async def test_json_ld_export_holds_the_same_graph_as_turtle(service):
    await import_model(service, "building_meter.ttl")
    from rdflib.compare import isomorphic

    assert isomorphic(await export_graph(service), await export_graph(service, accept="application/ld+json"))


async def test_the_export_command_writes_the_file(service, tmp_path):
    await import_model(service, "goodBuilding.ttl")
    target = tmp_path / "out.ttl"
    status = await export_to(str(service.make_url("")), token("alice"), "m1", "text/turtle", str(target),
                             session=service.session)
    assert status == 0
    assert len(entity_subjects(Graph().parse(target))) == 12


async def test_export_refusals(service):
    await service.post("/apollo/collections", json={"collectionId": "m1"},
                       headers={"Authorization": f"Bearer {token('alice')}"})
    headers = {"Authorization": f"Bearer {token('bob')}", "Accept": "text/turtle"}
    response = await service.get("/apollo/er/ercollections/m1/export", headers=headers)
    assert response.status == 403
    headers["Authorization"] = f"Bearer {token('alice')}"
    response = await service.get("/apollo/er/ercollections/m1/export", headers={**headers, "Accept": "image/png"})
    assert (response.status, (await response.json())["status"]["code"]) == (406, "406")
    response = await service.get("/apollo/er/ercollections/m1/export", headers={**headers, "Accept": "*/*"})
    assert (response.status, await response.text()) == (200, "")


def test_relationship_ids_are_the_uuid5_of_their_collection_and_triple():
    # the ids an earlier version's import gave stay the same: importing the file again writes nothing
    for name in ("m1/urn:x:ahu BRICK_1_4__feeds urn:x:vav", "bâtiment/http://x.org/b#é BRICK_1_4__hasPart urn:ü", ""):
        assert relationship_id(name) == str(uuid.uuid5(RELATIONSHIP_NAMESPACE, name))


def test_entity_iris_are_ids_that_are_iris_else_under_the_documented_base():
    assert brick_rdf.entity_iri("c1", "http://example.com#ahu") == "http://example.com#ahu"
    assert brick_rdf.entity_iri("c1", "ahu 1/a") == "urn:erapi:c1/ahu%201%2Fa"


# ---- Brick's shapes find the same faults in the export as in the source ---------------------------------------

SHACL = "http://www.w3.org/ns/shacl#"


def faults(model: Graph) -> set[tuple[str, ...]]:
    """The SHACL results of validating the model with Brick 1.4 (brickschema): (focus node, path, constraint,
    value), blank nodes as "_" (their names differ between graphs)."""
    import brickschema

    graph = brickschema.Graph(load_brick=True, brick_version="1.4")
    graph += model
    _conforms, results, _text = graph.validate()
    found = set()
    for result in results.subjects(RDF.type, URIRef(SHACL + "ValidationResult")):
        parts = (results.value(result, URIRef(SHACL + name))
                 for name in ("focusNode", "resultPath", "sourceConstraintComponent", "value"))
        found.add(tuple("_" if isinstance(part, BNode) else str(part) for part in parts))
    return found


@functools.cache
def source_faults(name: str) -> frozenset[tuple[str, ...]]:
    """The model file's faults, validated once per test run (the same for every plugin)."""
    return frozenset(faults(rdflib_graph(DATA / name)))


def renamed_entities(graph: Graph) -> set:
    """The subjects with a Brick class that the catalog resolves to a class of another name (docs/CATALOG.md)."""
    found = set()
    for subject, value in graph.subject_objects(RDF.type):
        brick_class = BRICK_CLASS.match(str(value))
        current = brick_class and CATALOG.entity_type("BRICK_1_4__" + brick_class.group(1))
        if current and current.brick_class != brick_class.group(1):
            found.add(subject)
    return found


def check_same_faults(name: str, summary: Summary, exported: Graph) -> None:
    """Brick's shapes find the same faults in the export as in the source, around the entities whose
    neighbourhood the import kept as it was."""
    source = rdflib_graph(DATA / name)
    entities = entity_subjects(source)
    # an entity of a renamed class (a deprecated or older Brick name) is exported as the class it stands for, which
    # the shapes judge by other rules (and a deprecated class draws a warning): like a refused one, it is left out
    refused = ({URIRef(i) for i in summary.refused_ids} | renamed_entities(source)) & entities
    refused_relationships = {(s, o) for s, p, o in source if s in entities and o in entities
                             and _relationship_name(CATALOG, p) is not None and (s, p, o) not in exported}
    # a refused item changes what the shapes see around it: its neighbours are compared no more
    touched = refused | {o for s, p, o in source if s in refused} | {s for s, p, o in source if o in refused}
    touched |= {end for pair in refused_relationships for end in pair}
    # so do statements about what is not a Brick entity (a rec:Floor, an untyped soda_hall:ahu): the importer leaves
    # them out and counts them, and the entities next to such a node see it without its class or its statements
    dropped = {s for s, _, _ in source if s not in entities and not isinstance(s, BNode)}
    touched |= {s for s, p, o in source if o in dropped and s in entities}
    touched |= {o for s, p, o in source if s in dropped and o in entities}  # an inverse the shapes infer
    compared = entities - touched
    assert compared
    assert ({fault for fault in faults(exported) if URIRef(fault[0]) in compared}
            == {fault for fault in source_faults(name) if URIRef(fault[0]) in compared})


def test_the_service_starts_without_importing_rdflib():
    import subprocess
    import sys

    code = ("import sys; from erapi.app import create_app; from erapi.cli import main; "
            "from tests.api_fixtures import make_config; create_app(make_config()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rdflib', 'brickschema')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "[]"


def test_the_import_command_runs_without_aiohttp():
    # aiohttp's import alone is 0.13-0.2 s of every import's start (erapi/brick_http.py)
    import subprocess
    import sys

    code = ("import sys; from erapi.cli import main; "
            f"status = main(['import', {str(DATA / 'goodBuilding.ttl')!r}, '--url', 'http://127.0.0.1:9', "
            "'--token', 't', '--quiet']); print(status, sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "1 []"  # port 9: nothing listens, the import stops there
