"""The change feed of a collection: ``GET /apollo/er/ercollections/{collectionId}/changes``.

Every change (an entity or relationship written or deactivated, a grant given or taken) in sequence order,
after the position the consumer names; ``wait=S`` holds the request until a change comes or S seconds pass.
The rules that make it safe to resume from the last number seen live in storage_plugins/changes.py.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from erapi.errors import Gone, InvalidRequest
from erapi.handlers.reads import path_collection
from erapi.keys import change_notifier_key, config_key, storage_key
from erapi.web import boolean_query, envelope

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_SEQUENCE = 10**18
WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")
SECONDS = re.compile(r"[0-9]{1,4}(\.[0-9]{1,3})?")


async def get_changes(request: web.Request) -> web.Response:
    collection_id = await path_collection(request)
    after = _whole_number(request, "after", 0, 0, MAX_SEQUENCE)
    limit = _whole_number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    wait = _seconds(request, "wait", request.app[config_key].changes.max_wait_seconds)
    include_documents = boolean_query(request, "includeDocuments", default=True)
    storage = request.app[storage_key]
    await _refuse_trimmed(storage, collection_id, after)
    changes = await _changes_or_wait(request, collection_id, after, limit, wait)
    await _refuse_trimmed(storage, collection_id, after)  # a trim that ran meanwhile took what we skipped
    if not include_documents:
        for change in changes:
            del change["document"]
    latest = await storage.latest_sequence(collection_id)
    return envelope(200, "", data=changes, paging={
        "next": changes[-1]["sequence"] if changes else after,
        "latest": latest,
        "firstSequence": await storage.first_sequence(collection_id),
    })


async def _refuse_trimmed(storage, collection_id: str, after: int) -> None:
    first = await storage.first_sequence(collection_id)
    if after < first:
        raise Gone(f"The change feed of ERCollection {collection_id} is trimmed up to sequence {first}: it is "
                   f"whole from after={first} on. Read the collection's current state again, then follow the "
                   f"feed from after={first}", [{"path": "/after", "message": f"must be at least {first}"}])


async def _changes_or_wait(request: web.Request, collection_id: str, after: int, limit: int,
                           wait: float) -> list[dict]:
    """The changes after ``after``; when there are none, wait up to ``wait`` seconds for one (a long poll)."""
    storage, notifier = request.app[storage_key], request.app[change_notifier_key]
    poll = request.app[config_key].changes.poll_interval_seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    numbered_but_unread = False
    while True:
        changes = await storage.read_changes(collection_id, after, limit)
        remaining = deadline - loop.time()
        if changes or remaining <= 0:
            return changes
        if numbered_but_unread:  # a change claimed its number but has not landed yet: look again shortly
            await asyncio.sleep(min(poll, remaining))
        latest = await notifier.wait(collection_id, after, deadline - loop.time())
        numbered_but_unread = latest > after


def _whole_number(request: web.Request, name: str, default: int, lowest: int, highest: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not WHOLE_NUMBER.fullmatch(raw) or not lowest <= int(raw) <= highest:
        raise InvalidRequest(f"The query parameter {name} must be a whole number from {lowest} to {highest}")
    return int(raw)


def _seconds(request: web.Request, name: str, highest: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return 0.0
    if not SECONDS.fullmatch(raw) or float(raw) > highest:
        raise InvalidRequest(f"The query parameter {name} must be a number of seconds from 0 to {highest:g}")
    return float(raw)
