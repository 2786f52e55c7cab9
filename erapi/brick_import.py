"""``erapi import FILE``: a Brick model (any RDF file rdflib reads) into a running service, over its API.

The model becomes entities (every subject with a Brick class), relationships (Brick relationship predicates
between two entities, sent by their Brick name) and kept statements (everything else about an entity). The
importer registers the collections it needs, sends every entity before any relationship, in ``async: true``
jobs of up to 10,000 items, follows each job's tracker with a progress bar, and ends with a summary
(docs/BRICK.md). Ids are the entities' IRIs, and a relationship's id is derived from its triple, so running
the same import again sends the same items, and the service writes no new version of any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from erapi import brick_rdf
from erapi.brick_collections import CATALOG_PREFIX, CollectionOf, collection_rule
from erapi.brick_graph import Literal, Term, Triples, read_file
from erapi.brick_http import AiohttpTransport, StdlibTransport, Unreachable
from erapi.brick_relationships import catalog_brick_name
from erapi.catalog import Catalog

RDF_TYPE, RDFS_LABEL = brick_rdf.RDF_TYPE, brick_rdf.RDFS_LABEL
JOB_ITEMS = 10_000  # the service's bound for one async job (jobs.max_items)
BRICK_CLASS = re.compile(r"^https?://brickschema\.org/schema/(?:[0-9.]+/)?Brick#(\w+)$")
RELATIONSHIP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://erapi.example/brick-import/relationship")
_NAMESPACE_BYTES = RELATIONSHIP_NAMESPACE.bytes
TRACKER_PAGE = 1000
Transport = StdlibTransport | AiohttpTransport
FINAL_STATES = ("Completed", "Failed")
# Seconds between two reads of a job's record (_next_poll), from 5 ms to 0.25 s: a long job is read at most four
# times a second (on FerretDB one read is four queries, 0.2-0.7 s).
POLL_SHARE, FIRST_POLL_SECONDS, MOST_POLL_SECONDS = 0.1, 0.005, 0.25


@dataclass
class Model:
    """What the importer will send: per collection, its entities, and its relationships (by source)."""

    entities: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    relationships: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unmapped: Counter = field(default_factory=Counter)  # statements not sent, by kind
    collections: dict[str, str] = field(default_factory=dict)  # entity IRI -> its collection
    taken: set = field(default_factory=set)  # the blank nodes sent along with an entity or a relationship
    # the relationship statements found by map_entities, made items by map_relationships:
    # (subject, predicate, Brick relationship name, object)
    found: list[tuple[str, str, str, str]] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(len(items) for items in getattr(self, kind).values())


@dataclass
class Summary:
    written: Counter = field(default_factory=Counter)  # by kind: entities, relationships
    unchanged: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)  # by message
    unmapped: Counter = field(default_factory=Counter)
    refused_ids: set[str] = field(default_factory=set)
    statements: int = 0  # in the file
    # reading (the parse), mapping, and by kind: from the first job sent to the last one finished
    seconds: Counter = field(default_factory=Counter)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # by kind: first job sent, last finished

    def timed(self, kind: str, started: float, finished: float) -> None:
        first, last = self.spans.get(kind, (started, finished))
        self.spans[kind] = (min(first, started), max(last, finished))
        self.seconds[kind] = self.spans[kind][1] - self.spans[kind][0]

    def lines(self) -> list[str]:
        lines = [f"Read {self.statements} statements in {self.seconds['reading']:.2f} s, "
                 f"mapped in {self.seconds['mapping']:.2f} s ({self.seconds['mapping while sending']:.2f} s of it "
                 f"while the entity jobs ran)"]
        lines += [f"{kind.capitalize()}: {self.written[kind]} written, {self.unchanged[kind]} unchanged, "
                  f"{self.refused[kind]} refused in {self.seconds[kind]:.2f} s"
                  for kind in ("entities", "relationships")]
        if self.refusals:
            lines.append("Refused, by message:")
            lines += [f"  {count:6d}  {message}" for message, count in self.refusals.most_common()]
        if self.unmapped:
            lines.append("Statements not imported, by kind:")
            lines += [f"  {count:6d}  {kind}" for kind, count in self.unmapped.most_common()]
        return lines


# ---- the model ------------------------------------------------------------------------------------------------


def map_model(graph: Triples, catalog: Catalog, collection_of: CollectionOf) -> Model:
    model = map_entities(graph, catalog, collection_of)
    map_relationships(graph, model)
    return model


def map_entities(graph: Triples, catalog: Catalog, collection_of: CollectionOf) -> Model:
    """The entities with their kept statements, and their relationship statements found but not yet made
    items: the entity jobs can go while map_relationships runs."""
    model = Model()
    classes = functools.lru_cache(maxsize=None)(functools.partial(_classes, catalog))  # EBU3B: 6,176 entities, 320 sets
    class_name = _class_names()
    for subject, pairs in graph.about.items():
        names = [name for predicate, value in pairs if predicate == RDF_TYPE and (name := class_name(value))]
        if names and isinstance(subject, str):
            item = _entity(subject, *classes(tuple(sorted(set(names)))))
            known_type = item["entityType"] if catalog.entity_type(item["entityType"]) else CATALOG_PREFIX + "Entity"
            model.collections[subject] = collection_of(subject, known_type)
            model.entities.setdefault(model.collections[subject], []).append(item)
    _add_statements(graph, catalog, model, class_name)
    return model


def _class_names() -> Callable[[Term], str | None]:
    """The Brick class name of an rdf:type value (None: not a Brick class), each value matched once: EBU3B has
    6,180 rdf:type statements and 329 distinct classes."""
    known: dict[Term, str | None] = {}

    def class_name(value: Term) -> str | None:
        if value not in known:
            found = BRICK_CLASS.match(value) if isinstance(value, str) else None
            known[value] = found.group(1) if found else None
        return known[value]

    return class_name


def map_relationships(graph: Triples, model: Model) -> None:
    """The relationship items of the statements map_entities found (by the collection of their source), then
    the count of the statements left out."""
    names = brick_rdf.relationship_names(graph)  # an export's erapi:relationshipName annotations
    collections = model.collections
    for subject, predicate, relationship, value in model.found:
        node, name = names.get((subject, predicate, value), (None, relationship.split("__", 1)[1]))
        if node is not None:
            model.taken.add(node)
        model.relationships.setdefault(collections[subject], []).append(
            _relationship(subject, relationship, value, name, (collections[subject], collections[value])))
    _count_the_rest(graph, model, collections, model.taken)


def _classes(catalog: Catalog, names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The most specific known class is the entityType (deepest, then first by name), the others go along."""
    type_names = sorted({CATALOG_PREFIX + name for name in names})
    known = [name for name in type_names if catalog.entity_type(name) is not None]
    ranked = sorted(known, key=lambda name: (-catalog.depth(catalog.entity_type(name).name), name))
    entity_type = ranked[0] if ranked else type_names[0]  # an unknown class: the service says why it refuses
    return entity_type, tuple(name for name in type_names if name != entity_type)


