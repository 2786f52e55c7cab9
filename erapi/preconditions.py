"""Optimistic concurrency: a write names the version it expects to replace, and is refused if another won.

A batch item carries ``expectedVersion`` (the version its writer read; 0: the id must be new). A request of
one item may say the same with ``If-Match: "N"`` (``*``: any existing version) or ``If-None-Match: *`` (create
only), and is then refused with 412 instead of a 207. The check runs where the next version is built, against
the version the claim would replace, so of writers expecting the same version exactly one can win: the others
lose the claim, are built again on top of the winner, and fail the check.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Mapping

from aiohttp import web

from erapi.errors import InvalidRequest, PreconditionFailed
from storage_plugins.base import Document, version_of

if TYPE_CHECKING:
    from erapi.kinds import Kind
    from erapi.writes.context import BatchResult

EXPECTED_VERSION = "expectedVersion"
ANY_VERSION = -1  # If-Match: *; the item schema keeps clients to 0 and up
ENTITY_TAG = re.compile(r'^(?:W/)?"([1-9][0-9]{0,15})"$')


class VersionMismatch(str):
    """The failure message of an item whose expected version is not the one it would replace."""


def version_problem(kind: Kind, item: Mapping, previous: Document | None) -> VersionMismatch | None:
    """Why ``item`` (of ``kind``) may not replace ``previous``; None if it may."""
    expected = item.get(EXPECTED_VERSION)
    if expected is None:
        return None
    current = version_of(kind.name, previous) if previous is not None else 0
    label = f"{kind.label} {item['id']}"
    if expected == ANY_VERSION:
        return None if current else VersionMismatch(f"{label} does not exist; If-Match: * needs a stored version")
    if expected == current:
        return None
    if expected == 0:
        return VersionMismatch(f"{label} exists at version {current}; expectedVersion 0 creates only a new id")
    if current == 0:
        return VersionMismatch(f"{label} does not exist; expected version {expected}")
    return VersionMismatch(f"{label} is at version {current}, not the expected version {expected}; "
                           "it was not written")


def etag(kind: Kind, document: Document) -> str:
    return f'"{version_of(kind.name, document)}"'


def header_expectation(request: web.Request, create_only: bool = True) -> tuple[str, int] | None:
    """The conditional header of a one-item write and the version it expects (None: no such header)."""
    if_match, if_none_match = request.headers.get("If-Match"), request.headers.get("If-None-Match")
    if if_match is None and if_none_match is None:
        return None
    if if_match is not None and if_none_match is not None:
        raise InvalidRequest("Send If-Match or If-None-Match, not both")
    if if_match is None and not create_only:
        raise InvalidRequest("If-None-Match does not apply here; send If-Match with the ETag you read")
    name = "If-Match" if if_match is not None else "If-None-Match"
    return name, _header_version(name, if_match if if_match is not None else if_none_match)


def apply_conditional_headers(request: web.Request, items: list[dict], run_async: bool) -> None:
    """Turn If-Match / If-None-Match of a one-item write into the item's expected version (400 if misused)."""
    expectation = header_expectation(request)
    if expectation is None:
        return
    name, expected = expectation
    if run_async:
        raise InvalidRequest(f"{name} applies to synchronous writes (async: false); give the item expectedVersion")
    if len(items) != 1:
        raise InvalidRequest(f"{name} applies to a request of one item; give each item of a batch its "
                             "expectedVersion")
    if EXPECTED_VERSION in items[0]:
        raise InvalidRequest(f"Give the expected version once: in {name} or in expectedVersion")
    items[0][EXPECTED_VERSION] = expected


def _header_version(name: str, value: str) -> int:
    value = value.strip()
    if name == "If-None-Match":
        if value != "*":
            raise InvalidRequest("If-None-Match on a write takes only * (create only)")
        return 0
    if value == "*":
        return ANY_VERSION
    match = ENTITY_TAG.match(value)
    if match is None:
        raise InvalidRequest('If-Match takes * or one ETag of this service, e.g. "3"')
    return int(match.group(1))


def raise_if_mismatch(outcome: object) -> None:
    """412 for a one-item write whose outcome is a version mismatch."""
    if isinstance(outcome, VersionMismatch):
        raise PreconditionFailed(outcome)


def raise_if_precondition_failed(request: web.Request, result: "BatchResult") -> None:
    """412, before anything about the request is stored, when a conditional one-item write lost its check."""
    if ("If-Match" in request.headers or "If-None-Match" in request.headers) and result.results:
        raise_if_mismatch(result.results[0].message)
