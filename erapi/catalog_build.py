"""Generates the type catalog file ``schemas/catalog/brick-<version>.json`` from the Brick ontology.

Run as ``erapi catalog build [--brick-version 1.4] [--output DIR]``. It reads ``Brick.ttl`` shipped inside the
installed ``brickschema`` package with rdflib; both come with the ``catalog`` extra and are imported only
when the generator runs, so the service itself never needs them. The rules (which classes and properties,
top-level classes, SHACL shapes, fallback, aliases of the Brick 0.4 starter names) are in docs/CATALOG.md.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import sys
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erapi.catalog import CATALOG_DIR, Catalog

if TYPE_CHECKING:
    from rdflib import Graph, URIRef

DEFAULT_BRICK_VERSION = "1.4"
# Brick 1.0.2 and 1.0.3's Brick.ttl, gzipped, from the Brick repository's history (erapi/ontologies/README.md)
SHIPPED_ONTOLOGIES = Path(__file__).resolve().parent / "ontologies"
CATALOG_FORMAT_VERSION = 1
INSTALL_HINT = "install the catalog extra: pip install 'erapi[catalog]' (brickschema and rdflib)"

# Classes that only group the top-level classes; a class's top-level class is found below them.
GROUPING_CLASSES = ("Entity", "Class")
# Ends of a relationship property that no shape, domain or range describes.
FALLBACK_CLASS = "Entity"

# Shape constraints that say what a property's values are without naming a class: a property described only
# by them (or by classes outside the brick namespace) joins an entity to something that is not one.
VALUE_CONSTRAINTS = ("in", "node", "datatype")

# The names of the hand-written Brick 0.4 starter set, kept here so that the aliases outlive its file.
STARTER_PREFIX = "BRICK_0_4__"
STARTER_ENTITY_CLASSES = (
    "AHU", "Building", "Chiller", "Device", "Equipment", "Floor", "HVAC_Equipment", "HVAC_Zone", "Location",
    "Point", "Pump", "Room", "Sensor", "Temperature_Sensor", "VAV", "Zone",
)
STARTER_RELATIONSHIPS = (  # (relationship, source class, destination class)
    ("contains", "Location", "Device"), ("contains", "Location", "Equipment"),
    ("feeds", "Equipment", "Equipment"), ("feeds", "Equipment", "Location"),
    ("hasPart", "Equipment", "Equipment"), ("hasPart", "Location", "Location"),
    ("hasPoint", "Equipment", "Point"), ("hasPoint", "Location", "Point"),
    ("isFedBy", "Equipment", "Equipment"), ("isFedBy", "Location", "Equipment"),
    ("isLocatedIn", "Device", "Location"), ("isLocatedIn", "Equipment", "Location"),
    ("isPartOf", "Equipment", "Equipment"), ("isPartOf", "Location", "Location"),
    ("isPointOf", "Point", "Equipment"), ("isPointOf", "Point", "Location"),
)
# What Brick 1.x calls the starter's names that it dropped: Device became Equipment, and the location
# relationships were renamed (A contains B is now A isLocationOf B).
RENAMED_CLASSES = {"Device": "Equipment"}
RENAMED_RELATIONSHIPS = {"contains": "isLocationOf", "isLocatedIn": "hasLocation"}


class CatalogBuildError(Exception):
    """The catalog cannot be generated: a missing dependency, an unknown Brick version, an ontology the
    rules cannot map."""


def prefix_for(version: str) -> str:
    return "BRICK_" + version.replace(".", "_") + "__"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def brickschema_ontologies_dir() -> Path:
    """``brickschema/ontologies``, found without importing brickschema: only its data files are read."""
    spec = importlib.util.find_spec("brickschema")
    if spec is None or not spec.submodule_search_locations:
        raise CatalogBuildError(f"the brickschema package is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "ontologies"


def available_versions() -> list[str]:
    directory = brickschema_ontologies_dir()
    found = [path.parent.name for path in directory.glob("*/Brick.ttl")] if directory.is_dir() else []
    return sorted(found, key=version_key)


def shipped_versions() -> dict[str, Path]:
    """The older Brick versions erapi ships itself (``erapi/ontologies``; brickschema has no Brick 1.0): version
    -> its gzipped ``Brick.ttl``, read for the names of older versions only."""
    return {path.name[len("Brick-"):-len(".ttl.gz")]: path for path in sorted(SHIPPED_ONTOLOGIES.glob("Brick-*.ttl.gz"))}


def brick_ttl_path(version: str) -> Path:
    versions = available_versions()
    if version not in versions:
        valid = ", ".join(versions) or "none"
        raise CatalogBuildError(f"brickschema ships no Brick {version!r}; valid versions: {valid}")
    return brickschema_ontologies_dir() / version / "Brick.ttl"


def load_brick_graph(version: str) -> Graph:
    try:
        import rdflib
    except ImportError as error:
        raise CatalogBuildError(f"building the catalog needs rdflib ({error}); {INSTALL_HINT}") from None
    graph = rdflib.Graph()
    shipped = shipped_versions()
    if version in shipped and version not in available_versions():
        with gzip.open(shipped[version]) as source:
            graph.parse(source, format="turtle")
    else:
        graph.parse(brick_ttl_path(version), format="turtle")
    return graph


class _Ontology:
    """The Brick classes and relationship properties of one graph, by local name.

    ``replacements`` are the terms marked ``owl:deprecated`` with a ``brick:isReplacedBy`` brick class;
    ``classes`` leaves out the deprecated classes among them, which become aliases of their replacement.
    """

    def __init__(self, graph: Graph) -> None:
        from rdflib.namespace import OWL, RDF

        self.graph = graph
        self.namespace = _brick_namespace(graph)
        defined, self.parents = _class_hierarchy(graph, self.namespace)
        if FALLBACK_CLASS not in defined:
            raise CatalogBuildError(
                f"the ontology has no brick:{FALLBACK_CLASS} root class; the catalog rules need every class to "
                f"descend from it (Brick 1.3 and later)")
        self.replacements = self._replacements(defined)
        self.classes = [name for name in defined if name not in self.replacements]
        self.parents = {name: [parent for parent in self.parents[name] if parent not in self.replacements]
                        for name in self.classes}
        entity_property = self.uri("EntityProperty")
        self.properties = sorted(
            self.local(node) for node in set(graph.subjects(RDF.type, OWL.ObjectProperty))
            if self.is_brick(node) and (node, RDF.type, entity_property) not in graph
        )
        self.version_info = self._version_info()

    def is_brick(self, node: Any) -> bool:
        from rdflib import URIRef

        if not isinstance(node, URIRef) or not str(node).startswith(self.namespace):
            return False
        local = str(node)[len(self.namespace):]
        return bool(local) and "/" not in local and "#" not in local

    def local(self, node: Any) -> str:
        return str(node)[len(self.namespace):]

    def uri(self, name: str) -> URIRef:
        from rdflib import URIRef

        return URIRef(self.namespace + name)

    def _version_info(self) -> str | None:
        from rdflib.namespace import OWL, RDF

        for ontology in sorted(self.graph.subjects(RDF.type, OWL.Ontology)):
            if "brick" in str(ontology).lower():
                for info in sorted(self.graph.objects(ontology, OWL.versionInfo)):
                    return str(info)
        return None


    def _replacements(self, classes: Iterable[str]) -> dict[str, str]:
        """Deprecated term -> the brick class that replaces it, following chains of replacements."""
        from rdflib.namespace import OWL

        defined = set(classes)
        direct = {}
        for term, replacement in self.graph.subject_objects(self.uri("isReplacedBy")):
            deprecated = self.graph.value(term, OWL.deprecated)
            if (self.is_brick(term) and self.is_brick(replacement) and deprecated is not None
                    and deprecated.toPython() is True):
                direct[self.local(term)] = self.local(replacement)
        found = {}
        for term in direct:
            target, seen = direct[term], {term}
            while target in direct and target not in seen:
                seen.add(target)
                target = direct[target]
            if target in defined and target not in direct:
                found[term] = target
        return dict(sorted(found.items()))


def _brick_namespace(graph: Graph) -> str:
    """The namespace ending in ``Brick#`` that holds the most classes (Brick 1.1 has a versioned one)."""
    from rdflib.namespace import OWL, RDF

    counts: dict[str, int] = defaultdict(int)
    for node in graph.subjects(RDF.type, OWL.Class):
        text = str(node)
        if "Brick#" in text:
            counts[text[:text.index("Brick#") + len("Brick#")]] += 1
    if not counts:
        raise CatalogBuildError("the ontology declares no owl:Class in a Brick namespace")
    return max(sorted(counts), key=lambda namespace: counts[namespace])


