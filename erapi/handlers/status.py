"""GET /apollo/status/logs: the status tracker over the log store."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from aiohttp import web

from erapi.errors import InvalidRequest, NotFound
from erapi.jobs import job_counts
from erapi.keys import page_tokens_key, storage_key
from erapi.kinds import ENTITIES, RELATIONSHIPS
from erapi.openapi import STATUS_STATES
from erapi.timestamps import utc_timestamp
from erapi.web import (
    READ_SCOPE, WRITE_SCOPE, authorize, collection_header, json_response, require_any_access,
)
from storage_plugins.base import LogQuery

# query parameter names are case-insensitive; these are their lowercase forms
FILTERS = {
    "transactionid": "transaction_id",
    RELATIONSHIPS.tracker_parameter: "relationship_id",
    ENTITIES.tracker_parameter: "entity_id",
    "correlationid": "correlation_id",
    "starttime": "start_time",
    "endtime": "end_time",
}
DEFAULT_LIMIT = 100
# ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and Arabic-Indic digits (which it reads)
LIMIT_TEXT = re.compile(r"[0-9]{1,7}")
MAX_LIMIT = 1000


async def get_status_logs(request: web.Request) -> web.Response:
    principal = await authorize(request, READ_SCOPE, WRITE_SCOPE)
    collection_id = collection_header(request)
    await require_any_access(request, collection_id, principal)
    parameters = {name.lower(): value for name, value in request.query.items()}
    filters = _filters(parameters)
    limit = _limit(parameters.get("limit"))
    tokens = request.app[page_tokens_key]
    after = None
    if parameters.get("continuationtoken"):
        after = tuple(tokens.open(parameters["continuationtoken"], collection_id, filters))

    storage = request.app[storage_key]
    query = LogQuery(collection_id=collection_id, after=after, limit=limit + 1, **filters)
    records = await storage.find_logs(query)
    if not records:
        raise NotFound("No status records match the query")
    next_token = None
    if len(records) > limit:
        records = records[:limit]
        last = records[-1]
        next_token = tokens.issue(collection_id, filters, [last["receivedTimestamp"], last["id"]])
    jobs = [record for record in records if record["requestObject"] == "Job"]
    counts = await job_counts(storage, collection_id, [record["transactionId"] for record in jobs])
    for record in jobs:
        record["jobData"] = counts[record["transactionId"]]
    total = await storage.count_logs(query)
    body = {
        "status": {"message": "", "code": "OK"},
        "data": records,
        "paging": {"totalCount": total, "continuationToken": next_token},
    }
    return json_response(body)


def _filters(parameters: dict[str, str]) -> dict[str, str]:
    filters = {FILTERS[name]: value for name, value in parameters.items() if name in FILTERS}
    if not filters:
        raise InvalidRequest(
            "At least one filter is required: transactionid, relationshipid, entityid, correlationid, "
            "startTime or endTime"
        )
    for name in ("start_time", "end_time"):
        if name in filters:
            filters[name] = _timestamp(name, filters[name])
    if "state" in parameters:  # narrows the others; bound to the continuation token like them
        if parameters["state"] not in STATUS_STATES:
            raise InvalidRequest(f"state must be one of {', '.join(STATUS_STATES)}")
        filters["state"] = parameters["state"]
    return filters


def _timestamp(name: str, value: str) -> str:
    try:
        if not value.isascii():
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return utc_timestamp(moment)
    except (ValueError, OverflowError) as error:  # OverflowError: an offset pushes it past year 1 or 9999
        raise InvalidRequest(f"{name.replace('_t', 'T')} must be an ISO 8601 timestamp between 0001-01-01 and "
                             "9999-12-31 in UTC") from error


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not LIMIT_TEXT.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)
