"""The catalog generator checked against the Brick 1.4 ontology read directly with rdflib as the oracle.

Skipped without the ``catalog`` extra (rdflib and brickschema). The generator runs once per module into a
temporary directory; the committed ``schemas/catalog/brick-1.4.json`` must be byte-identical to that output.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

rdflib = pytest.importorskip("rdflib", reason="the catalog generator needs the catalog extra (rdflib)")
pytest.importorskip("brickschema", reason="the catalog generator needs the catalog extra (brickschema)")

from rdflib.namespace import OWL, RDF, RDFS

from erapi import catalog_build
from erapi.catalog import CATALOG_DIR, Catalog, load_catalog

BRICK = "https://brickschema.org/schema/Brick#"
PREFIX = "BRICK_1_4__"
COMMITTED = CATALOG_DIR / "brick-1.4.json"
STARTER = CATALOG_DIR / "brick-0.4-starter.json"
REPO = Path(__file__).resolve().parent.parent
# Brick 1.4 relationships whose shapes give no Brick class at one end (QUDT units and quantity kinds, SHACL
# shapes, owl:Class, value shapes): they join an entity to something that is not an entity, so get no type.
NOT_BETWEEN_ENTITIES = {
    "ambientTemperatureOfMeasurement", "deprecationMitigationRule", "hasAssociatedTag", "hasQUDTReference",
    "hasUnit", "isAssociatedWith",
}
STARTER_INVERSES = {"contains": "isLocatedIn", "feeds": "isFedBy", "hasPart": "isPartOf", "hasPoint": "isPointOf"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("catalog")
    assert catalog_build.main(["--brick-version", "1.4", "--output", str(output)]) == 0
    return output / "brick-1.4.json"


@pytest.fixture(scope="module")
def catalog(generated: Path) -> Catalog:
    return load_catalog(generated.parent)


@pytest.fixture(scope="module")
def brick() -> rdflib.Graph:
    graph = rdflib.Graph()
    graph.parse(str(files("brickschema") / "ontologies" / "1.4" / "Brick.ttl"), format="turtle")
    return graph


def brick_local(node: object) -> str | None:
    if isinstance(node, rdflib.URIRef) and str(node).startswith(BRICK):
        return str(node)[len(BRICK):]
    return None


def brick_classes(graph: rdflib.Graph) -> set[str]:
    return {name for name in map(brick_local, graph.subjects(RDF.type, OWL.Class)) if name}


def replaced_classes(graph: rdflib.Graph) -> dict[str, str]:
    """Deprecated classes with a brick:isReplacedBy brick class (Brick 1.4 has no chains of them)."""
    classes = brick_classes(graph)
    return {
        brick_local(term): brick_local(replacement)
        for term, replacement in graph.subject_objects(rdflib.URIRef(BRICK + "isReplacedBy"))
        if brick_local(term) and brick_local(replacement) in classes
        and (term, OWL.deprecated, rdflib.Literal(True)) in graph
    }


def current_classes(graph: rdflib.Graph) -> set[str]:
    return brick_classes(graph) - set(replaced_classes(graph))


def relationship_properties(graph: rdflib.Graph) -> set[str]:
    entity_property = rdflib.URIRef(BRICK + "EntityProperty")
    return {
        brick_local(node) for node in graph.subjects(RDF.type, OWL.ObjectProperty)
        if brick_local(node) and (node, RDF.type, entity_property) not in graph
    }


def valid(catalog: Catalog, relationship: str, source: str, destination: str) -> bool:
    """Whether some generated type of ``relationship`` admits these classes at its ends (subclasses included)."""
    return any(
        rt.brick_relationship_name == relationship
        and catalog.is_a(PREFIX + source, rt.source) and catalog.is_a(PREFIX + destination, rt.destination)
        for rt in catalog.relationship_types.values()
    )


def test_every_brick_class_not_replaced_is_an_entity_type(catalog: Catalog, brick: rdflib.Graph) -> None:
    classes = current_classes(brick)
    assert len(catalog.entity_types) == len(classes) == 1433 - 72
    assert {et.brick_class for et in catalog.entity_types.values()} == classes
    assert all(name == PREFIX + et.brick_class for name, et in catalog.entity_types.items())


def test_parents_are_the_direct_brick_superclasses(catalog: Catalog, brick: rdflib.Graph) -> None:
    classes = current_classes(brick)
    for et in catalog.entity_types.values():
        direct = {brick_local(o) for o in brick.objects(rdflib.URIRef(BRICK + et.brick_class), RDFS.subClassOf)}
        assert list(et.parents) == sorted(PREFIX + name for name in direct & classes - {et.brick_class})


def test_ancestors_equal_the_subclass_closure(catalog: Catalog, brick: rdflib.Graph) -> None:
    classes = current_classes(brick)
    for name in random.Random(20240614).sample(sorted(classes), 50):
        uri = rdflib.URIRef(BRICK + name)
        closure = {brick_local(node) for node in brick.transitive_objects(uri, RDFS.subClassOf)} & classes
        assert catalog.entity_type(PREFIX + name).ancestors == {PREFIX + c for c in closure - {name}}, name


def test_brick_entity_type_is_the_top_level_class(catalog: Catalog) -> None:
    assert catalog.entity_type(PREFIX + "AHU").brick_entity_type == PREFIX + "Equipment"
    assert catalog.entity_type(PREFIX + "Temperature_Sensor").brick_entity_type == PREFIX + "Point"
    assert catalog.entity_type(PREFIX + "HVAC_Zone").brick_entity_type == PREFIX + "Location"
    top = {PREFIX + name for name in ("Collection", "Equipment", "Location", "Measurable", "Point", "Tag")}
    for et in catalog.entity_types.values():
        if et.brick_class in ("Entity", "Class"):
            assert et.brick_entity_type == et.name
        else:
            assert et.brick_entity_type in top
            assert catalog.is_a(et.name, et.brick_entity_type)
    assert catalog.is_a(PREFIX + "AHU", PREFIX + "Equipment")


def test_relationship_properties_appear_with_their_inverses(catalog: Catalog, brick: rdflib.Graph) -> None:
    properties = relationship_properties(brick)
    inverses = {}
    for a, b in brick.subject_objects(OWL.inverseOf):
        if brick_local(a) in properties and brick_local(b) in properties:
            inverses[brick_local(a)] = brick_local(b)
            inverses[brick_local(b)] = brick_local(a)
    by_property: dict[str, list] = {}
    for rt in catalog.relationship_types.values():
        by_property.setdefault(rt.brick_relationship_name, []).append(rt)

    assert set(by_property) == properties - NOT_BETWEEN_ENTITIES
    assert {"feeds", "hasPart", "hasPoint", "hasLocation", "isMeteredBy", "hasSubMeter", "hasTag"} <= set(inverses)
    for name, inverse in inverses.items():
        if name in NOT_BETWEEN_ENTITIES:
            assert inverse in NOT_BETWEEN_ENTITIES
            continue
        assert inverse in by_property, name
        for rt in by_property[name]:
            back = catalog.relationship_type(rt.inverse)
            assert back is not None, rt.name
            assert (back.brick_relationship_name, back.source, back.destination) == (inverse, rt.destination, rt.source)
            assert back.inverse == rt.name
    for name in set(by_property) - set(inverses):
        symmetric = (rdflib.URIRef(BRICK + name), RDF.type, OWL.SymmetricProperty) in brick
        for rt in by_property[name]:
            assert rt.inverse == (f"{PREFIX}{name}_{rt.destination[len(PREFIX):]}_{rt.source[len(PREFIX):]}"
                                  if symmetric else None)
            assert rt.brick_relationship_type == PREFIX + name


def test_shapes_decide_which_classes_may_be_joined(catalog: Catalog) -> None:
    assert valid(catalog, "feeds", "AHU", "VAV")
    assert valid(catalog, "feeds", "AHU", "HVAC_Zone")
    assert valid(catalog, "isFedBy", "HVAC_Zone", "AHU")
    assert valid(catalog, "hasPoint", "AHU", "Temperature_Sensor")
    assert valid(catalog, "isPointOf", "Temperature_Sensor", "AHU")
    assert not valid(catalog, "hasPoint", "Temperature_Sensor", "AHU")
    assert not valid(catalog, "feeds", "Temperature_Sensor", "AHU")
    assert not valid(catalog, "hasPart", "Equipment", "Building")
    # sh:or on HVAC_Equipment, an sh:class on Portfolio, expanded only over the classes the shapes name
    assert catalog.relationship_type(PREFIX + "feeds_HVAC_Equipment_Valve") is not None
    assert catalog.relationship_type(PREFIX + "hasPart_Portfolio_Site") is not None
    assert catalog.relationship_type(PREFIX + "feeds_AHU_VAV") is None
    # no shape, domain or range: the Entity -> Entity fallback; symmetric, so its own inverse
    connected = catalog.relationship_type(PREFIX + "connectedTo_Entity_Entity")
    assert connected is not None and connected.inverse == connected.name


def test_deprecated_names_are_aliases_of_their_replacement(catalog: Catalog, brick: rdflib.Graph) -> None:
    expected = {PREFIX + term: PREFIX + replacement for term, replacement in replaced_classes(brick).items()}
    assert expected.items() <= catalog.aliases.items()
    assert not set(expected) & set(catalog.entity_types)
    assert len(expected) == 76  # 72 of them still classes in Brick 1.4, 4 (Condenser, ...) no longer
    assert catalog.entity_type(PREFIX + "Condenser").name == PREFIX + "Condensing_Unit"
    assert catalog.is_a(PREFIX + "Trace_Heat_Sensor", PREFIX + "Point")
    # still an owl:Class in Brick 1.4, deprecated for Leaving_Chilled_Water_Temperature_Sensor
    assert catalog.entity_type(PREFIX + "Chilled_Water_Supply_Temperature_Sensor").name == (
        PREFIX + "Leaving_Chilled_Water_Temperature_Sensor")
    assert PREFIX + "Chilled_Water_Supply_Temperature_Sensor" not in catalog.entity_types


OLDER_NAMESPACES = {"1.2": BRICK, "1.1": "https://brickschema.org/schema/1.1/Brick#",
                    "1.0.3": "https://brickschema.org/schema/1.0.3/Brick#",
                    "1.0.2": "https://brickschema.org/schema/1.0.2/Brick#"}


def older_ontology(version: str) -> rdflib.Graph:
    """brickschema's Brick.ttl of the version, or the one erapi ships (erapi/ontologies: Brick 1.0.x)."""
    graph = rdflib.Graph()
    shipped = REPO / "erapi" / "ontologies" / f"Brick-{version}.ttl.gz"
    if shipped.exists():
        with gzip.open(shipped) as source:
            return graph.parse(source, format="turtle")
    return graph.parse(str(files("brickschema") / "ontologies" / version / "Brick.ttl"), format="turtle")


