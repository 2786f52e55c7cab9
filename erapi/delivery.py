"""Webhook delivery: each process claims subscriptions by lease and posts their changes, in order, at least once.

A claimed subscription is delivered by one task of its own (``SubscriptionDelivery``) while the process holds its
lease. The task reads the change feed after the stored cursor, posts each matching change, and moves the cursor
only after the receiver answered 2xx; a failed attempt is retried with exponential backoff, and a subscription
that keeps failing is paused with the reason. Every state change is written to storage while the lease is still
held (a conditional write), so a process that lost its lease (it stalled past the expiry, another took over)
stops at its next write. A process killed after a receiver's 2xx and before the cursor moved leaves that change
to be delivered again by the next holder: duplicates carry the same delivery id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from erapi import installed_version
from erapi.acl import READ, AccessControl
from erapi.allowlist import AllowListResolver, TargetPolicy
from erapi.background import BackgroundWorker
from erapi.clock import Clock
from erapi.config import WebhooksConfig
from erapi.metrics import record_webhook_attempt, record_webhook_pause
from erapi.subscriptions import (
    NO_FAILURES,
    PAUSED,
    RetryPolicy,
    delivery_id,
    delivery_request,
    iso,
    matches,
)
from storage_plugins.base import Storage

if TYPE_CHECKING:
    from erapi.changes import ChangeNotifier

PAGE = 100  # changes read from the feed at once
IDLE = -1.0  # what a step returns when the feed has nothing new: wait for the next change
logger = structlog.get_logger("erapi.delivery")


class DeliveryWorker(BackgroundWorker):
    """Claims subscriptions (up to ``webhooks.max_per_process``) and runs one delivery task for each; ``stop``
    lets each delivery finish its attempt within the timeout and hand its lease back."""

    failure = "claiming subscriptions failed"

    def __init__(self, storage: Storage, acl: AccessControl, settings: WebhooksConfig, clock: Clock = time.time,
                 notifier: ChangeNotifier | None = None, worker_id: str | None = None):
        super().__init__(worker_id or f"delivery-{uuid.uuid4()}", settings.poll_interval_seconds, logger)
        self.storage = storage
        self.notifier = notifier  # wakes an idle delivery on its collection's next change; None: poll
        self.acl = acl
        self.settings = settings
        self.policy = TargetPolicy(settings.allowed_targets)
        self.retry = RetryPolicy.from_config(settings)
        self.clock = clock  # seconds since the epoch: leases and retry times are compared across processes
        self.session: aiohttp.ClientSession | None = None
        self.deliveries: dict[tuple[str, str], asyncio.Task] = {}

    def open(self) -> None:
        """Create the HTTP client (inside the running loop); ``start`` also claims and delivers."""
        connector = aiohttp.TCPConnector(resolver=AllowListResolver(self.policy), limit_per_host=10)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            headers={"User-Agent": f"erapi-webhooks/{installed_version()}"})

    def start(self) -> None:
        self.open()
        super().start()

    async def stop(self, timeout: float) -> None:
        await super().stop(timeout)
        if self.session is not None:
            await self.session.close()

    def helpers(self) -> list[asyncio.Task]:
        return list(self.deliveries.values())

    async def step(self) -> bool:
        await self.claim()
        return False  # the deliveries run in tasks of their own: look for more after the poll interval

    async def claim(self) -> list[SubscriptionDelivery]:
        """Claim what this process has room for; start (and return) a delivery for each."""
        started = []
        while len(self.deliveries) < self.settings.max_per_process and not self.stopping:
            record = await self.storage.claim_subscription(
                self.worker_id, self.clock(), self.settings.lease_seconds)
            if record is None:
                break
            delivery = SubscriptionDelivery(self, record)
            key = (record["ercollectionid"], record["id"])
            if self._task is not None:  # a running worker; tests drive deliveries step by step instead
                self.deliveries[key] = asyncio.create_task(delivery.run(), name=f"{self.worker_id}:{record['id']}")
                self.deliveries[key].add_done_callback(lambda _, key=key: self.deliveries.pop(key, None))
            started.append(delivery)
        return started


class SubscriptionDelivery:
    """One claimed subscription, delivered while this process holds its lease."""

    def __init__(self, worker: DeliveryWorker, record: dict[str, Any]):
        self.worker = worker
        self.record = record
        self.collection_id, self.id = record["ercollectionid"], record["id"]
        self.pending: deque[dict[str, Any]] = deque()  # changes read from the feed, not yet delivered or skipped
        self.awaited = 0

    async def run(self) -> None:
        worker = self.worker
        with structlog.contextvars.bound_contextvars(ercollectionid=self.collection_id, subscription=self.id):
            try:
                while not worker.stopping:
                    try:
                        wait = await self.step()
                        if wait == IDLE:
                            await self._await_change()
                            continue
                    except Exception:  # the storage or the feed failed: try again after a while
                        logger.exception("webhook delivery step failed")
                        wait = worker.settings.poll_interval_seconds
                    if wait is None:
                        return
                    await worker.sleep(wait)
            finally:
                await self._release()

    async def step(self) -> float | None:
        """One unit of work: an attempt, a skip of changes the filters leave out, or nothing to do. Seconds to
        wait before the next step (0: go on at once; IDLE: until the next change); None when this process no
        longer delivers it (paused, deleted, or its lease was lost)."""
        now = self.worker.clock()
        if not await self._renew(now):
            return None
        due = self.record["failures"].get("nextAttemptAt")
        if due is not None and now < due:
            return min(due - now, self._renewal_interval())
        if READ not in await self.worker.acl.access(self.collection_id, self.record["createdBy"]):
            await self._pause(f"its creator {self.record['createdBy']} no longer has read access to "
                              f"ERCollection {self.collection_id}", {})
            return None
        change = await self._next_change()
        if change is None:
            return IDLE if self.held else None
        return await self._attempt(change)

    @property
    def held(self) -> bool:
        """This process still delivers the subscription: not paused, deleted or taken over since it was claimed."""
        return self.record.get("leaseOwner") == self.worker.worker_id

    async def _await_change(self) -> None:
        """Wait for the collection's next change, at most a poll interval (the lease wants renewing, the stop
        wants noticing). ``awaited``: the sequence number last seen, so that changes still on their way (the feed
        shows an unbroken run only) are waited for, not read again at once."""
        worker = self.worker
        if worker.notifier is None:
            await worker.sleep(worker.settings.poll_interval_seconds)
            return
        self.awaited = max(self.awaited, self.record["lastDeliveredSequence"])
        self.awaited = await worker.notifier.wait(self.collection_id, self.awaited,
                                                  worker.settings.poll_interval_seconds)

    def _renewal_interval(self) -> float:
        return self.worker.settings.lease_seconds / 3

    async def _renew(self, now: float) -> bool:
        lease = self.worker.settings.lease_seconds
        if self.record["leaseExpiresAt"] - now > lease - self._renewal_interval():
            return True
        return await self._save({"leaseExpiresAt": now + lease})

    async def _save(self, fields: dict[str, Any]) -> bool:
        """Write ``fields`` while the lease is ours; False (stop delivering) when it is not."""
        saved = await self.worker.storage.update_subscription(self.collection_id, self.id, fields,
                                                              owner=self.worker.worker_id)
        if saved:
            self.record.update(fields)
        else:
            self.record["leaseOwner"] = None
            logger.info("webhook subscription no longer held by this process", worker=self.worker.worker_id)
        return saved

    async def _next_change(self) -> dict[str, Any] | None:
        """The first change after the cursor that the filters take; changes skipped on the way move the cursor."""
        filters = self.record["filters"]
        while True:
            if not self.pending:
                if not await self._read_page():
                    return None
            skipped = None
            while self.pending and not matches(filters, self.pending[0]):
                skipped = self.pending.popleft()["sequence"]
            if self.pending:
                return self.pending[0]
            # a whole page left out by the filters: remember it, so that no process reads it again
            if not await self._save({"lastDeliveredSequence": skipped}):
                return None

    async def _read_page(self) -> bool:
        """Read the feed after the cursor; False when nothing is new, or when retention trimmed changes this
        subscription never got (then it is paused: deliveries never skip a change silently)."""
        storage, position = self.worker.storage, self.record["lastDeliveredSequence"]
        self.pending.extend(await storage.read_changes(self.collection_id, position, PAGE))
        if self.pending and self.pending[0]["sequence"] != position + 1:  # a void, or a trimmed stretch?
            first = await storage.first_sequence(self.collection_id)
            if first > position:
                self.pending.clear()
                await self._pause(f"the change feed no longer holds the changes after sequence {position} (retention "
                                  f"trimmed it up to {first}); resuming goes on after {first}", {})
        return bool(self.pending)

    async def _attempt(self, change: dict[str, Any]) -> float | None:
        now = self.worker.clock()
        failures = self.record["failures"]
        number = failures["count"] + 1
        status, error = await self._post(change, number, now)
        attempt = {"deliveryId": delivery_id(self.id, change["sequence"]), "sequence": change["sequence"],
                   "attempt": number, "at": iso(now), "statusCode": status, "error": error}
        attempts = [attempt, *self.record["attempts"]][:self.worker.settings.kept_attempts]
        record_webhook_attempt(error is None)
        if error is None:
            self.pending.popleft()
            saved = await self._save({"lastDeliveredSequence": change["sequence"], "lastDeliveredAt": iso(now),
                                      "failures": dict(NO_FAILURES), "attempts": attempts})
            return 0 if saved else None
        since = failures["since"] if failures["since"] is not None else now
        reason = self.worker.retry.pause_reason(number, now - since)
        if reason is not None:
            await self._pause(f"{reason}; the last one: {error}",
                              {"failures": {"count": number, "since": since, "nextAttemptAt": None},
                               "attempts": attempts})
            return None
        delay = self.worker.retry.delay(number)
        saved = await self._save({"failures": {"count": number, "since": since, "nextAttemptAt": now + delay},
                                  "attempts": attempts})
        return min(delay, self._renewal_interval()) if saved else None

    async def _post(self, change: dict[str, Any], attempt: int, now: float) -> tuple[int | None, str | None]:
        """The receiver's status code and, unless it was 2xx, what went wrong."""
        worker = self.worker
        body, headers = delivery_request(self.record, change, attempt, now)
        if worker.policy.refuses_literal(self.record["url"]):
            return None, "the target address is no longer in the allow-list (webhooks.allowed_targets)"
        try:
            async with worker.session.post(self.record["url"], data=body, headers=headers,
                                           allow_redirects=False) as response:
                status = response.status
        except asyncio.TimeoutError:
            return None, f"no answer within {worker.settings.timeout_seconds:g} seconds"
        except aiohttp.ClientConnectorError as error:  # its own text drops the resolver's reason
            return None, f"cannot connect to {error.host}:{error.port}: {error.os_error}"[:300]
        except aiohttp.ClientError as error:
            return None, f"{type(error).__name__}: {error}"[:300]
        return status, None if 200 <= status < 300 else f"the receiver answered {status}"

    async def _pause(self, reason: str, fields: dict[str, Any]) -> None:
        logger.warning("webhook subscription paused", reason=reason)
        record_webhook_pause()
        await self._save({**fields, "state": PAUSED, "pausedReason": reason, "pausedAt": iso(self.worker.clock()),
                          "leaseOwner": None, "leaseExpiresAt": 0.0})

    async def _release(self) -> None:
        """Hand the lease back (a graceful stop): another process takes over at once, not after the expiry."""
        if self.held:
            with contextlib.suppress(Exception):
                await self._save({"leaseOwner": None, "leaseExpiresAt": 0.0})
