"""``erapi serve --workers N``: N processes on one port, managed by gunicorn's arbiter with aiohttp's worker.

gunicorn binds the port once in its arbiter, forks the workers (each runs the whole service: its own event loop,
storage connection and job workers), forwards signals (SIGTERM: graceful stop within
``server.shutdown_timeout``; SIGINT: quick stop), restarts a worker that dies and halts when one cannot start.
aiohttp's worker stops by itself once its parent is gone. What erapi adds: a check of the port and the storage
before anything forks (so that a mistake is told once, as one line), the ``X-Erapi-Worker`` header, the
"listening" line once every worker has started, gunicorn's own messages as the service's JSON log lines, and
prometheus-client's multiprocess clean-up of a dead worker's files.
"""

from __future__ import annotations

import asyncio
import math
import logging
import os
import threading
from typing import Callable

from aiohttp import web
from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from erapi.config import Config

WORKER_HEADER = "X-Erapi-Worker"  # the pid of the worker process that answered (only with --workers N > 1)


class JsonLogger(glogging.Logger):
    """gunicorn's own messages (workers booted, exited, timed out) through the root logger, whose handler
    ``erapi.logs.configure_logging`` installed: JSON lines like the service's, not gunicorn's text format."""

    def setup(self, cfg) -> None:
        self.cfg = cfg
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.error_log.propagate = True
        self.access_log.propagate = False  # the service logs its requests itself (erapi.web)


class Service(BaseApplication):
    """The gunicorn application: the settings taken from erapi's config, an app made in each worker."""

    def __init__(self, config: Config, bind: str, count: int, announce: Callable[[list[int]], None]) -> None:
        self.config = config
        self.bind = bind
        self.count = count
        self.ready_read, self.ready_write = os.pipe()
        self.announce = announce
        super().__init__()

    def load_config(self) -> None:
        settings = {
            "bind": [self.bind],
            "workers": self.count,
            "worker_class": "aiohttp.GunicornWebWorker",
            "graceful_timeout": math.ceil(self.config.server.shutdown_timeout),  # gunicorn takes whole seconds
            "loglevel": self.config.log.level.lower(),
            "logger_class": "erapi.workers.JsonLogger",
            "control_socket_disable": True,  # one per $HOME otherwise: two services would share it
            "when_ready": self._when_ready,
            "child_exit": _forget_metrics_of,
        }
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self) -> web.Application:
        """Called in each worker after the fork: the service's app, which says when it has started."""
        from erapi.app import create_app

        app = create_app(self.config)
        pid = str(os.getpid())

        async def worker_header(_request: web.Request, response: web.StreamResponse) -> None:
            response.headers[WORKER_HEADER] = pid

        async def started(_app: web.Application) -> None:  # the last start-up step: storage is open
            os.write(self.ready_write, f"{pid}\n".encode())

        app.on_response_prepare.append(worker_header)
        app.on_startup.append(started)
        return app

    def _when_ready(self, arbiter) -> None:
        """In the arbiter once the port is bound: wait (in a thread, the arbiter has its own loop) for every
        worker's start, then say "listening" with their pids."""
        threading.Thread(target=self._announce_when_started, name="erapi-announce", daemon=True).start()

    def _announce_when_started(self) -> None:
        started: list[int] = []
        with os.fdopen(self.ready_read, "rb", buffering=0) as pipe:
            while len(started) < self.count:
                line = pipe.readline()
                if not line:
                    return
                started.append(int(line))
            self.announce(started)
            for _line in pipe:  # keep reading: a restarted worker writes its pid too
                pass


def _forget_metrics_of(_arbiter, worker) -> None:
    """prometheus-client's multiprocess mode: a dead worker's live gauges no longer count (its counters do)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def serve_workers(config: Config, host: str, port: int, count: int,
                  announce: Callable[[list[int]], None]) -> int:
    """Run ``count`` workers on host:port until a signal stops them; the exit status gunicorn's arbiter gives
    (0 after SIGTERM or SIGINT, 3 when a worker failed to start). ``announce`` is told the workers' pids once
    every one has started."""
    asyncio.run(_check_storage(config))
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        Service(config, bind, count, announce).run()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0


async def _check_storage(config: Config) -> None:
    """Open and close the storage once before forking, so that an unreachable database is told as one line by
    the command instead of by every worker (each would fail alike, and gunicorn halts on the first)."""
    from storage_plugins.base import create_storage

    storage = create_storage(config.storage, config.storage_settings())
    await storage.open()
    await storage.close()