def _entity(subject: str, entity_type: str, others: tuple[str, ...]) -> dict[str, Any]:
    item = {"id": subject, "entityType": entity_type, "entityName": _local_name(subject)}
    if others:
        item["additionalEntityTypes"] = list(others)
    return item


def _local_name(iri: str) -> str:
    """What follows the IRI's last ``#``, ``/`` or ``:`` (trailing ``/`` and ``#`` aside), else the IRI."""
    stripped = iri.rstrip("/#")
    local = stripped[max(stripped.rfind("#"), stripped.rfind("/"), stripped.rfind(":")) + 1:]
    return local[:1024] or iri[:1024]


def _add_statements(graph: Triples, catalog: Catalog, model: Model, class_name: Callable[[Term], str | None]
                    ) -> None:
    """Kept statements of every entity; its relationship statements go to ``model.found``."""
    items = {item["id"]: item for items in model.entities.values() for item in items}
    relationship_of, collections = _relationship_names(catalog), model.collections
    for subject in collections:
        item, statements = items[subject], []
        for predicate, value in sorted(graph.about[subject], key=brick_rdf.statement_order):
            if predicate == RDF_TYPE and class_name(value):
                continue
            relationship = relationship_of(predicate) if value in collections else None
            if relationship is not None:
                model.found.append((subject, predicate, relationship, value))
                continue
            statement = brick_rdf.statement_of(graph, predicate, value, seen=model.taken)
            if isinstance(statement, str):
                model.unmapped[statement] += 1
            else:
                statements.append(statement)
            if predicate == RDFS_LABEL and isinstance(value, Literal) and value.value:
                item["entityName"] = value.value[:1024]
        if len(statements) > brick_rdf.MAX_STATEMENTS:
            model.unmapped[f"statements beyond {brick_rdf.MAX_STATEMENTS} about one entity"] += (
                len(statements) - brick_rdf.MAX_STATEMENTS)
            statements = statements[:brick_rdf.MAX_STATEMENTS]
        if statements:
            item["brickStatements"] = statements


