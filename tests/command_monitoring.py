"""PyMongo command monitoring for tests: watch the commands sent to one database, only inside a window."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pymongo import monitoring


class DatabaseWindow(monitoring.CommandListener):
    """Hands each command sent to the watched database to ``record`` while a ``window`` is open."""

    def __init__(self) -> None:
        self.database: str | None = None

    def fresh(self) -> Any:
        """What one window collects (returned by ``window``), new for each window."""
        raise NotImplementedError

    def record(self, collected: Any, event: monitoring.CommandStartedEvent) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def window(self, database: str) -> Iterator[Any]:
        self.collected = self.fresh()
        self.database = database
        try:
            yield self.collected
        finally:
            self.database = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.database is not None and event.database_name == self.database:
            self.record(self.collected, event)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