def _class_hierarchy(graph: Graph, namespace: str) -> tuple[list[str], dict[str, list[str]]]:
    """The ``owl:Class`` local names in ``namespace``, sorted, and each one's direct superclasses among them."""
    from rdflib import URIRef
    from rdflib.namespace import OWL, RDF, RDFS

    def local(node: Any) -> str | None:
        text = str(node)
        name = text[len(namespace):]
        if isinstance(node, URIRef) and text.startswith(namespace) and name and "/" not in name and "#" not in name:
            return name
        return None

    classes = sorted({name for name in map(local, graph.subjects(RDF.type, OWL.Class)) if name})
    known = set(classes)
    parents = {
        name: sorted({local(parent) for parent in graph.objects(URIRef(namespace + name), RDFS.subClassOf)}
                     & known - {name})
        for name in classes
    }
    return classes, parents


def _ancestors(parents: dict[str, list[str]], name: str) -> dict[str, int]:
    """Every class above ``name`` with its distance in rdfs:subClassOf steps (the shortest path)."""
    distance: dict[str, int] = {}
    queue = deque((parent, 1) for parent in parents[name])
    while queue:
        parent, steps = queue.popleft()
        if parent in distance:
            continue
        distance[parent] = steps
        queue.extend((grand, steps + 1) for grand in parents[parent])
    return distance


