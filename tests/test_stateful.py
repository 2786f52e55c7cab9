"""A stateful property test: random sequences of writes, grants and reads, checked against a plain-dict model.

Two principals each own one collection; the rules upsert entities and relationships (also across the two
collections), change grants, and read everything back, as either principal. After every step the storage
must hold exactly what the model holds (contents, and versions that only ever grow by one per write with a
gap-free history), the ACL records must be exactly the grants the collections API made, and every read must
show a principal only what its grants allow. Runs against every storage plugin.

The default run is bounded (a few examples of a few dozen steps); a longer run for a release
(docs/SECURITY.md):

    ERAPI_STATEFUL_EXAMPLES=200 ERAPI_STATEFUL_STEPS=60 python -m pytest tests/test_stateful.py
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid

import orjson
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from erapi.acl import READ, WRITE
from erapi.app import create_app
from erapi.catalog import load_catalog
from erapi.keys import storage_key
from tests.api_fixtures import make_config, token

EXAMPLES = int(os.environ.get("ERAPI_STATEFUL_EXAMPLES", "6"))
STEPS = int(os.environ.get("ERAPI_STATEFUL_STEPS", "25"))

OWNERS = {"north": "alice", "south": "bob"}
COLLECTIONS = tuple(OWNERS)
PRINCIPALS = ("alice", "bob")
RELATIONSHIP_IDS = ("r1", "r2")
# each entity id has a natural type, mostly kept, so that relationships often find fitting ends
NATURAL_TYPE = {"ahu-1": "BRICK_0_4__AHU", "ahu-2": "BRICK_0_4__AHU", "zone-1": "BRICK_0_4__HVAC_Zone",
                "sensor-1": "BRICK_0_4__Temperature_Sensor"}
ENTITY_IDS = tuple(NATURAL_TYPE)
ENTITY_TYPES = tuple(sorted(set(NATURAL_TYPE.values())))
# relationship type -> (ids whose natural type fits the source, ... the destination)
RELATIONSHIP_ENDS = {
    "BRICK_0_4__isFedBy_Equipment_Equipment": (("ahu-1", "ahu-2"), ("ahu-1", "ahu-2")),
    "BRICK_0_4__feeds_Equipment_Location": (("ahu-1", "ahu-2"), ("zone-1",)),
    "BRICK_0_4__hasPoint_Equipment_Point": (("ahu-1", "ahu-2"), ("sensor-1",)),
}
RELATIONSHIP_TYPES = tuple(RELATIONSHIP_ENDS)
ACCESS_CHOICES = ([], [READ], [READ, WRITE], [WRITE])
SERVICE_FIELDS = {"sysData", "isActive", "brickEntityType", "brickEntitySubType", "brickRelationshipName",
                  "brickRelationshipType"}
CATALOG = load_catalog()

names = st.text(alphabet="abcxyz", max_size=3)


def mostly(natural: st.SearchStrategy, anything: st.SearchStrategy) -> st.SearchStrategy:
    """The natural choice four times in five, anything else otherwise."""
    return st.one_of(natural, natural, natural, natural, anything)


@st.composite
def entity_item(draw) -> tuple:
    entity_id = draw(st.sampled_from(ENTITY_IDS))
    entity_type = draw(mostly(st.just(NATURAL_TYPE[entity_id]), st.sampled_from(ENTITY_TYPES)))
    return entity_id, entity_type, draw(names), draw(st.booleans())


@st.composite
def relationship_item(draw) -> tuple:
    kind = draw(st.sampled_from(RELATIONSHIP_TYPES))
    sources, destinations = RELATIONSHIP_ENDS[kind]
    source = draw(mostly(st.sampled_from(sources), st.sampled_from(ENTITY_IDS)))
    destination = draw(mostly(st.sampled_from(destinations), st.sampled_from(ENTITY_IDS)))
    return (draw(st.sampled_from(RELATIONSHIP_IDS)), source, draw(st.sampled_from(COLLECTIONS)), destination,
            kind, draw(names))  # the destination collection: the source's own or the other one


entity_items = st.lists(entity_item(), min_size=1, max_size=4)
relationship_items = st.lists(relationship_item(), min_size=1, max_size=3)


def next_version(previous: tuple[dict, int] | None, document: dict) -> int:
    """A write makes a new version, unless it sends what the current version holds (no version then)."""
    if previous is None:
        return 1
    return previous[1] if previous[0] == document else previous[1] + 1


class Model:
    """What the service must hold: grants, and per (collection, id) the client's document and its version."""

    def __init__(self) -> None:
        self.grants = {c: {owner: {READ, WRITE}} for c, owner in OWNERS.items()}
        self.documents: dict[str, dict[tuple[str, str], tuple[dict, int]]] = {"entities": {}, "relationships": {}}

    def access(self, principal: str, collection: str) -> set[str]:
        return self.grants[collection].get(principal, set())