@pytest.mark.parametrize("version", list(OLDER_NAMESPACES))
def test_names_of_older_versions_stand_for_a_current_superclass(catalog: Catalog, brick: rdflib.Graph,
                                                                version: str) -> None:
    def class_names(version: str) -> set[str]:
        namespace = OLDER_NAMESPACES[version]
        return {str(node)[len(namespace):] for node in older_ontology(version).subjects(RDF.type, OWL.Class)
                if str(node).startswith(namespace) and "#" not in str(node)[len(namespace):]}

    graph = older_ontology(version)
    namespace = OLDER_NAMESPACES[version]
    old = class_names(version)
    # a name takes its meaning from the newest version that has it (1.0's Air is a Point, 1.2's a Substance)
    for newer in list(OLDER_NAMESPACES)[:list(OLDER_NAMESPACES).index(version)]:
        old -= class_names(newer)
    unknown = []
    # names Brick 1.4 itself replaces are checked above; the others take the meaning of their old superclasses
    for name in sorted(old - {et.brick_class for et in catalog.entity_types.values()} - set(replaced_classes(brick))):
        superclasses = {str(node)[len(namespace):] for node in
                        graph.transitive_objects(rdflib.URIRef(namespace + name), RDFS.subClassOf)} - {name}
        current = {found.name for found in map(catalog.entity_type, (PREFIX + c for c in superclasses)) if found}
        found = catalog.entity_type(PREFIX + name)
        if current:
            assert found is not None and found.name in current, name
        else:
            assert found is None, name
            unknown.append(name)
    assert catalog.entity_type(PREFIX + "Electrical_Power_Sensor").name == PREFIX + "Power_Sensor"
    # two Brick 1.0 names of the Soda Hall model (tests/data/brick), known since erapi ships Brick 1.0.x
    assert catalog.entity_type(PREFIX + "Smoke_Detected_Alarm").name == PREFIX + "Alarm"
    assert catalog.entity_type(PREFIX + "Fan_Speed_Reset_Command").name == PREFIX + "Speed_Reset_Command"
    # 1.2's SHACL shapes and its two classes outside the class tree; 1.1 has none; 1.0's measurement properties
    # (Air_CO2, Acceleration_Time), a tree beside Equipment, Point and Location that later versions dropped
    measurement = rdflib.URIRef(namespace + "MeasurementProperty")
    assert all(name.endswith("Shape") or name in ("TimeseriesReference", "Database", "EntityProperty")
               or measurement in graph.transitive_objects(rdflib.URIRef(namespace + name), RDFS.subClassOf)
               for name in unknown), unknown