def top_level_classes(ontology: _Ontology) -> list[str]:
    """Classes that are not grouping classes and whose direct brick superclasses are all grouping classes."""
    grouping = set(GROUPING_CLASSES)
    return [name for name in ontology.classes
            if name not in grouping and set(ontology.parents[name]) <= grouping]


def _top_level_of(name: str, ancestors: dict[str, int], top_level: set[str]) -> str:
    """The nearest top-level class at or above ``name``; ties go to the alphabetically first."""
    if name in top_level or name in GROUPING_CLASSES:
        return name
    candidates = sorted((steps, ancestor) for ancestor, steps in ancestors.items() if ancestor in top_level)
    if not candidates:
        raise CatalogBuildError(f"class {name} has no top-level class among its ancestors")
    return candidates[0][1]


def _shape_ends(ontology: _Ontology, ancestors: dict[str, dict[str, int]]) -> tuple[
        dict[str, set[tuple[str, str]]], set[str]]:
    """(source class, destination class) pairs that the SHACL property shapes allow for each property, and
    the properties that some shape describes at all (even if only with classes outside the brick namespace).

    A property shape belongs to the brick classes that hold it with ``sh:property`` (the class is its own
    node shape), to the ``sh:targetClass`` of a node shape holding it, and to its own ``sh:targetClass``.
    Its destinations are the classes of ``sh:class`` and of the ``sh:or`` alternatives; several such
    constraints on one shape must all hold, so a class is kept only if each constraint names it or one of
    its ancestors. Classes outside the brick namespace (rec:Space, owl:Class, qudt:QuantityKind) are
    dropped: the catalog has no type for them. Counts, qualified value shapes and value nodes (sh:node,
    sh:in, sh:datatype) say nothing about which classes may be joined and are not read.
    """
    from rdflib.collection import Collection
    from rdflib.namespace import RDF, SH

    graph = ontology.graph
    properties = set(ontology.properties)
    known = set(ontology.classes)
    pairs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    described: set[str] = set()
    for shape in set(graph.subjects(SH.path, None)):
        path = graph.value(shape, SH.path)
        if not ontology.is_brick(path) or ontology.local(path) not in properties:
            continue
        name = ontology.local(path)
        holders = set(graph.subjects(SH.property, shape))
        owners = set(graph.objects(shape, SH.targetClass))
        for holder in holders:
            if (holder, RDF.type, SH.NodeShape) in graph or ontology.is_brick(holder):
                owners.add(holder)
            owners.update(graph.objects(holder, SH.targetClass))
        if not owners:
            continue
        constraints = [{node} for node in graph.objects(shape, SH["class"])]
        for alternatives in graph.objects(shape, SH["or"]):
            constraints.append({node for member in Collection(graph, alternatives)
                                for node in graph.objects(member, SH["class"])})
        if constraints or any(graph.value(shape, SH[key]) is not None for key in VALUE_CONSTRAINTS):
            described.add(name)
        if not constraints:
            continue
        sources = {ontology.local(owner) for owner in owners if ontology.is_brick(owner)} & known
        candidates = {ontology.local(node) for constraint in constraints for node in constraint
                      if ontology.is_brick(node)} & known
        allowed = {
            candidate for candidate in candidates
            if all({candidate, *ancestors[candidate]} & {ontology.local(node) for node in constraint}
                   for constraint in constraints)
        }
        pairs[name].update((source, destination) for source in sources for destination in allowed)
    return pairs, described


