"""AccessStore (storage_plugins/access.py): collection registrations and grants."""

from __future__ import annotations

import asyncio

import pytest

from storage_plugins.base import DuplicateError
from tests.storage_contract.helpers import at


# ---- ACL library -------------------------------------------------------------------------------------------


def registration(collection_id: str, owner: str = "alice") -> dict:
    return {"collectionId": collection_id, "collectionName": f"Building {collection_id}", "owner": owner,
            "createdAt": at(0)}


def grant(collection_id: str, principal: str, access: list[str]) -> dict:
    return {"collectionId": collection_id, "principal": principal, "access": access, "grantedBy": "alice",
            "updatedAt": at(1)}


async def test_get_acl_of_an_unregistered_collection(storage):
    assert await storage.get_acl("c1") == (None, [])


async def test_register_collection_then_duplicate(storage):
    await storage.register_collection(registration("c1"))
    with pytest.raises(DuplicateError):
        await storage.register_collection(registration("c1", owner="mallory"))
    assert await storage.get_acl("c1") == (registration("c1"), [])
    assert await storage.get_acl("c2") == (None, [])
    await storage.register_collection(registration("c2", owner="bob"))
    assert (await storage.get_acl("c2"))[0] == registration("c2", owner="bob")


async def test_put_grant_replaces_the_principals_earlier_grant(storage):
    await storage.register_collection(registration("c1"))
    await storage.put_grant("c1", "alice", grant("c1", "alice", ["read", "write"]))
    await storage.put_grant("c1", "bob", grant("c1", "bob", ["read"]))
    await storage.put_grant("c1", "bob", grant("c1", "bob", ["read", "write"]))
    await storage.put_grant("c1", "carol", grant("c1", "carol", ["read"]))
    await storage.put_grant("c1", "carol", grant("c1", "carol", []))  # a revocation is a grant of nothing
    await storage.put_grant("c2", "bob", grant("c2", "bob", ["read"]))
    found_registration, grants = await storage.get_acl("c1")
    assert found_registration == registration("c1")
    by_principal = {g["principal"]: g for g in grants}
    assert len(grants) == 3
    assert by_principal == {
        "alice": grant("c1", "alice", ["read", "write"]),
        "bob": grant("c1", "bob", ["read", "write"]),
        "carol": grant("c1", "carol", []),
    }
    assert await storage.get_acl("c2") == (None, [grant("c2", "bob", ["read"])])


async def test_list_granted_collections_pages_one_principals_collections_by_id(storage):
    for collection_id in ("c3", "c1", "c4", "c2", "c10"):
        await storage.register_collection(registration(collection_id))
        await storage.put_grant(collection_id, "alice", grant(collection_id, "alice", ["read", "write"]))
    await storage.put_grant("c2", "bob", grant("c2", "bob", ["read"]))
    await storage.put_grant("c4", "bob", grant("c4", "bob", ["read"]))
    await storage.put_grant("c4", "bob", grant("c4", "bob", []))  # revoked: no longer listed nor counted
    await storage.put_grant("c3", "bob", grant("c3", "bob", ["write"]))

    first = await storage.list_granted_collections("alice", None, 2)
    assert first.page == [(registration("c1"), grant("c1", "alice", ["read", "write"])),
                          (registration("c10"), grant("c10", "alice", ["read", "write"]))]
    assert first.total == 5
    rest = await storage.list_granted_collections("alice", "c10", 10)
    assert [reg["collectionId"] for reg, _ in rest.page] == ["c2", "c3", "c4"]
    assert rest.total == 5
    bob = await storage.list_granted_collections("bob", None, 10)
    assert bob.page == [(registration("c2"), grant("c2", "bob", ["read"])),
                        (registration("c3"), grant("c3", "bob", ["write"]))]
    assert bob.total == 2
    after_the_last = await storage.list_granted_collections("bob", "c3", 10)
    assert (after_the_last.page, after_the_last.total) == ([], 2)
    nobody = await storage.list_granted_collections("carol", None, 10)
    assert (nobody.page, nobody.total) == ([], 0)


async def test_list_granted_collections_follows_grants_given_back(storage):
    await storage.register_collection(registration("c1"))
    await storage.put_grant("c1", "bob", grant("c1", "bob", []))
    assert (await storage.list_granted_collections("bob", None, 10)).total == 0
    await storage.put_grant("c1", "bob", grant("c1", "bob", ["read"]))
    again = await storage.list_granted_collections("bob", None, 10)
    assert (again.page, again.total) == ([(registration("c1"), grant("c1", "bob", ["read"]))], 1)


async def test_list_granted_collections_names_an_unregistered_collection_without_registration(storage):
    await storage.put_grant("c1", "bob", grant("c1", "bob", ["read"]))
    listed = await storage.list_granted_collections("bob", None, 10)
    assert (listed.page, listed.total) == ([(None, grant("c1", "bob", ["read"]))], 1)


async def test_concurrent_grants_of_one_principal_leave_one_grant(storage):
    await asyncio.gather(*(storage.put_grant("c1", "bob", grant("c1", "bob", [str(n)])) for n in range(10)))
    _, grants = await storage.get_acl("c1")
    assert len(grants) == 1 and grants[0]["principal"] == "bob"


async def test_returned_acl_records_are_copies(storage):
    given = registration("c1")
    await storage.register_collection(given)
    await storage.put_grant("c1", "bob", grant("c1", "bob", ["read"]))
    given["owner"] = "changed by the caller after the call"
    found_registration, grants = await storage.get_acl("c1")
    found_registration["owner"] = "changed"
    grants[0]["access"].append("write")
    assert await storage.get_acl("c1") == (registration("c1"), [grant("c1", "bob", ["read"])])