def _relationship_names(catalog: Catalog) -> Callable[[str], str | None]:
    """``_relationship_name`` for one import: each predicate looked up once."""
    known: dict[str, str | None] = {}

    def relationship_of(predicate: str) -> str | None:
        if predicate not in known:
            known[predicate] = _relationship_name(catalog, predicate)
        return known[predicate]

    return relationship_of


def _relationship_name(catalog: Catalog, predicate: str) -> str | None:
    if not predicate.startswith(brick_rdf.BRICK):
        return None
    sent = CATALOG_PREFIX + predicate[len(brick_rdf.BRICK):]
    return sent if catalog_brick_name(catalog, sent) is not None else None


def _relationship(subject: str, brick_name: str, value: str, name: str,
                  collections: tuple[str, str]) -> dict[str, Any]:
    """The relationship item of one statement; ``collections``: its source's and its destination's."""
    return {"id": relationship_id(f"{collections[0]}/{subject} {brick_name} {value}"),
            "sourceEntityId": subject, "destinationEntityId": value, "brickRelationshipType": brick_name,
            "relationshipName": name[:1024], "destinationERCollectionId": collections[1]}


def relationship_id(name: str) -> str:
    """``str(uuid.uuid5(RELATIONSHIP_NAMESPACE, name))``, formatted from the SHA-1 directly: uuid.UUID's checks
    and conversions took twice the hash's time (EBU3B's 8,387 ids: 0.05 s -> 0.02 s, in the import's mapping)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + name.encode()).hexdigest()
    variant = "89ab"[int(digest[16], 16) & 3]  # RFC 4122's variant: the top two bits of byte 8 are 10
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{variant}{digest[17:20]}-{digest[20:32]}"


def _count_the_rest(graph: Triples, model: Model, entities: dict[str, str], taken: set) -> None:
    """Every statement about something that is neither an entity nor a blank node taken along, by kind."""
    for subject, pairs in graph.about.items():
        if subject not in entities and subject not in taken:
            for predicate, _value in pairs:
                model.unmapped[f"statement about something that is not a Brick entity ({graph.qname(predicate)})"] += 1


# ---- sending ----------------------------------------------------------------------------------------------------


class Client:
    """The service's API as the importer uses it: collections, async jobs, trackers."""

    def __init__(self, transport: Transport, token: str) -> None:
        self.transport = transport
        self.headers = {"Authorization": f"Bearer {token}"}
        self.fresh: set[str] = set()  # the collections this import registered

    async def ensure_collection(self, collection_id: str) -> bool:
        """Registers the collection unless it exists; True when this call registered it."""
        answer = await self.transport.request(
            "POST", "/apollo/collections", {**self.headers, "Content-Type": "application/json"},
            orjson.dumps({"collectionId": collection_id, "collectionName": collection_id}), waiting=True)
        if answer.status not in (201, 409):  # 409: it exists; the writes say whether the caller may use it
            raise ImportFailed(f"registering ERCollection {collection_id}: {answer.message()}")
        return answer.status == 201

    async def submit(self, kind: str, collection_id: str, body: bytes, waiting: bool = False) -> str:
        """The transaction id of the job of ``body`` (its items as JSON); ``waiting``: StdlibTransport.request's."""
        headers = {**self.headers, "ercollectionid": collection_id, "async": "true",
                   "Content-Type": "application/json"}
        while True:
            answer = await self.transport.request("POST", f"/apollo/er/{kind}", headers, body, waiting=waiting)
            if answer.status == 202:
                return answer.json()["transactionId"]
            if answer.status != 429:
                raise ImportFailed(f"sending {kind} to ERCollection {collection_id}: {answer.message()}")
            await asyncio.sleep(float(answer.retry_after or "1"))

    async def records(self, collection_id: str, transaction_id: str, token: str | None, limit: int = TRACKER_PAGE,
                      state: str | None = None) -> tuple[list[dict], str | None]:
        query = {"transactionid": transaction_id, "limit": str(limit), **({"state": state} if state else {})}
        if token:
            query["continuationToken"] = token
        answer = await self.transport.request("GET", f"/apollo/status/logs?{urllib.parse.urlencode(query)}",
                                              {**self.headers, "ercollectionid": collection_id})
        if answer.status != 200:
            raise ImportFailed(f"following job {transaction_id}: {answer.message()}")
        body = answer.json()
        return body["data"], body["paging"]["continuationToken"]


