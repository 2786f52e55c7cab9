"""A webhook receiver on loopback for the tests: it checks each delivery's signature, records what it accepted,
and can be told to fail the first deliveries, to answer slowly, or never to answer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Callable

import orjson
from aiohttp import web

SECRET = "receiver-secret-0123456789abcdef"


def valid_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does with X-Erapi-Signature-256 (docs/API.md): recompute, compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class Receiver:
    """``fail_first``: answer 500 to that many deliveries first; ``hang``: never answer; ``delay``: seconds to
    wait before answering 200."""

    def __init__(self, secret: str = SECRET, fail_first: int = 0, hang: bool = False, delay: float = 0.0):
        self.secret = secret
        self.fail_first = fail_first
        self.hang = hang
        self.delay = delay
        self.received: list[dict] = []  # every delivery, accepted or not, as parsed
        self.accepted: list[dict] = []  # the deliveries answered 200, in arrival order
        self.bad_signatures = 0
        self.arrived = asyncio.Event()  # set on each accepted delivery
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not valid_signature(self.secret, body, request.headers.get("X-Erapi-Signature-256", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        delivery = orjson.loads(body)
        assert request.headers["X-Erapi-Delivery"] == delivery["deliveryId"]
        self.received.append(delivery)
        if self.hang:
            await asyncio.Event().wait()
        if len(self.received) <= self.fail_first:
            return web.Response(status=500, text="not yet")
        await asyncio.sleep(self.delay)
        self.accepted.append(delivery)
        self.arrived.set()
        return web.Response(status=200)

    def sequences(self) -> list[int]:
        return [delivery["change"]["sequence"] for delivery in self.accepted]

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` deliveries were accepted."""
        await self.wait_until(lambda: len(self.accepted) >= count, timeout)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        """Until ``condition()`` holds after an accepted delivery (the timeout bounds a broken run; it is not a
        timed assertion)."""
        async with asyncio.timeout(timeout):
            while not condition():
                self.arrived.clear()
                await self.arrived.wait()
