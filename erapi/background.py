"""A worker that runs in a task of its own beside the requests: one step, then a wait, until it is stopped.

The job workers (erapi/jobs.py) and the webhook delivery (erapi/delivery.py) are such workers. A step that
fails is logged and the loop goes on (a storage outage must not end the worker); the wait lasts the poll
interval, less when ``wake`` is called (this process has just given the worker something to do) or the worker
is stopped.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from typing import Iterable

import structlog


class BackgroundWorker(abc.ABC):
    """Subclasses supply ``step`` and say what a failed step is called in the log (``failure``)."""

    failure = "background step failed"  # the log message of a step that raised

    def __init__(self, worker_id: str, poll_interval_seconds: float, logger: structlog.typing.FilteringBoundLogger):
        self.worker_id = worker_id
        self._poll_interval = poll_interval_seconds
        self._logger = logger
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    @abc.abstractmethod
    async def step(self) -> bool:
        """Do one round of work; True to go on at once, False to wait first."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.worker_id)

    def wake(self) -> None:
        """End the current wait: there is work for the worker now."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = await self.step()
            except Exception:  # a storage outage must not end the worker: log, wait, go on
                self._logger.exception(self.failure, worker=self.worker_id)
                busy = False
            if not busy:
                await self.idle(self._poll_interval)

    async def idle(self, seconds: float) -> None:
        """The loop's wait: up to ``seconds``, less when woken or stopped."""
        if self._stopping.is_set():
            return
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def sleep(self, seconds: float) -> None:
        """A wait of the worker's other tasks: up to ``seconds``, less when the worker stops."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self, timeout: float) -> None:
        """Stop stepping; give the loop and ``helpers()`` (tasks of the worker) ``timeout`` seconds to end, then
        cancel those still running and wait for them."""
        self._stopping.set()
        self._wake.set()
        tasks = [task for task in (self._task, *self.helpers()) if task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, Exception):
                self._logger.error(f"{self.failure} while stopping", worker=self.worker_id, exc_info=outcome)

    def helpers(self) -> Iterable[asyncio.Task]:
        """Tasks the worker started beside its loop, which ``stop`` waits for too."""
        return ()