class ImportFailed(Exception):
    """The import cannot go on: the service refused a whole request, or could not be reached."""


async def wait_for(client: Client, collection_id: str, transaction_id: str,
                   advance: Callable[[int], None]) -> dict[str, int]:
    """The job's final ``jobData`` (its items done and failed), once it is complete; ``advance`` counts finished
    items. Only the job's own record is read: cheap for the service, which is busy applying the job."""
    reported, started, progress = 0, time.monotonic(), (0.0, 0)
    while True:
        [job], _ = await client.records(collection_id, transaction_id, None, limit=1)
        counts = job.get("jobData", {})
        finished = counts.get("done", 0) + counts.get("failed", 0)
        advance(finished - reported)
        reported = finished
        if job["state"] in FINAL_STATES:
            return counts
        elapsed = time.monotonic() - started
        await asyncio.sleep(_next_poll(elapsed, progress, finished, counts.get("total", 0)))
        progress = (elapsed, finished)


async def item_records(client: Client, collection_id: str, transaction_id: str, state: str | None = None
                       ) -> list[dict]:
    """Every item record of a complete job (in ``state``, if given), in item order (read while the job ran, page
    by page, they made the import no sooner: the service serves them between the job's chunks either way)."""
    records, token = [], None
    while True:
        page, token = await client.records(collection_id, transaction_id, token, state=state)
        records += [record for record in page if record["requestObject"] != "Job"]
        if token is None:
            return records


def _next_poll(elapsed: float, progress: tuple[float, int], finished: int, total: int) -> float:
    """Seconds until the job's record is read again: half the time the job needs, at its pace since the previous
    read (``progress``: the time and the finished count then), to finish; until two reads have seen items
    finished, a tenth of the time it has run. A 0.3 s job of the memory plugin is read about 10 times instead of
    about 30 with a tenth of its time throughout (each read is served between two of the job's chunks)."""
    since, more = elapsed - progress[0], finished - progress[1]
    if progress[1] <= 0 or more <= 0:
        wait = elapsed * POLL_SHARE
    else:
        wait = since * max(total - finished, 0) / more / 2
    return min(max(wait, FIRST_POLL_SECONDS), MOST_POLL_SECONDS)


