"""The change feed in one process: waiting for a collection's next change, and trimming what retention drops.

A waiter learns of a change made through this process at once (the storage plugin tells its listeners after
each recorded batch), and of a change made through another process by asking storage every
``changes.poll_interval_seconds``: one read of the collection's counter per waiting request per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone

import structlog

from storage_plugins.base import Storage, StorageError

logger = structlog.get_logger("erapi.changes")


class ChangeNotifier:
    """Wakes the requests waiting for a collection's next change (long polls, read-your-writes)."""

    def __init__(self, storage: Storage, poll_interval_seconds: float) -> None:
        self._storage = storage
        self._poll = poll_interval_seconds
        self._events: dict[str, asyncio.Event] = {}  # per collection: set (and dropped) on its next change here
        storage.add_change_listener(self.notify)

    def notify(self, collection_id: str, sequence: int) -> None:
        event = self._events.pop(collection_id, None)
        if event is not None:
            event.set()

    async def wait(self, collection_id: str, after: int, timeout: float) -> int:
        """Return the collection's sequence number (``latest_sequence``) as soon as it is above ``after``, or
        when ``timeout`` seconds have passed (then it may be ``after`` or below)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            # taken before the read, so that a change recorded between the read and the wait still wakes us
            event = self._events.setdefault(collection_id, asyncio.Event())
            latest = await self._storage.latest_sequence(collection_id)
            remaining = deadline - loop.time()
            if latest > after or remaining <= 0:
                return latest
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(self._poll, remaining))


class ChangeTrimmer:
    """Every interval, trims the feed of each collection this process recorded changes to since the last round:
    the changes older than the retention go (the newest change of a collection always stays)."""

    def __init__(self, storage: Storage, retention_seconds: float, interval_seconds: float) -> None:
        self._storage = storage
        self._retention = timedelta(seconds=retention_seconds)
        self._interval = interval_seconds
        self._written: set[str] = set()
        storage.add_change_listener(lambda collection_id, sequence: self._written.add(collection_id))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.trim_once()

    async def trim_once(self) -> None:
        written, self._written = self._written, set()
        before = datetime.now(timezone.utc) - self._retention
        for collection_id in sorted(written):
            try:
                await self._storage.trim_changes(collection_id, before)
            except StorageError as error:  # the next round tries again
                self._written.add(collection_id)
                logger.warning("changes.trim_failed", ercollectionid=collection_id, error=str(error))