def _domain_range_ends(ontology: _Ontology) -> tuple[dict[str, set[tuple[str, str]]], set[str]]:
    """Pairs from rdfs:domain × rdfs:range (Brick 1.2 and older declare them; 1.4 does not). A missing
    side is the fallback class."""
    from rdflib.collection import Collection
    from rdflib.namespace import OWL, RDFS

    graph = ontology.graph
    known = set(ontology.classes)

    def classes_of(node: Any) -> set[Any]:
        found = {node}
        for union in graph.objects(node, OWL.unionOf):
            found.update(Collection(graph, union))
        return found

    pairs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    described: set[str] = set()
    for name in ontology.properties:
        uri = ontology.uri(name)
        domains = {c for node in graph.objects(uri, RDFS.domain) for c in classes_of(node)}
        ranges = {c for node in graph.objects(uri, RDFS.range) for c in classes_of(node)}
        if not domains and not ranges:
            continue
        described.add(name)

        def brick(nodes: set[Any]) -> set[str]:
            if not nodes:
                return {FALLBACK_CLASS}
            return {ontology.local(node) for node in nodes if ontology.is_brick(node)} & known

        pairs[name].update((s, d) for s in brick(domains) for d in brick(ranges))
    return pairs, described


def _inverses(ontology: _Ontology) -> dict[str, str]:
    from rdflib.namespace import OWL, RDF

    graph = ontology.graph
    properties = set(ontology.properties)
    found: dict[str, set[str]] = defaultdict(set)
    for subject, inverse in graph.subject_objects(OWL.inverseOf):
        if ontology.is_brick(subject) and ontology.is_brick(inverse):
            a, b = ontology.local(subject), ontology.local(inverse)
            if a in properties and b in properties:
                found[a].add(b)
                found[b].add(a)
    for name in properties:
        if (ontology.uri(name), RDF.type, OWL.SymmetricProperty) in graph:
            found[name].add(name)
    inverses = {}
    for name, candidates in found.items():
        if len(candidates) > 1:
            raise CatalogBuildError(f"relationship {name} has several inverses: {sorted(candidates)}")
        inverses[name] = candidates.pop()
    return inverses


def build_catalog(graph: Graph, version: str = DEFAULT_BRICK_VERSION, older: Sequence[Graph] = ()) -> dict[str, Any]:
    """The catalog document for one Brick version, with aliases for the class names of the ``older``
    ontologies (newest first): plain JSON types, every list sorted."""
    ontology = _Ontology(graph)
    prefix = prefix_for(version)
    ancestors = {name: _ancestors(ontology.parents, name) for name in ontology.classes}
    entity_types = _entity_types(ontology, prefix, ancestors)
    inverses = _inverses(ontology)
    relationship_types = _relationship_types(prefix, _relationship_ends(ontology, ancestors, inverses), inverses)
    return {
        "catalogVersion": CATALOG_FORMAT_VERSION,
        "brickVersion": ontology.version_info or version,
        "description": (
            f"Generated by `erapi catalog build --brick-version {version}` from the Brick.ttl that brickschema "
            f"ships for Brick {version}; do not edit by hand (see docs/CATALOG.md)."
        ),
        "entityTypes": entity_types,
        "relationshipTypes": relationship_types,
        "aliases": {**older_version_aliases(ontology, prefix, older), **deprecated_aliases(ontology, prefix),
                    **starter_aliases(entity_types, relationship_types, ancestors, prefix)},
    }