async def send(client: Client, model: Model, advance: Callable[[int], None], summary: Summary,
               map_rest: Callable[[], None] = lambda: None) -> Summary:
    """Each collection's entities at once; each collection's relationships as soon as the entities of that
    collection and of every collection they point to are written (a relationship's ends must exist when the
    service checks it). Each job is followed by its own tracker. ``map_rest`` (what mapping is left: the
    relationship items) runs once the entity jobs are sent, while the service applies them."""
    registered = await asyncio.gather(*(client.ensure_collection(collection_id)
                                        for collection_id in sorted(model.entities)))
    # nothing was in a collection this import registered: no item sent there can be unchanged
    client.fresh = {collection_id for collection_id, new in zip(sorted(model.entities), registered) if new}
    started = time.monotonic()
    sent = await asyncio.gather(*(_submit(client, "entities", collection_id, _jobs(items), waiting=True)
                                  for collection_id, items in sorted(model.entities.items())))
    map_rest()
    entity_jobs = {jobs[0][0]: asyncio.get_running_loop().create_future() for jobs in sent if jobs}
    await asyncio.gather(*(
        _follow(client, summary, "entities", jobs, advance, started, entity_jobs[jobs[0][0]]) for jobs in sent if jobs
    ), *(_relationships_after(entity_jobs, client, summary, collection_id, items, advance)
         for collection_id, items in sorted(model.relationships.items())))
    return summary


async def _relationships_after(entity_jobs: dict[str, asyncio.Future], client: Client, summary: Summary,
                               collection_id: str, items: list[dict], advance: Callable[[int], None]) -> None:
    """The collection's relationships once the entity jobs of every collection they join are complete (their
    item records may still be being read)."""
    ends = {collection_id, *(item["destinationERCollectionId"] for item in items)}
    jobs = _jobs(items)  # serialised while the service applies the entity jobs
    await asyncio.gather(*(entity_jobs[end] for end in sorted(ends) if end in entity_jobs))
    started = time.monotonic()
    await _follow(client, summary, "relationships", await _submit(client, "relationships", collection_id, jobs),
                  advance, started)


def _jobs(items: list[dict]) -> list[tuple[list[dict], bytes]]:
    """The items in jobs of up to JOB_ITEMS, each with its request body."""
    chunks = [items[start:start + JOB_ITEMS] for start in range(0, len(items), JOB_ITEMS)]
    return [(chunk, orjson.dumps(chunk)) for chunk in chunks]


async def _submit(client: Client, kind: str, collection_id: str, jobs: list[tuple[list[dict], bytes]],
                  waiting: bool = False) -> list[tuple]:
    """The collection's jobs of one kind sent: (collection, items, transaction id) each."""
    transaction_ids = await asyncio.gather(*(client.submit(kind, collection_id, body, waiting)
                                             for _items, body in jobs))
    return [(collection_id, items, transaction_id) for (items, _body), transaction_id in zip(jobs, transaction_ids)]


async def _follow(client: Client, summary: Summary, kind: str, jobs: list[tuple], advance: Callable[[int], None],
                  started: float, complete: asyncio.Future | None = None) -> None:
    """Each job's records once it is complete, tallied; the kind's time from ``started`` to the last one complete.
    ``complete`` is resolved then, before the records are read."""
    finals = await asyncio.gather(*(wait_for(client, collection_id, transaction_id, advance)
                                    for collection_id, _items, transaction_id in jobs))
    summary.timed(kind, started, time.monotonic())
    if complete is not None:
        complete.set_result(None)
    await asyncio.gather(*(_results(client, summary, kind, job, counts) for job, counts in zip(jobs, finals)))