def test_starter_names_are_aliases_of_generated_types(catalog: Catalog) -> None:
    starter_entities = {"BRICK_0_4__" + name for name in catalog_build.STARTER_ENTITY_CLASSES}
    starter_relationships = {f"BRICK_0_4__{r}_{s}_{d}" for r, s, d in catalog_build.STARTER_RELATIONSHIPS}
    if STARTER.exists():
        content = json.loads(STARTER.read_text())
        assert {doc["name"] for doc in content["entityTypes"]} == starter_entities
        assert {doc["name"] for doc in content["relationshipTypes"]} == starter_relationships
    assert {name for name in catalog.aliases if name.startswith("BRICK_0_4__")} == (
        starter_entities | starter_relationships)
    assert all(catalog.entity_type(name) is not None for name in starter_entities)
    assert catalog.aliases["BRICK_0_4__AHU"] == PREFIX + "AHU"
    assert catalog.aliases["BRICK_0_4__Device"] == PREFIX + "Equipment"
    assert catalog.aliases["BRICK_0_4__isFedBy_Equipment_Equipment"] == PREFIX + "isFedBy_Equipment_Equipment"
    assert catalog.aliases["BRICK_0_4__contains_Location_Device"] == PREFIX + "isLocationOf_Location_Equipment"
    assert catalog.aliases["BRICK_0_4__isLocatedIn_Device_Location"] == PREFIX + "hasLocation_Equipment_Location"
    old_inverse = STARTER_INVERSES | {b: a for a, b in STARTER_INVERSES.items()}
    for relationship, source, destination in catalog_build.STARTER_RELATIONSHIPS:
        current = catalog.relationship_type(f"BRICK_0_4__{relationship}_{source}_{destination}")
        assert current is not None
        assert current.inverse == catalog.aliases[f"BRICK_0_4__{old_inverse[relationship]}_{destination}_{source}"]