class ServiceMachine(RuleBasedStateMachine):
    storage_name = "memory"
    storage_settings: dict = {}

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.loop = asyncio.new_event_loop()
        settings_ = dict(self.storage_settings)
        if self.storage_name == "mongodb":
            settings_["database"] = f"erapi_stateful_{uuid.uuid4().hex[:12]}"  # a fresh database per example
        self.settings_ = settings_
        self.client = self.run(self._start(create_app(make_config(self.storage_name, settings_))))
        self.headers = {p: {"Authorization": f"Bearer {token(p)}"} for p in PRINCIPALS}
        for collection, owner in OWNERS.items():
            status, _ = self.request(owner, "POST", "/apollo/collections", body={"collectionId": collection})
            assert status == 201

    @staticmethod
    async def _start(app) -> TestClient:
        client = TestClient(TestServer(app))  # created inside the loop that serves it
        await client.start_server()
        return client

    def teardown(self) -> None:
        try:
            self.run(self.client.close())
            if self.storage_name == "mongodb":
                self.run(self._drop_database())
        finally:
            self.loop.close()

    async def _drop_database(self) -> None:
        from pymongo import AsyncMongoClient

        client = AsyncMongoClient(self.settings_["uri"])
        try:
            await client.drop_database(self.settings_["database"])
        finally:
            await client.close()

    # ---- plumbing ---------------------------------------------------------------------------------------------------

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    @property
    def storage(self):
        return self.client.app[storage_key]

    def request(self, principal: str, method: str, path: str, *, collection: str | None = None, body=None,
                params=None) -> tuple[int, dict]:
        async def send():
            headers = dict(self.headers[principal])
            if collection is not None:
                headers["ercollectionid"] = collection
            data = None
            if body is not None:
                data = io.BytesIO(orjson.dumps(body))
                headers["Content-Type"] = "application/json"
            response = await self.client.request(method, path, headers=headers, data=data, params=params)
            return response.status, await response.json()

        return self.run(send())

    # ---- writes -----------------------------------------------------------------------------------------------------

    @initialize(collections=st.sets(st.sampled_from(COLLECTIONS)))
    def furnish(self, collections):
        """Some examples start with every entity in place, so that relationship writes often succeed."""
        for collection in sorted(collections):
            self.upsert_entities(OWNERS[collection], collection,
                                 [(entity_id, kind, "", False) for entity_id, kind in NATURAL_TYPE.items()])

    @rule(principal=st.sampled_from(PRINCIPALS), collection=st.sampled_from(COLLECTIONS), items=entity_items)
    def upsert_entities(self, principal, collection, items):
        body = [{"id": i, "entityType": t, "entityName": n, **({"note": n} if note else {})}
                for i, t, n, note in items]
        status, answer = self.request(principal, "POST", "/apollo/er/entities", collection=collection, body=body)
        if WRITE not in self.model.access(principal, collection):
            assert status == 403, answer
            return
        assert status == 207, answer
        expected_ok, expected_failed = [], []
        seen = set()
        for item in body:
            key = (collection, item["id"])
            previous = self.model.documents["entities"].get(key)
            changed_type = previous is not None and (CATALOG.entity_type(previous[0]["entityType"])
                                                    is not CATALOG.entity_type(item["entityType"]))
            if item["id"] in seen or changed_type:
                expected_failed.append(item["id"])
            else:
                expected_ok.append(item["id"])
                self.model.documents["entities"][key] = (item, next_version(previous, item))
            seen.add(item["id"])
        self._check_outcome(answer, expected_ok, expected_failed)

    @rule(principal=st.sampled_from(PRINCIPALS), collection=st.sampled_from(COLLECTIONS), items=relationship_items)
    def upsert_relationships(self, principal, collection, items):
        body = [{"id": rid, "sourceEntityId": source, "destinationEntityId": destination,
                 "destinationERCollectionId": destination_collection, "relationshipType": kind,
                 "relationshipName": name}
                for rid, source, destination_collection, destination, kind, name in items]
        status, answer = self.request(principal, "POST", "/apollo/er/relationships", collection=collection, body=body)
        if WRITE not in self.model.access(principal, collection):
            assert status == 403, answer
            return
        assert status == 207, answer
        entities = self.model.documents["entities"]  # a relationship batch writes no entity: fetched once
        expected_ok, expected_failed = [], []
        seen = set()
        for item in body:
            if item["id"] not in seen and self._relationship_acceptable(principal, collection, item, entities):
                key = (collection, item["id"])
                previous = self.model.documents["relationships"].get(key)
                document = {**item, "sourceERCollectionId": collection}
                self.model.documents["relationships"][key] = (document, next_version(previous, document))
                expected_ok.append(item["id"])
            else:
                expected_failed.append(item["id"])
            seen.add(item["id"])
        self._check_outcome(answer, expected_ok, expected_failed)

    def _relationship_acceptable(self, principal, collection, item, entities) -> bool:
        destination_collection = item["destinationERCollectionId"]
        if destination_collection != collection and READ not in self.model.access(principal, destination_collection):
            return False
        kind = CATALOG.relationship_type(item["relationshipType"])
        for entity_id, where, required in ((item["sourceEntityId"], collection, kind.source),
                                           (item["destinationEntityId"], destination_collection, kind.destination)):
            found = entities.get((where, entity_id))
            if found is None or not CATALOG.is_a(found[0]["entityType"], required):
                return False
        previous = self.model.documents["relationships"].get((collection, item["id"]))
        return previous is None or CATALOG.relationship_type(previous[0]["relationshipType"]) is kind

    @staticmethod
    def _check_outcome(answer, expected_ok, expected_failed):
        event(f"batch with {'some' if expected_ok else 'no'} successes and {'some' if expected_failed else 'no'} failures")
        responses = answer["data"]["responses"]
        assert [s["id"] for s in responses.get("success", [])] == expected_ok, answer
        assert [f["id"] for f in responses.get("failure", [])] == expected_failed, answer

    @rule(actor=st.sampled_from(PRINCIPALS), collection=st.sampled_from(COLLECTIONS),
          access=st.sampled_from(ACCESS_CHOICES))
    def set_grant(self, actor, collection, access):
        grantee = next(p for p in PRINCIPALS if p != OWNERS[collection])
        status, answer = self.request(actor, "PUT", f"/apollo/collections/{collection}/acl",
                                      body={"principal": grantee, "access": access})
        if actor != OWNERS[collection]:
            assert status == 403, answer
            return
        assert status == 200, answer
        self.model.grants[collection][grantee] = set(access)

    # ---- reads: only what the grants allow ----------------------------------------------------------------------------

    @rule(principal=st.sampled_from(PRINCIPALS), collection=st.sampled_from(COLLECTIONS),
          kind=st.sampled_from(["entities", "relationships"]), index=st.integers(0, 3))
    def read_document(self, principal, collection, kind, index):
        ids = ENTITY_IDS if kind == "entities" else RELATIONSHIP_IDS
        document_id = ids[index % len(ids)]
        status, answer = self.request(principal, "GET", f"/apollo/er/{kind}/{document_id}", collection=collection,
                                      params={"includeSystemData": "true"})
        if READ not in self.model.access(principal, collection):
            assert status == 403, answer
            assert "data" not in answer
            return
        expected = self.model.documents[kind].get((collection, document_id))
        if expected is None:
            assert status == 404, answer
            return
        assert status == 200, answer
        [stored] = answer["data"]
        assert _client_fields(stored) == _expected_fields(kind, expected[0], collection)
        assert stored["sysData"]["sysEntityVersion" if kind == "entities" else "sysRelationshipVersion"] == expected[1]

    @rule(principal=st.sampled_from(PRINCIPALS), collection=st.sampled_from(COLLECTIONS),
          entity_id=st.sampled_from(ENTITY_IDS))
    def read_status_logs(self, principal, collection, entity_id):
        status, answer = self.request(principal, "GET", "/apollo/status/logs", collection=collection,
                                      params={"entityid": entity_id})
        if not self.model.access(principal, collection):
            assert status == 403, answer
            return
        assert status in (200, 404), answer
        for record in answer.get("data", []):
            assert record["serviceData"]["erCollectionId"] == collection

    @rule(principal=st.sampled_from(PRINCIPALS), collection=st.sampled_from(COLLECTIONS))
    def read_collection(self, principal, collection):
        status, answer = self.request(principal, "GET", f"/apollo/collections/{collection}")
        assert status == (200 if self.model.access(principal, collection) else 403), answer

    # ---- invariants ---------------------------------------------------------------------------------------------------

    @invariant()
    def storage_holds_exactly_the_model(self):
        async def check():
            for kind, ids in (("entities", ENTITY_IDS), ("relationships", RELATIONSHIP_IDS)):
                version_field = "sysEntityVersion" if kind == "entities" else "sysRelationshipVersion"
                for collection in COLLECTIONS:
                    stored = await self.storage.get_current(kind, collection, list(ids))
                    expected = {i: doc for (c, i), doc in self.model.documents[kind].items() if c == collection}
                    assert set(stored) == set(expected), (kind, collection)
                    for document_id, (document, version) in expected.items():
                        assert _client_fields(stored[document_id]) == _expected_fields(kind, document, collection)
                        assert stored[document_id]["sysData"][version_field] == version
                        history = await self.storage.get_versions(kind, collection, document_id)
                        assert [v["sysData"][version_field] for v in history] == list(range(1, version + 1))

        self.run(check())

    @invariant()
    def acl_records_are_exactly_the_grants_made(self):
        async def check():
            for collection, owner in OWNERS.items():
                registration, grants = await self.storage.get_acl(collection)
                assert registration["owner"] == owner and registration["collectionId"] == collection
                stored = {g["principal"]: set(g["access"]) for g in grants if g["access"]}
                expected = {p: a for p, a in self.model.grants[collection].items() if a}
                assert stored == expected, collection

        self.run(check())


def _client_fields(stored: dict) -> dict:
    return {key: value for key, value in stored.items() if key not in SERVICE_FIELDS}


def _expected_fields(kind: str, document: dict, collection: str) -> dict:
    if kind == "relationships":
        return {**document, "sourceERCollectionId": collection}
    return dict(document)


def test_random_sequences_match_the_model(storage_name, storage_settings):
    machine = type(f"ServiceMachine_{storage_name}", (ServiceMachine,),
                   {"storage_name": storage_name, "storage_settings": storage_settings})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