async def _results(client: Client, summary: Summary, kind: str, job: tuple, counts: dict[str, int]) -> None:
    """The job's written, unchanged and refused items, from its records; in a collection this import registered,
    from its counts and its failed records alone (a tenth of the service's work for EBU3B's import)."""
    collection_id, items, transaction_id = job
    if collection_id not in client.fresh:
        _tally(summary, kind, items, await item_records(client, collection_id, transaction_id))
        return
    failed = await item_records(client, collection_id, transaction_id, "Failed") if counts.get("failed") else []
    by_id = {item["id"]: item for item in items} if failed else {}
    summary.written[kind] += counts.get("done", 0)
    for record in failed:
        _refused(summary, kind, record, by_id[record["serviceData"]["entityId" if kind == "entities"
                                                               else "relationshipId"]])


def _tally(summary: Summary, kind: str, items: list[dict], records: list[dict]) -> None:
    for item, record in zip(items, records):
        if record["state"] == "Failed":
            _refused(summary, kind, record, item)
        elif record["message"].endswith("(unchanged: no new version written)"):
            summary.unchanged[kind] += 1
        else:
            summary.written[kind] += 1


def _refused(summary: Summary, kind: str, record: dict, item: dict) -> None:
    summary.refused[kind] += 1
    summary.refused_ids.add(item["id"])
    summary.refusals[_general(record["message"], item)] += 1


def _general(message: str, item: dict) -> str:
    """The message with the item's own ids taken out, so that refusals for the same reason group together."""
    for key, placeholder in (("sourceEntityId", "<source>"), ("destinationEntityId", "<destination>"),
                             ("id", "<id>")):
        if item.get(key):
            message = message.replace(item[key], placeholder)
    return message


async def run_import(path: Path, url: str, token: str, collection: str, catalog: Catalog, *,
                     split: bool = False, collections_file: Path | None = None, session: Any = None,
                     show_progress: bool = True) -> Summary:
    """Map the file and send it; ``session``: an aiohttp client session to send through (else http.client, a
    quicker start: erapi/brick_http.py). The collections: ``collection``, or one per top-level class (``split``),
    or ``collections_file``'s rules."""
    collection_of = collection_rule(collection, catalog, split=split, path=collections_file)
    transport = StdlibTransport(url) if session is None else AiohttpTransport(session, url)
    try:
        return await _map_and_send(path, transport, token, catalog, collection_of, show_progress)
    except Unreachable as error:
        raise ImportFailed(f"cannot reach the service at {error}") from None
    finally:
        transport.close()


async def _map_and_send(path: Path, transport: Transport, token: str, catalog: Catalog, collection_of: CollectionOf,
                        show_progress: bool) -> Summary:
    started = time.monotonic()
    graph = read_file(path)
    read = time.monotonic()
    model = map_entities(graph, catalog, collection_of)
    summary = Summary(statements=len(graph))
    summary.seconds.update(reading=read - started, mapping=time.monotonic() - read)

    def map_rest() -> None:  # the relationship items, while the service applies the entity jobs
        nonlocal graph
        mapping_started = time.monotonic()
        map_relationships(graph, model)
        del graph  # read no more: freed now, while the service works, not after the last job (3-5 ms)
        model.found.clear()
        model.taken.clear()
        summary.unmapped.update(model.unmapped)
        summary.seconds["mapping while sending"] = time.monotonic() - mapping_started
        summary.seconds["mapping"] += summary.seconds["mapping while sending"]

    with _progress(f"importing {path.name}", model.count("entities") + len(model.found), show_progress) as advance:
        return await send(Client(transport, token), model, advance, summary, map_rest)


@contextlib.contextmanager
def _progress(title: str, total: int, shown: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar's advance(count); rich is imported only when the bar is shown (a quicker ``--quiet``)."""
    if not shown:
        yield lambda _count: None
        return
    from rich.progress import Progress

    with Progress(transient=False) as progress:
        task = progress.add_task(title, total=total)
        yield lambda count: progress.advance(task, count)


def default_collection(path: Path) -> str:
    """The file's name as a collection id: letters, digits, ``_ . : -``, starting with a letter or digit."""
    name = re.sub(r"[^A-Za-z0-9_.:-]", "_", path.stem).lstrip("_.:-")[:100]
    return name or "brick_import"