def test_regenerating_gives_identical_bytes(generated: Path, tmp_path: Path) -> None:
    assert catalog_build.main(["--output", str(tmp_path)]) == 0
    assert (tmp_path / "brick-1.4.json").read_bytes() == generated.read_bytes()


def test_committed_file_is_what_the_generator_produces(generated: Path) -> None:
    assert COMMITTED.read_bytes() == generated.read_bytes(), "regenerate it: erapi catalog build --brick-version 1.4"


def test_committed_file_loads_alone_and_with_the_other_files(tmp_path: Path) -> None:
    (tmp_path / COMMITTED.name).write_bytes(COMMITTED.read_bytes())
    alone = load_catalog(tmp_path)
    everything = load_catalog()
    assert set(alone.entity_types) <= set(everything.entity_types)
    assert set(alone.relationship_types) <= set(everything.relationship_types)


def test_importing_the_generator_does_not_import_rdflib() -> None:
    code = "import sys, erapi.catalog_build, erapi.catalog; sys.exit('rdflib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO).returncode == 0


def test_running_without_rdflib_says_to_install_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "rdflib", None)
    assert catalog_build.main(["--output", str(tmp_path)]) == 1
    assert "pip install 'erapi[catalog]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_unknown_brick_version_lists_the_valid_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert catalog_build.main(["--brick-version", "0.4", "--output", str(tmp_path)]) == 1
    message = capsys.readouterr().err
    assert "no Brick '0.4'" in message and "1.4" in message
