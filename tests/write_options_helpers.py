"""What the tests of the write options share: a picture of everything stored, and answers without their ids."""

from __future__ import annotations

from typing import Any

from storage_plugins.base import KINDS, DocumentQuery, LogQuery, Storage

EVERYTHING = 100_000


async def stored_state(storage: Storage, collections: list[str]) -> dict[str, Any]:
    """Every current document, every version, every status record of ``collections``, and the job queue."""
    state: dict[str, Any] = {"pending": await storage.pending_items(None)}
    for collection_id in collections:
        for kind in KINDS:
            current = await storage.list_current(kind, collection_id,
                                                 DocumentQuery(active_only=False, limit=EVERYTHING))
            state[f"{collection_id}/{kind}"] = current
            state[f"{collection_id}/{kind}/versions"] = {
                document["id"]: await storage.get_versions(kind, collection_id, document["id"])
                for document in current
            }
        state[f"{collection_id}/logs"] = await storage.find_logs(
            LogQuery(collection_id, start_time="0", limit=EVERYTHING))
    return state


def outcome(answer: dict) -> dict:
    """A 207, field by field, without what differs from run to run (transaction id, trackers) or marks a dry
    run; each list as (id, message) pairs, then any further fields of its entries."""
    responses = answer["data"]["responses"]

    def entries(name: str) -> list:
        return [(item["id"], item["message"], *sorted((key, value) for key, value in item.items()
                                                       if key not in {"id", "message", "tracker"}))
                for item in responses[name]]

    return {"status": answer["status"], "success": entries("success"), "failure": entries("failure")}
