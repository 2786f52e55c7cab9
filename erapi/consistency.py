"""Read your writes: the ``X-ER-Sequence`` header a write answers with, and the wait of a read that echoes it.

Every write answer names, for each collection the write changed, the collection's sequence number after it
(``X-ER-Sequence: site=42``, several collections comma-separated: ``site=42, plant=7``). A request that sends
the header back (or a bare number, meaning the ``ercollectionid`` collection) is answered only once this
process sees each named collection at or past its number: its grants are read afresh from storage, and it
waits up to ``changes.read_your_writes_wait_seconds`` for storage to report the number, then answers 503 with
Retry-After. Collection ids cannot contain ``=``, ``,`` or spaces, so the format is unambiguous.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from erapi.errors import InvalidRequest, NotYet
from erapi.keys import acl_key, change_notifier_key, config_key

SEQUENCE_HEADER = "X-ER-Sequence"
_NUMBER = re.compile(r"[0-9]{1,18}")
_PAIR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.:-]{0,127})=([0-9]{1,18})$")
MAX_NAMED_COLLECTIONS = 32
_REFLECTED = web.RequestKey("sequences_reflected", bool)  # the wait is done once per request


def with_sequences(response: web.StreamResponse, sequences: dict[str, int]) -> web.StreamResponse:
    """``response`` with the X-ER-Sequence header naming ``sequences`` (left out when empty)."""
    if sequences:
        response.headers[SEQUENCE_HEADER] = ", ".join(f"{name}={number}" for name, number in sequences.items())
    return response


def requested_sequences(request: web.Request, collection_id: str | None) -> dict[str, int]:
    """The sequence numbers a request asks to see, by collection: {} without the header; 400 when malformed."""
    if SEQUENCE_HEADER not in request.headers:
        return {}
    value = request.headers[SEQUENCE_HEADER].strip()
    if _NUMBER.fullmatch(value) and collection_id is not None:
        return {collection_id: int(value)}
    wanted: dict[str, int] = {}
    for part in value.split(","):
        matched = _PAIR.match(part.strip())
        if matched is None or len(wanted) >= MAX_NAMED_COLLECTIONS:
            raise InvalidRequest(f"The {SEQUENCE_HEADER} header must be a sequence number or up to "
                                 f"{MAX_NAMED_COLLECTIONS} comma-separated collection=number pairs, as a write "
                                 f"answer gives it")
        wanted[matched.group(1)] = max(int(matched.group(2)), wanted.get(matched.group(1), 0))
    return wanted


async def reflect_sequences(request: web.Request, collection_id: str | None) -> None:
    """Return once this process reflects the sequence numbers the request names (see the module's docstring);
    503 with Retry-After when storage does not reach them within the configured wait. Once per request."""
    if SEQUENCE_HEADER not in request.headers or request.get(_REFLECTED):
        return
    request[_REFLECTED] = True
    wanted = requested_sequences(request, collection_id)
    acl, notifier = request.app[acl_key], request.app[change_notifier_key]
    timeout = request.app[config_key].changes.read_your_writes_wait_seconds
    for name in wanted:
        acl.forget(name)  # a grant given through another process must count at once
    reached = await asyncio.gather(*(notifier.wait(name, number - 1, timeout) for name, number in wanted.items()))
    behind = [f"{name}={number}" for (name, number), latest in zip(wanted.items(), reached) if latest < number]
    if behind:
        raise NotYet(f"This server does not reflect {', '.join(behind)} yet (waited {timeout:g} s); "
                                 f"retry the request")
