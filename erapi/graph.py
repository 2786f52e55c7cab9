"""Walking the relationship graph across collections, a whole frontier per storage call.

A *step* says which relationships one hop follows from each entity: outgoing, incoming, or both, optionally
of some relationship types. Naming a type also follows its inverse stored the other way round (``A feeds B``
and ``B isFedBy A`` state one fact), so a question is answered whichever way the client wrote the fact down.

Visibility is the rule of the one-hop edges endpoint, applied at every hop: an edge is followed only when the
caller may read the collection it is stored in *and* the collection of its other end, so a collection the
caller cannot read contributes neither edges nor entities, at any depth. Each hop is one storage call for the
whole frontier (``find_frontier_edges``); the collections met are checked once per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Mapping

from erapi.brick_relationships import catalog_brick_name
from erapi.catalog import Catalog, RelationshipType, spellings
from erapi.errors import InvalidRequest
from storage_plugins.base import Document, FrontierQuery, Storage

Key = tuple[str, str]  # (collection, entity id)
DIRECTIONS = ("outgoing", "incoming", "both")
# Brick relationships followed to any depth in one request. Brick.ttl (1.1 to 1.4) declares none of its
# properties owl:TransitiveProperty; these are the ones its documentation describes as chains.
TRANSITIVE = frozenset({"feeds", "isFedBy", "hasPart", "isPartOf", "hasLocation", "isLocationOf"})


@dataclass(frozen=True)
class Step:
    """Which relationships one hop follows (see FrontierQuery): sides, and per side the type spellings."""

    outgoing: bool
    incoming: bool
    outgoing_types: frozenset[str] | None = None
    incoming_types: frozenset[str] | None = None

    def query(self, frontier: Iterable[Key], limit: int | None) -> FrontierQuery:
        return FrontierQuery(frozenset(frontier), outgoing=self.outgoing, incoming=self.incoming,
                             outgoing_types=self.outgoing_types, incoming_types=self.incoming_types, limit=limit)

    def follow(self, edge: Document, frontier: set[Key] | dict[Key, object]) -> list[tuple[Key, Key]]:
        """(from, to) for each way this step follows ``edge`` from ``frontier``: to its destination when followed
        outgoing, to its source when followed incoming (both, for an edge between two frontier entities)."""
        source, destination = ends(edge)
        pairs = []
        if self.outgoing and source in frontier and _typed(edge, self.outgoing_types):
            pairs.append((source, destination))
        if self.incoming and destination in frontier and _typed(edge, self.incoming_types):
            pairs.append((destination, source))
        return pairs


def _typed(edge: Document, types: frozenset[str] | None) -> bool:
    return types is None or edge.get("relationshipType") in types


def ends(edge: Document) -> tuple[Key, Key]:
    """(source, destination) of a stored relationship; no destination collection means its own."""
    home = edge["sourceERCollectionId"]
    return (home, edge["sourceEntityId"]), (edge.get("destinationERCollectionId") or home, edge["destinationEntityId"])


def relationship_types(catalog: Catalog, name: str, where: str) -> list[RelationshipType]:
    """The catalog types a client's name stands for: a type name or alias, or a Brick relationship (``feeds``,
    ``BRICK_1_4__feeds``, a Brick 0.4 name) meaning every type of it. InvalidRequest naming ``where`` else."""
    found = catalog.relationship_type(name)
    if found is not None:
        return [found]
    brick = catalog_brick_name(catalog, name) or catalog_brick_name(catalog, _in_catalog_scheme(catalog, name))
    if brick is None:
        raise invalid(where, f"{name} is neither a relationship type nor a Brick relationship of the catalog")
    return catalog.by_brick_relationship[brick]


def entity_classes(catalog: Catalog, name: str, where: str) -> frozenset[str]:
    """Every stored spelling of the class a client named (a type name, an alias or a bare Brick class such as
    ``VAV``) and of its subclasses. InvalidRequest naming ``where`` when the catalog has no such class."""
    found = catalog.entity_type(name) or catalog.entity_type(_in_catalog_scheme(catalog, name))
    if found is None:
        raise invalid(where, f"{name} is not an entity type of the catalog")
    return spellings(catalog, catalog.descendants(found.name))


def of_classes(document: Mapping[str, Any], classes: frozenset[str]) -> bool:
    """Whether an entity's type or one of its additionalEntityTypes is among ``classes`` (from entity_classes)."""
    return document.get("entityType") in classes or not classes.isdisjoint(document.get("additionalEntityTypes", ()))


