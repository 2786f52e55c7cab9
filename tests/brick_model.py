"""A real public Brick model (tests/data/brick/soda_brick.ttl, Soda Hall), loaded through the API over three
collections, and the SPARQL (rdflib) side of the questions docs/API.md answers on it.

Every typed node whose class the catalog has becomes an entity: equipment in ``soda_hvac``, locations in
``soda_spaces``, points in ``soda_points``. Every triple of a Brick relationship between two such entities becomes
a relationship named by its Brick name (``brickRelationshipType``), stored in its source's collection.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import rdflib

from erapi.catalog import Catalog

MODEL = Path(__file__).parent / "data" / "brick" / "soda_brick.ttl"
BRICK = "https://brickschema.org/schema/Brick#"
SODA = "https://brickschema.org/schema/1.0.2/building_example#"
PREFIX = "BRICK_1_4__"
COLLECTIONS = {"BRICK_1_4__Equipment": "soda_hvac", "BRICK_1_4__Location": "soda_spaces",
               "BRICK_1_4__Point": "soda_points"}
Key = tuple[str, str]


@lru_cache(maxsize=1)
def model() -> rdflib.Graph:
    return rdflib.Graph().parse(MODEL)


def local(node: rdflib.term.Node) -> str:
    return str(node).split("#", 1)[1]


def entities(catalog: Catalog) -> dict[str, tuple[str, str]]:
    """id -> (entity type, collection) of every typed node whose class the catalog has."""
    found = {}
    for node, brick_class in model().subject_objects(rdflib.RDF.type):
        entity_type = catalog.entity_type(PREFIX + local(brick_class))
        if entity_type is not None:
            found[local(node)] = (entity_type.name, COLLECTIONS[entity_type.brick_entity_type])
    return found


def relationships(catalog: Catalog, known: dict[str, tuple[str, str]]) -> dict[str, list[dict]]:
    """Per collection, the relationship items of every Brick relationship triple between two entities."""
    items: dict[str, list[dict]] = {}
    for source, predicate, destination in sorted(model()):
        name = PREFIX + local(predicate) if str(predicate).startswith(BRICK) else ""
        if name not in catalog.by_brick_relationship or local(source) not in known or local(destination) not in known:
            continue
        home, there = known[local(source)][1], known[local(destination)][1]
        items.setdefault(home, []).append({
            "id": f"{local(source)}.{local(predicate)}.{local(destination)}", "brickRelationshipType": name,
            "sourceEntityId": local(source), "destinationEntityId": local(destination),
            "destinationERCollectionId": there})
    return items


async def load(api, catalog: Catalog) -> tuple[dict[str, tuple[str, str]], list[dict]]:
    """Register the three collections and write the model through the API in batches of 100; the entities,
    and the relationship items the service refused (with their messages)."""
    known = entities(catalog)
    for collection in COLLECTIONS.values():
        await api.register(collection)
        batch = [{"id": entity_id, "entityType": entity_type, "entityName": entity_id}
                 for entity_id, (entity_type, home) in sorted(known.items()) if home == collection]
        for start in range(0, len(batch), 100):
            body = await api.entities(collection, batch[start:start + 100])
            assert body["data"]["responses"].get("failure", []) == []
    refused = []
    for collection, items in sorted(relationships(catalog, known).items()):
        for start in range(0, len(items), 100):
            body = await api.relationships(collection, items[start:start + 100])
            refused += body["data"]["responses"].get("failure", [])
    return known, refused


def sparql(query: str, with_ontology: bool = False) -> set[str]:
    """The ids a SPARQL query over the model selects (its first variable), optionally with Brick 1.4 itself
    (for rdfs:subClassOf)."""
    graph = model()
    if with_ontology:
        graph = graph + _brick_ontology()
    prologue = f"PREFIX brick: <{BRICK}>\nPREFIX soda: <{SODA}>\nPREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n"
    return {local(row[0]) for row in graph.query(prologue + query)}


@lru_cache(maxsize=1)
def _brick_ontology() -> rdflib.Graph:
    import brickschema  # the catalog extra: the Brick ontology files the catalog is built from

    return rdflib.Graph().parse(Path(brickschema.__file__).parent / "ontologies" / "1.4" / "Brick.ttl")
