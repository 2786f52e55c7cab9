"""Service documents as Brick RDF and back: entity IRIs, classes, relationships, kept statements.

Shared by the export endpoint and ``erapi import``. rdflib is imported when a function needs it, never when
the service starts (docs/BRICK.md).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import quote

from erapi import brick_graph
from erapi.brick_graph import Blank, Term, Triples, order
from erapi.catalog import Catalog

if TYPE_CHECKING:
    from rdflib import Graph
    from rdflib.term import Identifier

BRICK = "https://brickschema.org/schema/Brick#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDF_TYPE = RDF_NS + "type"
RDF_STATEMENT = RDF_NS + "Statement"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
ERAPI = "https://erapi.example/ns#"  # the service's own terms in an export (docs/BRICK.md)
RELATIONSHIP_NAME = ERAPI + "relationshipName"
ID_BASE = "urn:erapi:"  # an entity whose id is not an IRI is urn:erapi:<collection>/<id, percent-encoded>
ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\x00-\x20<>\"{}|\\^`]*$")
# the bounds of schemas/brick-statements.json
MAX_NODE_DEPTH = 2  # blank nodes nest at most this deep
MAX_NODE_STATEMENTS = 32
MAX_STATEMENTS = 256
MAX_LITERAL_CHARS = 4096
PREFIXES = {"brick": BRICK, "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
            "ref": "https://brickschema.org/schema/Brick/ref#", "unit": "http://qudt.org/vocab/unit/",
            "xsd": "http://www.w3.org/2001/XMLSchema#", "erapi": ERAPI}


def entity_iri(collection_id: str, entity_id: str) -> str:
    """The entity's IRI: its id when that is an absolute IRI, else one under ``urn:erapi:<collection>/``."""
    if ABSOLUTE_IRI.match(entity_id):
        return entity_id
    return f"{ID_BASE}{collection_id}/{quote(entity_id, safe='')}"


def class_iri(catalog: Catalog, type_name: str) -> str | None:
    found = catalog.entity_type(type_name)
    return None if found is None else BRICK + found.brick_class


def add_entity(graph: Graph, catalog: Catalog, collection_id: str, document: Mapping[str, Any]) -> None:
    """The entity's classes, its kept statements, and ``rdfs:label`` from ``entityName`` unless it has one."""
    from rdflib import RDF, RDFS, Literal, URIRef

    subject = URIRef(entity_iri(collection_id, document["id"]))
    for type_name in (document["entityType"], *document.get("additionalEntityTypes", ())):
        found = class_iri(catalog, type_name)
        if found is not None:
            graph.add((subject, RDF.type, URIRef(found)))
    statements = document.get("brickStatements", ())
    add_statements(graph, subject, statements)
    if document.get("entityName") and not any(s["predicate"] == RDFS_LABEL for s in statements):
        graph.add((subject, RDFS.label, Literal(document["entityName"])))


def add_relationship(graph: Graph, catalog: Catalog, document: Mapping[str, Any]) -> None:
    """The relationship as its Brick statement; a ``relationshipName`` other than the Brick predicate's own
    name goes along as ``erapi:relationshipName`` of the statement, reified (rdf:Statement)."""
    from rdflib import RDF, BNode, Literal, URIRef

    relationship_type = catalog.relationship_type(document["relationshipType"])
    if relationship_type is None:
        return
    triple = (URIRef(entity_iri(document["sourceERCollectionId"], document["sourceEntityId"])),
              URIRef(BRICK + relationship_type.brick_relationship_name),
              URIRef(entity_iri(document["destinationERCollectionId"], document["destinationEntityId"])))
    graph.add(triple)
    name = document.get("relationshipName")
    if name and name != relationship_type.brick_relationship_name:
        statement = BNode()
        for predicate, value in ((RDF.type, RDF.Statement), (RDF.subject, triple[0]), (RDF.predicate, triple[1]),
                                 (RDF.object, triple[2]), (URIRef(RELATIONSHIP_NAME), Literal(name))):
            graph.add((statement, predicate, value))


def relationship_names(graph: Triples) -> dict[tuple, tuple[Blank | str, str]]:
    """The ``erapi:relationshipName`` of each reified statement an export wrote: by (subject, predicate,
    object), the statement's node and the name."""
    names = {}
    for node, pairs in graph.about.items():
        name = graph.value(node, RELATIONSHIP_NAME)
        if name is None or (RDF_TYPE, RDF_STATEMENT) not in pairs:
            continue
        triple = tuple(graph.value(node, RDF_NS + part) for part in ("subject", "predicate", "object"))
        if None not in triple:
            names[triple] = (node, name.value if isinstance(name, brick_graph.Literal) else str(name))
    return names


def add_statements(graph: Graph, subject: Identifier, statements: Iterable[Mapping[str, Any]]) -> None:
    from rdflib import BNode, Literal, URIRef

    for statement in statements:
        predicate = URIRef(statement["predicate"])
        if "iri" in statement:
            graph.add((subject, predicate, URIRef(statement["iri"])))
        elif "literal" in statement:
            datatype = statement.get("datatype")
            graph.add((subject, predicate, Literal(statement["literal"], lang=statement.get("language"),
                                                   datatype=URIRef(datatype) if datatype else None)))
        else:
            node = BNode()
            graph.add((subject, predicate, node))
            add_statements(graph, node, statement["node"])


def statement_of(graph: Triples, predicate: str, value: Term, depth: int = 0,
                 seen: set | None = None) -> dict[str, Any] | str:
    """One statement in the shape of ``brickStatements``, or a str saying why the shape cannot hold it.
    Blank nodes become nested statement lists (at most MAX_NODE_DEPTH deep); each one visited goes into
    ``seen``, so that the importer knows which statements were taken along."""
    if not ABSOLUTE_IRI.match(predicate):
        return "predicate that is not an absolute IRI"
    if isinstance(value, str):
        return {"predicate": predicate, "iri": value} if ABSOLUTE_IRI.match(value) \
            else "object IRI that is not absolute"
    if isinstance(value, brick_graph.Literal):
        return _literal(predicate, value)
    if depth >= MAX_NODE_DEPTH:
        return "blank node nested deeper than two levels"
    if seen is not None:
        seen.add(value)
    nested = [statement_of(graph, p, o, depth + 1, seen)
              for p, o in sorted(graph.predicate_objects(value), key=statement_order)]
    kept = [statement for statement in nested if isinstance(statement, dict)]
    if len(kept) != len(nested) or not kept or len(kept) > MAX_NODE_STATEMENTS:
        return "blank node that the statement shape cannot hold (too deep, too many statements, or empty)"
    return {"predicate": predicate, "node": kept}


def statement_order(pair: tuple[str, Term]) -> tuple:
    """Statements about one subject sorted by predicate, then value: the same list from any parse."""
    return pair[0], order(pair[1])


def _literal(predicate: str, value: brick_graph.Literal) -> dict[str, Any] | str:
    if len(value.value) > MAX_LITERAL_CHARS:
        return f"literal longer than {MAX_LITERAL_CHARS:,} characters"
    statement = {"predicate": predicate, "literal": value.value}
    if value.language:
        statement["language"] = value.language
    elif value.datatype is not None:
        statement["datatype"] = value.datatype
    return statement


def new_graph() -> Graph:
    from rdflib import Graph

    graph = Graph()
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    return graph
