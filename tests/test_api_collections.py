"""ERCollections and the ACL library: registration, reading, grants and revocations, and the ACL cache."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from erapi.acl import READ, WRITE, AccessControl, CollectionExists
from tests.api_fixtures import entity, relationship
from tests.clock import ManualClock

OWNER_ONLY = "Only the owner of an ERCollection may read or change its grants"


async def grants_of(api, collection_id: str) -> list[dict]:
    return (await api.call("GET", f"/apollo/collections/{collection_id}/acl", 200))["data"]["grants"]


# ---- registration -------------------------------------------------------------------------------------------------


async def test_register_gives_201_and_makes_the_caller_owner_with_read_and_write(api):
    body = await api.call("POST", "/apollo/collections", 201,
                          json_body={"collectionId": "august_14_81", "collectionName": "Building 81"})
    assert body["status"] == {"message": "ERCollection registered", "code": "201"}
    data = body["data"]
    assert (data["collectionId"], data["collectionName"], data["owner"]) == ("august_14_81", "Building 81", "alice")
    assert data["createdAt"].endswith("Z")
    acl = (await api.call("GET", "/apollo/collections/august_14_81/acl", 200))["data"]
    assert acl == {"collectionId": "august_14_81", "owner": "alice",
                   "grants": [{"principal": "alice", "access": ["read", "write"]}]}
    # the new owner can write at once
    await api.entities("august_14_81", entity("ahu-1"))


async def test_omitted_collection_id_gets_a_generated_uuid4(api):
    body = await api.call("POST", "/apollo/collections", 201, json_body={"collectionName": "anonymous"})
    generated = body["data"]["collectionId"]
    assert uuid.UUID(generated).version == 4 and str(uuid.UUID(generated)) == generated
    got = await api.call("GET", f"/apollo/collections/{generated}", 200)
    assert got["data"]["collectionName"] == "anonymous"
    second = await api.call("POST", "/apollo/collections", 201, json_body={})
    assert second["data"]["collectionId"] != generated
    assert second["data"]["collectionName"] == ""


async def test_registering_an_existing_collection_is_409_and_keeps_the_first_owner(api):
    await api.register("site", "first")
    body = await api.as_("bob").call("POST", "/apollo/collections", 409,
                                     json_body={"collectionId": "site", "collectionName": "second"})
    assert body["status"]["message"] == "ERCollection site already exists"
    got = await api.call("GET", "/apollo/collections/site", 200)
    assert (got["data"]["owner"], got["data"]["collectionName"]) == ("alice", "first")
    await api.as_("bob").call("GET", "/apollo/collections/site", 403)


@pytest.mark.parametrize(
    "body",
    [
        {"collectionId": "site", "owner": "mallory"},
        {"collectionId": "bad id with spaces"},
        {"collectionId": ""},
        {"collectionId": 42},
        ["site"],
    ],
)
async def test_invalid_registration_body_is_400_and_registers_nothing(api, body):
    answer = await api.call("POST", "/apollo/collections", 400, json_body=body)
    assert answer["status"]["message"] == "The request body does not match its schema"
    assert answer["errors"]
    await api.call("GET", "/apollo/collections/site", 404)


async def test_registration_needs_the_write_scope(api):
    body = await api.as_("alice", "apollo_read").call("POST", "/apollo/collections", 403,
                                                      json_body={"collectionId": "site"})
    assert body["status"]["message"] == "The token lacks the scope apollo_write"
    await api.call("GET", "/apollo/collections/site", 404)


# ---- reading a collection -----------------------------------------------------------------------------------------


async def test_get_collection_200_for_a_grantee_403_without_grant_404_when_absent(api):
    await api.register("site", "Site")
    body = await api.call("GET", "/apollo/collections/site", 200)
    assert body["data"]["collectionId"] == "site" and body["data"]["owner"] == "alice"
    denied = await api.as_("bob").call("GET", "/apollo/collections/site", 403)
    assert denied["status"]["message"] == "The caller has no grant on ERCollection site"
    absent = await api.call("GET", "/apollo/collections/nowhere", 404)
    assert absent["status"]["message"] == "ERCollection nowhere not found"


# ---- grants -------------------------------------------------------------------------------------------------------


async def test_read_grant_lets_the_grantee_read_but_not_write(api):
    await api.register("site")
    await api.entities("site", [entity("a"), entity("b")])
    bob = api.as_("bob")
    body = await api.grant("site", "bob", ["read"])
    assert body["status"]["message"] == "Grant updated"
    assert {k: body["data"][k] for k in ("collectionId", "principal", "access", "grantedBy")} == {
        "collectionId": "site", "principal": "bob", "access": ["read"], "grantedBy": "alice"}
    await bob.call("GET", "/apollo/collections/site", 200)
    await bob.call("GET", "/apollo/er/entities/a", 200, collection="site")
    denied = await bob.relationships("site", relationship("r1", "a", "b"), expect=403)
    assert denied["status"]["message"] == "ERCollection site is not registered or the caller has no write grant on it"
    await api.relationship("site", "r1", expect=404)


async def test_read_write_grant_lets_the_grantee_write(api):
    await api.register("site")
    await api.grant("site", "bob", ["read", "write"])
    body = await api.as_("bob").entities("site", entity("ahu-1"))
    assert len(body["data"]["responses"]["success"]) == 1


async def test_revocation_with_an_empty_list_takes_effect_at_once(api):
    await api.register("site")
    await api.entities("site", entity("a"))
    bob = api.as_("bob")
    await api.grant("site", "bob", ["read", "write"])
    await bob.call("GET", "/apollo/er/entities/a", 200, collection="site")
    body = await api.grant("site", "bob", [])
    assert body["data"]["access"] == []
    await bob.call("GET", "/apollo/er/entities/a", 403, collection="site")
    await bob.call("GET", "/apollo/collections/site", 403)
    await bob.entities("site", entity("b"), expect=403)
    assert await grants_of(api, "site") == [{"principal": "alice", "access": ["read", "write"]}]


async def test_own_writes_are_seen_at_once_even_with_a_long_acl_cache(app_factory):
    api = await app_factory(acl={"cache_ttl_seconds": 5})
    bob = api.as_("bob")
    # bob's refusals are cached before each change; the change must still show at once in this process
    await bob.call("GET", "/apollo/collections/site", 404)
    await api.register("site")
    await bob.call("GET", "/apollo/collections/site", 403)
    await api.grant("site", "bob", ["read"])
    await bob.call("GET", "/apollo/collections/site", 200)
    await bob.entities("site", entity("x"), expect=403)
    await api.grant("site", "bob", ["read", "write"])
    await bob.entities("site", entity("x"))
    await api.grant("site", "bob", [])
    await bob.call("GET", "/apollo/collections/site", 403)
    await bob.entities("site", entity("y"), expect=403)


async def test_acl_put_is_owner_only_even_for_a_grantee(api):
    await api.register("site")
    await api.grant("site", "bob", ["read", "write"])
    body = await api.as_("bob").call("PUT", "/apollo/collections/site/acl", 403,
                                     json_body={"principal": "carol", "access": ["read"]})
    assert body["status"]["message"] == OWNER_ONLY
    body = await api.as_("bob").call("PUT", "/apollo/collections/site/acl", 403,
                                     json_body={"principal": "alice", "access": []})
    assert body["status"]["message"] == OWNER_ONLY
    assert await grants_of(api, "site") == [{"principal": "alice", "access": ["read", "write"]},
                                            {"principal": "bob", "access": ["read", "write"]}]
    await api.as_("carol").call("GET", "/apollo/collections/site", 403)


async def test_acl_get_is_owner_only_and_lists_the_grants(api):
    await api.register("site")
    await api.grant("site", "carol", ["read"])
    await api.grant("site", "bob", ["write", "read"])
    await api.grant("site", "dave", ["read"])
    await api.grant("site", "dave", [])
    assert await grants_of(api, "site") == [
        {"principal": "alice", "access": ["read", "write"]},
        {"principal": "bob", "access": ["read", "write"]},
        {"principal": "carol", "access": ["read"]},
    ]
    body = await api.as_("bob").call("GET", "/apollo/collections/site/acl", 403)
    assert body["status"]["message"] == OWNER_ONLY


async def test_acl_of_an_absent_collection_is_404(api):
    body = await api.call("PUT", "/apollo/collections/nowhere/acl", 404, json_body={"principal": "bob",
                                                                                     "access": ["read"]})
    assert body["status"]["message"] == "ERCollection nowhere not found"
    await api.call("GET", "/apollo/collections/nowhere/acl", 404)
    await api.call("GET", "/apollo/collections/nowhere", 404)


@pytest.mark.parametrize(
    "body",
    [
        {"principal": "bob", "access": ["admin"]},
        {"principal": "bob", "access": "read"},
        {"principal": "bob", "access": ["read", "read"]},
        {"principal": "bob", "access": ["read"], "owner": True},
        {"principal": "", "access": ["read"]},
        {"access": ["read"]},
        {"principal": "bob"},
    ],
)
async def test_invalid_acl_body_is_400_and_changes_nothing(api, body):
    await api.register("site")
    answer = await api.call("PUT", "/apollo/collections/site/acl", 400, json_body=body)
    assert answer["status"]["message"] == "The request body does not match its schema"
    assert answer["errors"]
    assert await grants_of(api, "site") == [{"principal": "alice", "access": ["read", "write"]}]
    await api.as_("bob").call("GET", "/apollo/collections/site", 403)


async def test_acl_put_needs_the_write_scope_and_acl_get_the_read_scope(api):
    await api.register("site")
    body = await api.as_("alice", "apollo_read").call("PUT", "/apollo/collections/site/acl", 403,
                                                      json_body={"principal": "bob", "access": ["read"]})
    assert body["status"]["message"] == "The token lacks the scope apollo_write"
    body = await api.as_("alice", "apollo_write").call("GET", "/apollo/collections/site/acl", 403)
    assert body["status"]["message"] == "The token lacks the scope apollo_read"
    assert await grants_of(api, "site") == [{"principal": "alice", "access": ["read", "write"]}]


# ---- the caller's collections: GET /apollo/collections -------------------------------------------------------------


async def list_collections(api, expect: int = 200, **headers: str) -> dict:
    schema = "collection-list" if expect == 200 else None
    return await api.call("GET", "/apollo/collections", expect, headers=headers, schema=schema)


async def test_each_principal_lists_exactly_the_collections_it_holds_a_grant_on(api):
    bob = api.as_("bob")
    for collection_id in ("c2", "c1", "c3"):
        await api.register(collection_id, f"Building {collection_id}")
    await bob.register("b1", "Bob's")
    await api.grant("c2", "bob", [READ])
    await api.grant("c3", "bob", [READ, WRITE])
    await api.grant("c3", "bob", [])  # revoked

    alice = await list_collections(api)
    assert [(c["collectionId"], c["owner"], c["access"]) for c in alice["data"]] == [
        ("c1", "alice", ["read", "write"]), ("c2", "alice", ["read", "write"]), ("c3", "alice", ["read", "write"])]
    assert alice["data"][0]["collectionName"] == "Building c1" and alice["data"][0]["createdAt"].endswith("Z")
    assert alice["paging"] == {"totalCount": 3, "continuationToken": None}
    listed = await list_collections(bob)
    assert [(c["collectionId"], c["owner"], c["access"]) for c in listed["data"]] == [
        ("b1", "bob", ["read", "write"]), ("c2", "alice", ["read"])]
    assert listed["paging"] == {"totalCount": 2, "continuationToken": None}
    assert (await list_collections(api.as_("carol")))["paging"] == {"totalCount": 0, "continuationToken": None}


async def test_the_collections_list_pages_with_a_token_bound_to_the_caller(api):
    for number in range(5):
        await api.register(f"c{number}")
    await api.grant("c1", "bob", [READ])
    first = await list_collections(api, PageSize="2")
    assert [c["collectionId"] for c in first["data"]] == ["c0", "c1"]
    assert first["paging"]["totalCount"] == 5
    token = first["paging"]["continuationToken"]
    await api.register("c00")  # sorts before the position reached: not shown by the next pages
    second = await list_collections(api, PageSize="2", continuationToken=token)
    assert [c["collectionId"] for c in second["data"]] == ["c2", "c3"]
    last = await list_collections(api, PageSize="2", continuationToken=second["paging"]["continuationToken"])
    assert ([c["collectionId"] for c in last["data"]], last["paging"]) == (["c4"], {"totalCount": 6,
                                                                                   "continuationToken": None})
    refused = await list_collections(api.as_("bob"), 400, continuationToken=token)
    assert refused["status"]["message"] == "continuationToken was issued for another collection or query"
    tampered = await list_collections(api, 400, continuationToken=token[:-2] + "xx")
    assert tampered["status"]["message"] == "continuationToken is invalid"


async def test_the_collections_list_refuses_bad_paging_and_unknown_parameters_and_needs_read_scope(api):
    await api.register("site")
    body = await list_collections(api, 400, PageSize="0")
    assert body["status"]["message"] == "The PageSize header must be a whole number from 1 to 1000"
    body = await api.call("GET", "/apollo/collections", 400, params={"owner": "alice"})
    assert body["status"]["message"].startswith("Unknown query parameter owner")
    body = await api.as_("alice", scopes="apollo_write").call("GET", "/apollo/collections", 403)
    assert body["status"]["message"] == "The token lacks the scope apollo_read"
    await api.as_("alice").call("GET", "/apollo/collections", 401, headers={"Authorization": "Bearer nope"})


# ---- nothing else writes the ACL library --------------------------------------------------------------------------


async def test_writes_through_other_endpoints_never_create_acl_records(api):
    await api.register("site")
    mallory = api.as_("mallory")
    await mallory.register("mine")
    lookalike = {"collectionId": "site", "principal": "mallory", "access": ["read", "write"], "owner": "mallory",
                 "recordKind": "grant", "record": {"principal": "mallory", "collectionId": "site"},
                 "ercollectionid": "site", "grantedBy": "alice"}
    headers = {"X-Correlation-Id": "acl:grant:mallory"}
    await mallory.entities("mine", [entity("acl:collection", **lookalike), entity("acl:grant:mallory", **lookalike)],
                           headers=headers)
    await mallory.relationships("mine", relationship("acl:grant:mallory", "acl:collection", "acl:grant:mallory",
                                                     **{k: v for k, v in lookalike.items() if k != "collectionId"}),
                                headers=headers)
    # the same shapes aimed at the target collection are refused outright
    await mallory.entities("site", entity("acl:grant:mallory", **lookalike), expect=403, headers=headers)
    await mallory.call("POST", "/apollo/status/logs", 405, collection="site", json_body=lookalike)
    await mallory.call("PUT", "/apollo/collections/site", 405, json_body=lookalike)

    await mallory.call("GET", "/apollo/collections/site", 403)
    assert [c["collectionId"] for c in (await mallory.call("GET", "/apollo/collections", 200))["data"]] == ["mine"]
    assert await grants_of(api, "site") == [{"principal": "alice", "access": ["read", "write"]}]
    assert await grants_of(mallory, "mine") == [{"principal": "mallory", "access": ["read", "write"]}]
    await mallory.call("GET", "/apollo/er/entities/acl:collection", 403, collection="site")
    # and ACL records never show up as status records
    await api.status_logs("site", {"startTime": "2000-01-01T00:00:00Z"}, expect=404)
    logs = await mallory.status_logs("mine", {"correlationid": "acl:grant:mallory"})
    assert {r["requestObject"] for r in logs["data"]} == {"Entity", "Relationship"}
    assert logs["paging"]["totalCount"] == 3


# ---- the ACL cache, with a clock of our own ------------------------------------------------------------------------


def registration(collection_id: str, owner: str = "alice") -> dict:
    return {"collectionId": collection_id, "collectionName": "", "owner": owner,
            "createdAt": "2024-01-01T00:00:00.000000Z"}


async def test_another_process_sees_a_grant_only_after_the_ttl(storage):
    clock = ManualClock()
    first = AccessControl(storage, 5, clock=clock)
    second = AccessControl(storage, 5, clock=clock)  # another process sharing the storage
    await first.register(registration("site"))
    assert await first.access("site", "bob") == frozenset()
    assert await second.access("site", "bob") == frozenset()

    await second.grant("site", "bob", [READ], "alice", "2024-01-01T00:00:01.000000Z")
    assert await second.access("site", "bob") == {READ}  # the writer sees it at once
    assert await first.access("site", "bob") == frozenset()  # the other process: cached
    clock.now += 4.9
    assert await first.access("site", "bob") == frozenset()
    clock.now += 0.2
    assert await first.access("site", "bob") == {READ}

    # a revocation goes the same way, and bounds how late it takes effect elsewhere
    await second.grant("site", "bob", [], "alice", "2024-01-01T00:00:02.000000Z")
    assert await second.access("site", "bob") == frozenset()
    assert await first.access("site", "bob") == {READ}
    clock.now += 5.1
    assert await first.access("site", "bob") == frozenset()


async def test_another_process_sees_a_registration_only_after_the_ttl(storage):
    clock = ManualClock()
    first = AccessControl(storage, 5, clock=clock)
    second = AccessControl(storage, 5, clock=clock)
    assert (await first.collection("site")).registration is None
    await second.register(registration("site"))
    assert await second.access("site", "alice") == {READ, WRITE}
    assert (await first.collection("site")).registration is None
    clock.now += 5.1
    assert (await first.collection("site")).owner == "alice"
    assert await first.access("site", "alice") == {READ, WRITE}
    with pytest.raises(CollectionExists):
        await first.register(registration("site", owner="bob"))


async def test_zero_ttl_reads_the_storage_every_time(storage):
    clock = ManualClock()
    first = AccessControl(storage, 0, clock=clock)
    second = AccessControl(storage, 0, clock=clock)
    await first.register(registration("site"))
    assert await second.access("site", "bob") == frozenset()
    await first.grant("site", "bob", [READ, WRITE], "alice", "2024-01-01T00:00:01.000000Z")
    assert await second.access("site", "bob") == {READ, WRITE}


class SlowAcl:
    """Storage whose ACL reads take their snapshot at once but answer only when ``gate`` is set."""

    def __init__(self, storage) -> None:
        self._storage = storage
        self.gate = asyncio.Event()
        self.gate.set()

    def __getattr__(self, name):
        return getattr(self._storage, name)

    async def get_acl(self, collection_id):
        snapshot = await self._storage.get_acl(collection_id)
        await self.gate.wait()
        return snapshot


@pytest.mark.parametrize("before, after", [([], [READ]), ([READ, WRITE], [])])
async def test_a_lookup_in_flight_during_a_change_does_not_cache_the_old_state(storage, before, after):
    clock = ManualClock()
    slow = SlowAcl(storage)
    acl = AccessControl(slow, 5, clock=clock)
    await acl.register(registration("site"))
    await acl.grant("site", "bob", before, "alice", "2024-01-01T00:00:01.000000Z")
    clock.now += 10  # the cached entry expires: the next lookup reads the storage
    slow.gate.clear()
    in_flight = asyncio.create_task(acl.access("site", "bob"))
    await asyncio.sleep(0.01)
    assert not in_flight.done()
    await acl.grant("site", "bob", after, "alice", "2024-01-01T00:00:02.000000Z")
    slow.gate.set()
    await in_flight
    # the change was made by this process: it must hold from now on, not after the TTL
    assert await acl.access("site", "bob") == frozenset(after)
