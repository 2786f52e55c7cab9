"""Fixtures and helpers for API tests: an app on the plugin under test, tokens, and a small client wrapper.

Every API test that takes ``api`` runs once per storage plugin (``storage_name`` comes from
``tests.storage_fixtures``); helpers assert the status and validate bodies against ``schemas/responses``.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from erapi.app import create_app
from erapi.auth import mint_local_token
from erapi.config import AclConfig, AuthConfig, Config

TEST_SECRET = "test-secret-" + "x" * 40
RESPONSE_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "responses"
RELATIONSHIP_TYPE = "BRICK_0_4__isFedBy_Equipment_Equipment"


def make_config(storage_name: str = "memory", storage_settings: dict | None = None, **sections: Any) -> Config:
    """A test config: fixed local secret, no ACL caching delay, overrides per section as dicts."""
    config = Config(
        storage=storage_name,
        auth=AuthConfig(secret=TEST_SECRET),
        acl=AclConfig(cache_ttl_seconds=0),
        plugins={storage_name: storage_settings or {}},
    )
    for section, values in sections.items():
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)})
    return config


def token(subject: str, scopes: str = "apollo_read apollo_write", ttl: int = 600, now: float | None = None) -> str:
    return mint_local_token(TEST_SECRET, subject, scopes.split(), ttl, now=now)


def response_schema(name: str) -> dict:
    return json.loads((RESPONSE_SCHEMAS / f"{name}.json").read_text())


class Api:
    """A test client speaking as one principal; each call asserts the status it expects."""

    def __init__(self, client, subject: str = "alice", scopes: str = "apollo_read apollo_write"):
        self.client = client
        self.subject = subject
        self.headers = {"Authorization": f"Bearer {token(subject, scopes)}"}

    def as_(self, subject: str, scopes: str = "apollo_read apollo_write") -> "Api":
        return Api(self.client, subject, scopes)

    async def call(self, method: str, path: str, expect: int, *, collection: str | None = None,
                   json_body: Any = None, data: Any = None, headers: dict | None = None, schema: str | None = None,
                   params: dict | None = None) -> dict:
        all_headers = dict(self.headers)
        if collection is not None:
            all_headers["ercollectionid"] = collection
        if json_body is not None:
            # a stream, not bytes: aiohttp warns about large raw bytes, and warnings are errors here
            data = io.BytesIO(orjson.dumps(json_body))
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        response = await self.client.request(method, path, data=data, headers=all_headers, params=params)
        body = await response.json()
        assert response.status == expect, body
        assert body["status"]["code"] in {str(expect), "OK"}
        jsonschema.validate(body, response_schema(schema or ("error" if expect >= 400 else "envelope")))
        body["_headers"] = response.headers
        return body

    async def register(self, collection_id: str, name: str = "") -> dict:
        return await self.call("POST", "/apollo/collections", 201,
                               json_body={"collectionId": collection_id, "collectionName": name})

    async def grant(self, collection_id: str, principal: str, access: list[str]) -> dict:
        return await self.call("PUT", f"/apollo/collections/{collection_id}/acl", 200,
                               json_body={"principal": principal, "access": access})

    async def entities(self, collection: str, body: Any, expect: int = 207, **kwargs) -> dict:
        return await self.call("POST", "/apollo/er/entities", expect, collection=collection, json_body=body,
                               schema="batch" if expect == 207 else None, **kwargs)

    async def relationships(self, collection: str, body: Any, expect: int = 207, **kwargs) -> dict:
        return await self.call("POST", "/apollo/er/relationships", expect, collection=collection,
                               json_body=body, schema="batch" if expect == 207 else None, **kwargs)

    async def relationship(self, collection: str, relationship_id: str, expect: int = 200, **kwargs) -> dict:
        return await self.call("GET", f"/apollo/er/relationships/{relationship_id}", expect,
                               collection=collection, **kwargs)

    async def status_logs(self, collection: str, params: dict, expect: int = 200) -> dict:
        return await self.call("GET", "/apollo/status/logs", expect, collection=collection, params=params,
                               schema="status-logs" if expect == 200 else None)


def entity(entity_id: str, entity_type: str = "BRICK_0_4__AHU", **extra: Any) -> dict:
    return {"id": entity_id, "entityType": entity_type, "entityName": entity_id, **extra}


def relationship(relationship_id: str, source: str, destination: str, *,
                 relationship_type: str = RELATIONSHIP_TYPE, **extra: Any) -> dict:
    return {"id": relationship_id, "sourceEntityId": source, "destinationEntityId": destination,
            "relationshipName": "test", "relationshipType": relationship_type, **extra}


@pytest.fixture
def app_config(storage_name, storage_settings) -> Config:
    return make_config(storage_name, storage_settings)


@pytest.fixture
async def app_factory(aiohttp_client, storage_name, storage_settings):
    """Start a client on a fresh app; extra config sections as keyword dicts, e.g. acl={...}."""

    async def factory(**sections: Any):
        client = await aiohttp_client(create_app(make_config(storage_name, storage_settings, **sections)))
        return Api(client)

    return factory


@pytest.fixture
async def api(app_factory) -> Api:
    return await app_factory()


@pytest.fixture
async def building(api) -> Api:
    """Two collections owned by alice with an AHU in each: the setting of CONTRACT.md's example."""
    await api.register("august_14_81")
    await api.register("august_14_8")
    await api.entities("august_14_81", entity("ac4d999e-3798-11e8-a1af-c8e0eb18b031"))
    await api.entities("august_14_8", entity("ac4d8cd8-3798-11e8-a527-c8e0eb18b031"))
    return api
