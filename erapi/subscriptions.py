"""Webhook subscriptions: what one is, which changes it wants, how a delivery is signed, when to retry or pause.

Pure: no aiohttp server code and no database. The delivery worker (erapi/delivery.py) and the handlers
(erapi/handlers/subscriptions.py) build on it.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson

from erapi.config import WebhooksConfig
from erapi.timestamps import utc_timestamp

ACTIVE, PAUSED = "active", "paused"
SIGNATURE_HEADER = "X-Erapi-Signature-256"
DELIVERY_HEADER = "X-Erapi-Delivery"
TIMESTAMP_HEADER = "X-Erapi-Timestamp"
ATTEMPT_HEADER = "X-Erapi-Attempt"
# what GET shows of a stored subscription: never the secret, nor the lease (an internal of the worker)
PUBLIC_FIELDS = ("id", "ercollectionid", "url", "filters", "state", "pausedReason", "pausedAt", "createdBy",
                 "createdAt", "lastDeliveredSequence", "lastDeliveredAt", "failures", "attempts")
NO_FAILURES = {"count": 0, "since": None, "nextAttemptAt": None}


def new_subscription(collection_id: str, body: Mapping[str, Any], principal: str, created_at: str,
                     start_after: int) -> dict[str, Any]:
    """A stored subscription as the API creates it: active, its cursor at ``start_after``."""
    filters = body.get("filters") or {}
    return {
        "id": str(uuid.uuid4()),
        "ercollectionid": collection_id,
        "url": body["url"],
        "filters": {name: sorted(set(filters[name])) for name in ("kinds", "types", "operations") if name in filters},
        "secret": body["secret"],
        "state": ACTIVE,
        "pausedReason": None,
        "pausedAt": None,
        "createdBy": principal,
        "createdAt": created_at,
        "lastDeliveredSequence": start_after,
        "lastDeliveredAt": None,
        "failures": dict(NO_FAILURES),
        "attempts": [],
    }


def public_view(record: Mapping[str, Any]) -> dict[str, Any]:
    view = {name: record.get(name) for name in PUBLIC_FIELDS}
    failures = record["failures"]
    view["failures"] = {"count": failures["count"], "since": _optional_iso(failures["since"]),
                        "nextAttemptAt": _optional_iso(failures["nextAttemptAt"])}
    return view


def _optional_iso(seconds: float | None) -> str | None:
    """Times are stored as seconds since the epoch (compared across processes) and shown as ISO 8601."""
    return None if seconds is None else iso(seconds)


def iso(seconds: float) -> str:
    return utc_timestamp(datetime.fromtimestamp(seconds, timezone.utc))


def resumed(record: Mapping[str, Any], first_sequence: int) -> dict[str, Any]:
    """The fields that make a paused subscription active again. Its cursor stays, so nothing is skipped, unless
    the feed no longer holds what follows it (retention trimmed up to ``first_sequence``)."""
    fields = {"state": ACTIVE, "pausedReason": None, "pausedAt": None, "failures": dict(NO_FAILURES)}
    if first_sequence > record["lastDeliveredSequence"]:
        fields["lastDeliveredSequence"] = first_sequence
    return fields


def change_type(change: Mapping[str, Any]) -> str | None:
    document = change.get("document") or {}
    return document.get("entityType") or document.get("relationshipType")


def matches(filters: Mapping[str, list[str]], change: Mapping[str, Any]) -> bool:
    """Every filter given must match; a filter left out matches everything. A change without a type (a grant)
    does not match a ``types`` filter."""
    if "kinds" in filters and change["kind"] not in filters["kinds"]:
        return False
    if "operations" in filters and change["operation"] not in filters["operations"]:
        return False
    return "types" not in filters or change_type(change) in filters["types"]


def delivery_id(subscription_id: str, sequence: int) -> str:
    """The same for every attempt of one change to one subscription, in every process: receivers dedupe on it."""
    return f"{subscription_id}:{sequence}"


def signature(secret: str, body: bytes) -> str:
    """The value of X-Erapi-Signature-256: HMAC-SHA256 of the raw body with the subscription's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_request(record: Mapping[str, Any], change: Mapping[str, Any], attempt: int,
                     sent_at: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery attempt. ``sentAt`` is inside the signed body, so a receiver can
    refuse replays of old deliveries; the headers repeat it and the delivery id for receivers that route first."""
    identifier = delivery_id(record["id"], change["sequence"])
    body = orjson.dumps({"deliveryId": identifier, "subscriptionId": record["id"],
                         "ercollectionid": record["ercollectionid"], "sentAt": int(sent_at), "attempt": attempt,
                         "change": change})
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(record["secret"], body),
        DELIVERY_HEADER: identifier,
        TIMESTAMP_HEADER: str(int(sent_at)),
        ATTEMPT_HEADER: str(attempt),
    }
    return body, headers


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts of one change, and when a failing subscription is paused."""

    initial: float
    multiplier: float
    ceiling: float
    pause_after_attempts: int
    pause_after_seconds: float

    @classmethod
    def from_config(cls, settings: WebhooksConfig) -> "RetryPolicy":
        return cls(settings.retry_initial_seconds, settings.retry_multiplier, settings.retry_max_seconds,
                   settings.pause_after_attempts, settings.pause_after_seconds)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1: the first)."""
        return min(self.ceiling, self.initial * self.multiplier ** (failures - 1))

    def pause_reason(self, failures: int, failing_for: float) -> str | None:
        if failures >= self.pause_after_attempts:
            return f"{failures} delivery attempts in a row failed"
        if failing_for >= self.pause_after_seconds:
            return f"deliveries have failed for {failing_for:.0f} seconds ({failures} attempts)"
        return None
