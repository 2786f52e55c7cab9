"""An app served on a loopback port by an event loop in a thread of its own, for clients that speak real HTTP."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class LiveServer:
    """An app on 127.0.0.1 (a free port), served by an event loop in a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="erapi-live", daemon=True)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self.url = ""

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=60)
        self.loop.close()
