"""Idempotency-Key on batch writes: a retry of a request gets the first answer again and writes nothing.

The key, scoped to the principal and the collection, is claimed in the storage layer before the request is
processed (an insert that exactly one of concurrent claimants wins, in any process), and the answer is kept
with it for ``idempotency.retention_seconds``. A retry finds the claim: with another request body it is
refused (422); with an answer it gets that answer; while the first request still runs it waits for it, for at
most ``idempotency.wait_seconds``, then gets 409 with Retry-After. A first request that fails (any error
answer) gives the key up, so the retry is processed anew; one whose process died gives it up when its lease
(``idempotency.lease_seconds``) runs out.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from typing import Awaitable, Callable

import orjson
from aiohttp import web

from erapi.clock import Clock
from erapi.config import IdempotencyConfig
from erapi.errors import Conflict, InvalidRequest, Unprocessable
from storage_plugins.base import Document, Storage, StorageError

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII: a UUID, a hash, a job name and counter
KEPT_HEADERS = ("X-Transaction-Id", "ETag")  # what an answer carries besides its body
RUNNING, DONE = "running", "done"
MAX_CLAIMS = 8  # claims of one request: each lost one means another request finished or gave up meanwhile
POLL_SECONDS = (0.02, 0.5)  # first and longest pause between two looks at a running first request

Process = Callable[[], Awaitable[web.Response]]


def read_idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is not None and not KEY.match(key):
        raise InvalidRequest(f"The {HEADER} header must be 1-255 visible ASCII characters (no spaces)")
    return key


def request_fingerprint(request: web.Request, items: list[dict]) -> str:
    """What makes two requests the same request: method, path, query, the headers that change the outcome,
    and the body's items (parsed, so spacing and key order do not count)."""
    headers = [request.headers.get(name, "").strip().lower() for name in ("async", "If-Match", "If-None-Match")]
    what = [request.method, request.path, sorted(request.query.items()), headers, items]
    return hashlib.sha256(orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).hexdigest()


def scoped_key_id(principal: str, collection_id: str, key: str) -> str:
    """The stored id of a key: one caller's key in one collection, never another's."""
    return hashlib.sha256("\0".join((principal, collection_id, key)).encode()).hexdigest()


class Idempotency:
    """Answers requests carrying an Idempotency-Key once; ``clock`` (seconds since the epoch) is injected."""

    def __init__(self, storage: Storage, settings: IdempotencyConfig, clock: Clock = time.time):
        self.storage = storage
        self.settings = settings
        self.clock = clock

    async def respond(self, key: str, principal: str, collection_id: str, fingerprint: str,
                      process: Process) -> web.Response:
        key_id = scoped_key_id(principal, collection_id, key)
        owner = str(uuid.uuid4())
        for _ in range(MAX_CLAIMS):
            now = self.clock()
            held = await self.storage.claim_idempotency_key({
                "id": key_id, "owner": owner, "fingerprint": fingerprint, "state": RUNNING,
                "expiresAt": now + self.settings.retention_seconds, "leaseExpiresAt": now + self.settings.lease_seconds,
            })
            if held is None:
                return await self._first(key_id, owner, process)
            if held["expiresAt"] <= now or (held["state"] == RUNNING and held["leaseExpiresAt"] <= now):
                await self.storage.release_idempotency_key(key_id, held["owner"])  # its time is over
                continue
            if held["fingerprint"] != fingerprint:
                raise Unprocessable(f"{HEADER} {key} was used with a different request (body, query or headers); "
                                    "send a new key for a new request")
            if held["state"] == RUNNING:
                held = await self._wait(key_id, held["owner"])
            if held is not None and held["state"] == DONE:
                return replay(held["answer"])
            if held is not None:
                raise Conflict(f"The request with {HEADER} {key} is still being processed; retry later",
                               retry_after=max(1, round(self.settings.wait_seconds)))
        raise Conflict(f"{HEADER} {key} is being claimed by other requests; retry later",
                       retry_after=1)

    async def _first(self, key_id: str, owner: str, process: Process) -> web.Response:
        try:
            response = await process()
        except BaseException:
            # an error answer is not kept: the retry is processed anew (if storage is down, the lease ends it)
            try:
                await self.storage.release_idempotency_key(key_id, owner)
            except StorageError:
                pass
            raise
        answer = {"status": response.status, "body": response.body.decode(),
                  "headers": {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}}
        await self.storage.finish_idempotency_key(key_id, owner, {"state": DONE, "answer": answer})
        return response

    async def _wait(self, key_id: str, owner: str) -> Document | None:
        """The record once the running request ``owner`` finished; None when it gave the key up; the running
        record itself when ``wait_seconds`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.wait_seconds
        pause = POLL_SECONDS[0]
        while True:
            held = await self.storage.get_idempotency_key(key_id)
            if held is None or held["owner"] != owner:
                return None
            if held["state"] == DONE or loop.time() >= deadline:
                return held
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(2 * pause, POLL_SECONDS[1])


def replay(answer: Document) -> web.Response:
    response = web.Response(status=answer["status"], body=answer["body"].encode(), content_type="application/json")
    response.headers.update(answer["headers"])
    response.headers[REPLAYED] = "true"
    return response
