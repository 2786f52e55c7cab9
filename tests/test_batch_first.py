"""Batch-first: a 100-item write costs exactly the storage calls of a 1-item write, method by method.

The plugin under test is wrapped in a proxy that counts calls per method; the proxy is installed during
start-up, right after the storage is opened, for the handlers and for the ACL library alike.
"""

from __future__ import annotations

from collections import Counter
from typing import AsyncIterator

import pytest
from aiohttp import web

from erapi.acl import AccessControl
from erapi.app import create_app
from erapi.keys import acl_key, config_key, storage_key
from storage_plugins.base import Storage, plugin_calls
from tests.api_fixtures import Api, entity, make_config, relationship


class CountingStorage(Storage):
    """Delegates every method of the interface to ``inner`` and counts the calls."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _counted(name: str):
    async def method(self, *args, **kwargs):
        self.calls[name] += 1
        return await getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


for _name in sorted(plugin_calls()):
    setattr(CountingStorage, _name, _counted(_name))
CountingStorage.__abstractmethods__ = frozenset()


async def _count_storage_calls(app: web.Application) -> AsyncIterator[None]:
    proxy = CountingStorage(app[storage_key])
    app[storage_key] = proxy
    app[acl_key] = AccessControl(proxy, app[config_key].acl.cache_ttl_seconds)
    yield


@pytest.fixture
async def counted(aiohttp_client, storage_name, storage_settings):
    """An Api whose app's storage calls are counted, and the proxy counting them."""
    app = create_app(make_config(storage_name, storage_settings))
    app.cleanup_ctx.append(_count_storage_calls)
    api = Api(await aiohttp_client(app))
    proxy = app[storage_key]
    assert isinstance(proxy, CountingStorage)
    return api, proxy


async def calls_of(proxy: CountingStorage, write) -> tuple[dict, Counter]:
    proxy.calls.clear()
    body = await write()
    return body, Counter(proxy.calls)


async def test_the_proxy_sees_every_storage_call(counted):
    api, proxy = counted
    await api.register("site")
    assert proxy.calls["register_collection"] == 1 and proxy.calls["put_grant"] == 1
    await api.call("GET", "/readyz", 200)
    assert proxy.calls["ping"] == 1


async def test_entities_100_items_cost_the_storage_calls_of_1(counted):
    api, proxy = counted
    await api.register("site")
    body, one = await calls_of(proxy, lambda: api.entities("site", entity("single")))
    assert len(body["data"]["responses"]["success"]) == 1
    body, hundred = await calls_of(proxy, lambda: api.entities("site", [entity(f"e{n}") for n in range(100)]))
    assert len(body["data"]["responses"]["success"]) == 100
    assert hundred == one
    # the change feed: one claim of sequence numbers and one insert of change records, whatever the batch size
    assert one == Counter(get_acl=1, get_current=1, claim_versions=1, _advance_counter=1, _insert_changes=1,
                          put_current=1, insert_status_batch=1)


async def test_entity_updates_100_items_cost_the_storage_calls_of_1(counted):
    api, proxy = counted
    await api.register("site")
    await api.entities("site", [entity(f"e{n}") for n in range(100)])
    _, one = await calls_of(proxy, lambda: api.entities("site", entity("e0", entityName="v2")))
    body, hundred = await calls_of(proxy, lambda: api.entities("site", [entity(f"e{n}", entityName="v2")
                                                                        for n in range(100)]))
    assert len(body["data"]["responses"]["success"]) == 100
    assert hundred == one


async def source_and_target(api, entities: int) -> None:
    """Two collections, ``source`` with entities s0.. and ``target`` with d0.., ``entities`` each."""
    await api.register("source")
    await api.register("target")
    await api.entities("source", [entity(f"s{n}") for n in range(entities)])
    await api.entities("target", [entity(f"d{n}") for n in range(entities)])


async def test_cross_collection_relationships_100_items_cost_the_storage_calls_of_1(counted):
    api, proxy = counted
    await source_and_target(api, 100)

    def items(count: int) -> list[dict]:
        return [relationship(f"r{n}", f"s{n}", f"d{n}", sourceERCollectionId="source",
                             destinationERCollectionId="target") for n in range(count)]

    body, one = await calls_of(proxy, lambda: api.relationships("source", items(1)))
    assert len(body["data"]["responses"]["success"]) == 1
    await api.call("GET", "/apollo/er/relationships/r0", 200, collection="source")  # not counted: reset below
    body, hundred = await calls_of(proxy, lambda: api.relationships("source", [
        {**item, "id": f"x{n}"} for n, item in enumerate(items(100))]))
    assert len(body["data"]["responses"]["success"]) == 100
    assert hundred == one
    # the header's ACL and the destination's; the entities' types at both ends and the existing relationships
    assert one == Counter(get_acl=2, get_active_types=2, get_current=1, claim_versions=1, _advance_counter=1,
                          _insert_changes=1, put_current=1, insert_status_batch=1)


async def test_a_mixed_batch_with_failures_costs_no_more_than_a_clean_one(counted):
    api, proxy = counted
    await source_and_target(api, 50)
    _, one = await calls_of(proxy, lambda: api.relationships("source", relationship(
        "r0", "s0", "d0", destinationERCollectionId="target")))
    mixed = []
    for n in range(100):
        item = relationship(f"m{n}", f"s{n % 50}", f"d{n % 50}", destinationERCollectionId="target")
        if n % 4 == 1:
            item["destinationEntityId"] = "missing"
        elif n % 4 == 2:
            item["relationshipType"] = "BRICK_0_4__unknown_Equipment_Equipment"
        mixed.append(item)
    body, hundred = await calls_of(proxy, lambda: api.relationships("source", mixed))
    assert len(body["data"]["responses"]["success"]) == 50
    assert len(body["data"]["responses"]["failure"]) == 50
    assert hundred == one


async def test_a_page_of_100_collections_costs_one_storage_call_like_a_page_of_1(counted):
    api, proxy = counted
    for number in range(101):
        await api.register(f"c{number:03}")

    async def page(size: int) -> dict:
        return await api.call("GET", "/apollo/collections", 200, headers={"PageSize": str(size)},
                              schema="collection-list")

    body, one = await calls_of(proxy, lambda: page(1))
    assert len(body["data"]) == 1
    body, hundred = await calls_of(proxy, lambda: page(100))
    assert len(body["data"]) == 100 and body["paging"]["totalCount"] == 101
    assert hundred == one == Counter(list_granted_collections=1)