def _entity_types(ontology: _Ontology, prefix: str, ancestors: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    top_level = set(top_level_classes(ontology))
    return [
        {
            "name": prefix + name,
            "brickClass": name,
            "parents": [prefix + parent for parent in ontology.parents[name]],
            "brickEntityType": prefix + _top_level_of(name, ancestors[name], top_level),
        }
        for name in ontology.classes
    ]


def _relationship_ends(ontology: _Ontology, ancestors: dict[str, dict[str, int]],
                       inverses: dict[str, str]) -> dict[str, set[tuple[str, str]]]:
    """Each relationship's (source class, destination class) pairs: from its shapes and its domain and range;
    the fallback pair when neither it nor its inverse describes any; an inverse's pairs are its own reversed."""
    shape_pairs, shape_described = _shape_ends(ontology, ancestors)
    range_pairs, range_described = _domain_range_ends(ontology)
    described = shape_described | range_described
    pairs: dict[str, set[tuple[str, str]]] = {
        name: shape_pairs.get(name, set()) | range_pairs.get(name, set()) for name in ontology.properties
    }
    for name in ontology.properties:
        inverse = inverses.get(name)
        if not pairs[name] and name not in described and (inverse is None or inverse not in described):
            pairs[name] = {(FALLBACK_CLASS, FALLBACK_CLASS)}
    for name, inverse in inverses.items():
        pairs[inverse] |= {(destination, source) for source, destination in pairs[name]}
    return pairs


def _relationship_types(prefix: str, pairs: dict[str, set[tuple[str, str]]],
                        inverses: dict[str, str]) -> list[dict[str, Any]]:
    """One relationship type per relationship and pair of end classes, sorted by name (names must not collide)."""
    relationship_types = []
    for name in pairs:
        inverse = inverses.get(name)
        for source, destination in sorted(pairs[name]):
            relationship_types.append({
                "name": f"{prefix}{name}_{source}_{destination}",
                "sourceEntityType": prefix + source,
                "destinationEntityType": prefix + destination,
                "brickRelationshipName": name,
                "brickRelationshipType": prefix + name,
                "inverse": f"{prefix}{inverse}_{destination}_{source}" if inverse else None,
            })
    relationship_types.sort(key=lambda doc: doc["name"])
    names = [doc["name"] for doc in relationship_types]
    if len(set(names)) != len(names):
        # Class names contain underscores, so two different pairs could spell the same name.
        collisions = sorted({name for name in names if names.count(name) > 1})
        raise CatalogBuildError(f"relationship type names collide: {collisions}")
    return relationship_types


def deprecated_aliases(ontology: _Ontology, prefix: str) -> dict[str, str]:
    """Names the ontology marks ``owl:deprecated`` with a ``brick:isReplacedBy`` brick class: old name -> the
    replacement's name (``Condenser`` -> ``Condensing_Unit``, ``Chilled_Water_Supply_Temperature_Sensor`` ->
    ``Leaving_Chilled_Water_Temperature_Sensor``), whether or not the ontology still defines the old name as a class
    (docs/CATALOG.md)."""
    return {prefix + term: prefix + replacement for term, replacement in ontology.replacements.items()}


def older_versions(version: str) -> list[str]:
    """The Brick versions brickschema or erapi ships before ``version``, newest first."""
    return sorted((found for found in {*available_versions(), *shipped_versions()}
                   if version_key(found) < version_key(version)), key=version_key, reverse=True)


def older_version_aliases(ontology: _Ontology, prefix: str, graphs: Iterable[Graph]) -> dict[str, str]:
    """Class names of older Brick versions that this one no longer has -> the class it stands for now.

    ``graphs`` are the older ontologies, newest first; a name takes its meaning from the newest one that
    defines it. The class it stands for is the one this version still has (or replaces it by) that is the
    nearest at or above it in that ontology's own rdfs:subClassOf hierarchy; ties go to the alphabetically
    first. A name with no such class (SHACL shapes, property groups) gets no alias and stays unknown.
    """
    current = {name: name for name in ontology.classes} | ontology.replacements
    aliases: dict[str, str] = {}
    for graph in graphs:
        classes, parents = _class_hierarchy(graph, _brick_namespace(graph))
        for name in classes:
            if name in current or prefix + name in aliases:
                continue
            reach = sorted((steps, current[ancestor]) for ancestor, steps in _ancestors(parents, name).items()
                           if ancestor in current)
            if reach:
                aliases[prefix + name] = prefix + reach[0][1]
    return dict(sorted(aliases.items()))


def starter_aliases(entity_types: list[dict], relationship_types: list[dict], ancestors: dict[str, dict[str, int]],
                    prefix: str) -> dict[str, str]:
    """Old ``BRICK_0_4__`` name -> generated name, for every entity and relationship type of the starter set.

    A class maps to the class of the same name, or to what Brick 1.x renamed it to. A relationship maps to
    the generated type of the same name after renaming; when there is none, to the generated type of the
    same (renamed) relationship whose ends are the nearest classes at or above the old ends.
    """
    classes = {doc["brickClass"] for doc in entity_types}
    by_relationship: dict[str, list[dict]] = defaultdict(list)
    for doc in relationship_types:
        by_relationship[doc["brickRelationshipName"]].append(doc)

    def current_class(old: str) -> str:
        new = RENAMED_CLASSES.get(old, old)
        if new not in classes:
            raise CatalogBuildError(f"starter class {old} has no counterpart in this Brick version")
        return new

    aliases = {STARTER_PREFIX + old: prefix + current_class(old) for old in STARTER_ENTITY_CLASSES}
    for relationship, source, destination in STARTER_RELATIONSHIPS:
        name = RENAMED_RELATIONSHIPS.get(relationship, relationship)
        new_source, new_destination = current_class(source), current_class(destination)
        reach_source = {new_source: 0, **ancestors[new_source]}
        reach_destination = {new_destination: 0, **ancestors[new_destination]}
        candidates = sorted(
            (reach_source[doc["sourceEntityType"][len(prefix):]]
             + reach_destination[doc["destinationEntityType"][len(prefix):]], doc["name"])
            for doc in by_relationship[name]
            if doc["sourceEntityType"][len(prefix):] in reach_source
            and doc["destinationEntityType"][len(prefix):] in reach_destination
        )
        if not candidates:
            raise CatalogBuildError(
                f"starter relationship {relationship}_{source}_{destination} has no counterpart in this Brick version")
        aliases[f"{STARTER_PREFIX}{relationship}_{source}_{destination}"] = candidates[0][1]
    return dict(sorted(aliases.items()))


def render(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def output_path(directory: Path, version: str) -> Path:
    return directory / f"brick-{version}.json"


def build_file(version: str = DEFAULT_BRICK_VERSION, directory: Path = CATALOG_DIR) -> tuple[Path, dict[str, Any]]:
    """Generates, checks that the catalog loader accepts the result, and writes it."""
    older = [load_brick_graph(found) for found in older_versions(version)]
    document = build_catalog(load_brick_graph(version), version, older)
    Catalog(document["entityTypes"], document["relationshipTypes"], document["aliases"])
    path = output_path(directory, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render(document))
    return path, document


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--brick-version", default=DEFAULT_BRICK_VERSION,
                        help=f"Brick version to read (default {DEFAULT_BRICK_VERSION})")
    parser.add_argument("--output", type=Path, default=CATALOG_DIR,
                        help=f"directory to write brick-<version>.json into (default {CATALOG_DIR})")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="erapi catalog build",
        description="Generate the type catalog file from the Brick ontology shipped by brickschema.",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


def _summary(path: Path, document: dict[str, Any]) -> Iterable[str]:
    relationships = {doc["brickRelationshipName"] for doc in document["relationshipTypes"]}
    yield f"wrote {path}"
    yield (f"Brick {document['brickVersion']}: {len(document['entityTypes'])} entity types, "
           f"{len(relationships)} relationships in {len(document['relationshipTypes'])} relationship types, "
           f"{len(document['aliases'])} aliases")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Build the file the parsed arguments name; 1 with one line on stderr when it cannot be built."""
    try:
        path, document = build_file(args.brick_version, args.output)
    except CatalogBuildError as error:
        print(f"erapi catalog build: {error}", file=sys.stderr)
        return 1
    for line in _summary(path, document):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