def invalid(where: str, message: str) -> InvalidRequest:
    """A 400 naming the parameter or field (``where``) at fault, in the message and in ``errors``."""
    return InvalidRequest(f"{where}: {message}", errors=[{"path": where, "message": message}])


def _in_catalog_scheme(catalog: Catalog, name: str) -> str:
    """A bare Brick name (``feeds``, ``VAV``) in the catalog's own naming scheme (``BRICK_1_4__feeds``)."""
    any_name = next(iter(catalog.relationship_types), "")
    return f"{any_name.split('__', 1)[0]}__{name}" if "__" not in name else name


def step(catalog: Catalog, direction: str, types: list[RelationshipType] | None) -> Step:
    """The step for a direction and, optionally, relationship types (each also followed as its inverse)."""
    if types is None:
        return Step(outgoing=direction != "incoming", incoming=direction != "outgoing")
    forward = spellings(catalog, {t.name for t in types})
    inverse = spellings(catalog, {t.inverse for t in types if t.inverse})
    if direction == "both":
        both = forward | inverse
        return Step(True, True, both, both)
    ahead, behind = (forward, inverse) if direction == "outgoing" else (inverse, forward)
    return Step(outgoing=bool(ahead), incoming=bool(behind), outgoing_types=ahead, incoming_types=behind)


def transitive(types: list[RelationshipType]) -> bool:
    return bool(types) and all(t.brick_relationship_name in TRANSITIVE for t in types)


@dataclass
class Visibility:
    """Which collections the caller may read, asked once per collection per request."""

    ask: Callable[[set[str]], Awaitable[set[str]]]  # the readable ones among the collections given
    readable: set[str] = field(default_factory=set)
    hidden: set[str] = field(default_factory=set)

    async def visible(self, edges: list[Document]) -> list[Document]:
        """The edges whose own collection and both ends' collections the caller may read."""
        met = {key[0] for edge in edges for key in (*ends(edge), (edge["sourceERCollectionId"], ""))}
        unknown = met - self.readable - self.hidden
        if unknown:
            allowed = await self.ask(unknown)
            self.readable |= allowed
            self.hidden |= unknown - allowed
        return [edge for edge in edges if not any(key[0] in self.hidden for key in ends(edge))]


async def hop(storage: Storage, visibility: Visibility, how: Step, frontier: Iterable[Key],
              limit: int | None) -> tuple[list[Document], bool]:
    """The visible edges one step follows from ``frontier`` (one storage call), and whether ``limit`` cut them."""
    found = await storage.find_frontier_edges(how.query(frontier, None if limit is None else limit + 1))
    cut = limit is not None and len(found) > limit
    return await visibility.visible(found[:limit] if cut else found), cut


EDGES_PER_NODE = 4  # a hop reads at most this many edges per node of the limit: an explosion stops there


@dataclass
class Subgraph:
    """What a walk reached: each entity with the hop count it was first reached at, and the edges followed
    between reached entities, by (collection, id)."""

    depth: dict[Key, int]
    edges: dict[Key, Document] = field(default_factory=dict)
    truncated: bool = False

    def add(self, edges: list[Document], how: Step, frontier: set[Key], level: int, node_limit: int) -> set[Key]:
        """Record one hop's edges; return the entities reached for the first time (the next frontier)."""
        reached: set[Key] = set()
        for edge in edges:
            for _, key in how.follow(edge, frontier):
                if key in self.depth:
                    continue
                if len(self.depth) >= node_limit:
                    self.truncated = True
                    continue
                self.depth[key] = level
                reached.add(key)
            source, destination = ends(edge)
            if source in self.depth and destination in self.depth:
                self.edges[(edge["sourceERCollectionId"], edge["id"])] = edge
        return reached


async def traverse(storage: Storage, visibility: Visibility, start: Key, how: Step, depth: int | None,
                   node_limit: int) -> Subgraph:
    """Breadth first from ``start``, ``depth`` hops (None: until nothing new is reached), each entity visited
    once however many cycles lead back to it, at most ``node_limit`` entities: one storage call per hop."""
    graph = Subgraph({start: 0})
    frontier, level = {start}, 0
    while frontier and (depth is None or level < depth):
        level += 1
        found, cut = await hop(storage, visibility, how, frontier, EDGES_PER_NODE * node_limit)
        frontier = graph.add(found, how, frontier, level, node_limit)
        if cut:
            graph.truncated = True
            break
    return graph


async def entities_of(storage: Storage, keys: Iterable[Key]) -> dict[Key, Document]:
    """The active entities among ``keys``, in one storage call across their collections."""
    found = await storage.get_current_across("entities", keys)
    return {key: document for key, document in found.items() if document.get("isActive", True) is not False}
